/**
 * A clock that only moves when the test says so. `advance` runs every timer
 * that falls due, in order, and lets promise chains settle after each, so
 * code that awaits a token or a fetch between timers behaves as it would in
 * real time, only instantly and deterministically.
 */

import type { Clock, TimerHandle } from '../../src/clock.js';

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

export class FakeClock implements Clock {
  private time = 0;
  private seq = 0;
  private readonly timers = new Map<number, Pending>();

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    this.seq += 1;
    this.timers.set(this.seq, { at: this.time + Math.max(0, ms), seq: this.seq, callback });
    return this.seq;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (;;) {
      const due = [...this.timers.values()]
        .filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers.delete(due.seq);
      this.time = due.at;
      due.callback();
      await settle();
    }
    this.time = end;
    await settle();
  }

  /** Delays of the pending timers, from now, soonest first. */
  pendingDelays(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }
}

/**
 * Lets every pending promise callback run. Not a sleep: a `setImmediate`
 * turn only comes after the microtask queue is empty, so this returns once
 * nothing is left to react, however long the await chains are.
 */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}
