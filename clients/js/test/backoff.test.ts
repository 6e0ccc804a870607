import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff, backoffCeiling, fullJitterDelay } from '../src/backoff.js';

const policy = { initialMs: 1_000, maxMs: 30_000 };

describe('backoff', () => {
  it('doubles the window from 1 s and caps it at 30 s', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7].map((attempt) => backoffCeiling(attempt, policy));
    assert.deepEqual(ceilings, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('stays capped however many attempts failed', () => {
    for (const attempt of [50, 1_024, 1e6, Number.MAX_SAFE_INTEGER]) {
      assert.equal(backoffCeiling(attempt, policy), 30_000);
      assert.equal(fullJitterDelay(attempt, () => 0.5, policy), 15_000);
    }
  });

  it('draws every delay from the whole window, zero included (full jitter)', () => {
    for (const attempt of [0, 3, 10]) {
      const ceiling = backoffCeiling(attempt, policy);
      assert.equal(fullJitterDelay(attempt, () => 0, policy), 0);
      assert.equal(fullJitterDelay(attempt, () => 0.5, policy), ceiling / 2);
      const highest = fullJitterDelay(attempt, () => 0.999_999_9, policy);
      assert.ok(highest < ceiling && highest >= ceiling - 1, `${highest} just below ${ceiling}`);
    }
  });

  it('never leaves the window, even with a broken random source', () => {
    for (const r of [-1, 1, 2, Number.NaN]) {
      const delay = fullJitterDelay(2, () => r, policy);
      assert.ok(delay >= 0 && delay < 4_000, `random ${r} gave ${delay}`);
    }
  });

  it('widens with each retry and starts over after a reset', () => {
    const backoff = new Backoff(policy, () => 0.5);
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [500, 1_000, 2_000]);
    assert.equal(backoff.attempts, 3);
    backoff.reset();
    assert.equal(backoff.attempts, 0);
    assert.equal(backoff.next(), 500);
  });

  it('spreads a crowd of clients over the window', () => {
    // A seeded generator: the delays of 1 000 clients retrying for the
    // fourth time should cover [0, 8 s) roughly evenly.
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const delays = Array.from({ length: 1_000 }, () => fullJitterDelay(3, random, policy));
    const buckets = [0, 0, 0, 0];
    for (const delay of delays) buckets[Math.floor(delay / 2_000)]! += 1;
    for (const count of buckets) assert.ok(count > 150 && count < 350, `uneven buckets ${buckets}`);
  });

  it('refuses a policy whose cap is below its start', () => {
    assert.throws(() => new Backoff({ initialMs: 5_000, maxMs: 1_000 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 1_000 }), RangeError);
  });
});
