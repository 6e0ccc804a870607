/**
 * Reconnect delays: exponential backoff with full jitter.
 *
 * The n-th consecutive retry waits a uniformly random time in
 * `[0, min(maxMs, initialMs · 2ⁿ))`. Full jitter (rather than "delay ± 10 %")
 * matters for a push service: when a node restarts, every client it held
 * reconnects at once, and only a wide random spread keeps them from arriving
 * as one wave at the next node.
 *
 * Pure: the random source is injected, so tests pin it.
 */

export interface BackoffPolicy {
  /** Ceiling of the first retry's window. */
  readonly initialMs: number;
  /** No window grows beyond this. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000 };

/** Returns a number in [0, 1), like `Math.random`. */
export type RandomSource = () => number;

/** The upper bound of the window for retry number `attempt` (0-based). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  // 2 ** attempt overflows to Infinity for huge attempts; min() still caps it.
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt));
}

/** The delay for retry number `attempt`: uniform in [0, ceiling). */
export function fullJitterDelay(
  attempt: number,
  random: RandomSource,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  // Clamp a misbehaving source (NaN included) so the delay never leaves
  // the window.
  const raw = random();
  const r = raw >= 0 ? Math.min(raw, 1 - Number.EPSILON) : 0;
  return Math.floor(r * backoffCeiling(attempt, policy));
}

/** Consecutive-retry counter around `fullJitterDelay`. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: RandomSource = Math.random,
  ) {
    if (!(policy.initialMs > 0) || !(policy.maxMs >= policy.initialMs)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs');
    }
  }

  /** The delay before the next retry; each call widens the window. */
  next(): number {
    const delay = fullJitterDelay(this.attempt, this.random, this.policy);
    this.attempt += 1;
    return delay;
  }

  /** Back to the first window, once a connection has proved stable. */
  reset(): void {
    this.attempt = 0;
  }

  /** How many retries since the last reset. */
  get attempts(): number {
    return this.attempt;
  }
}
