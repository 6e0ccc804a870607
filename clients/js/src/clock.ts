/**
 * Time and timers, behind an interface so tests can drive them by hand.
 *
 * Every delay in the client (backoff, heartbeats, poll intervals, upgrade
 * probes, leader heartbeats) goes through a `Clock`; nothing calls the global
 * `setTimeout` directly. A fake clock therefore makes every test
 * deterministic without real sleeps.
 */

export type TimerHandle = unknown;

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * One pending callback at most. Starting it again replaces the previous one,
 * which is what every "retry in n ms" / "check again in n ms" in the client
 * wants, and it saves each caller from tracking handles.
 */
export class Timer {
  private handle: TimerHandle | undefined;

  constructor(private readonly clock: Clock) {}

  start(ms: number, callback: () => void): void {
    this.cancel();
    const handle = this.clock.setTimeout(() => {
      if (this.handle === handle) this.handle = undefined;
      callback();
    }, ms);
    this.handle = handle;
  }

  cancel(): void {
    if (this.handle !== undefined) {
      this.clock.clearTimeout(this.handle);
      this.handle = undefined;
    }
  }

  get pending(): boolean {
    return this.handle !== undefined;
  }
}
