// The id-sequence checker: what the delivery guarantees of PROTOCOL.md look
// like from one reader's side. Ids must arrive strictly increasing
// (ordered), never twice (duplicate-free) and, where the script is the only
// publisher on the server, consecutively (gap-free).
//
// Why "consecutive" needs the script to be the only publisher: ids are
// assigned by one log for all topics, so an event on another topic takes an
// id too and the ids on this script's topic would skip it. Scripts therefore
// make the consecutive check switchable (STRICT_IDS=0) and also check for
// gaps exactly, by comparing what arrived with the log (`missingIds`).

export const OK = 'ok';
export const FIRST = 'first';
export const GAP = 'gap';
export const DUPLICATE = 'duplicate';
export const OUT_OF_ORDER = 'out_of_order';

export class IdSequence {
  /**
   * @param {object} [opts]
   * @param {boolean} [opts.consecutive=true] treat any skipped id as a gap
   * @param {boolean} [opts.remember=true]   keep every id seen, so a late
   *        re-delivery is told apart from an out-of-order first delivery
   */
  constructor(opts = {}) {
    this.consecutive = opts.consecutive !== false;
    this.seen = opts.remember === false ? null : new Set();
    this.last = null;
    this.count = 0;
  }

  /** The next id must be above `cursor` (exactly `cursor + 1` when consecutive). */
  startAfter(cursor) {
    this.last = cursor;
  }

  /** Whether `id` was delivered before. */
  has(id) {
    return this.seen !== null ? this.seen.has(id) : id === this.last;
  }

  /**
   * Records one delivered id and classifies it:
   * `first` (no expectation yet), `ok`, `gap` (ids skipped; `missing` says
   * how many), `duplicate` (delivered before) or `out_of_order` (below the
   * last id, never delivered before).
   */
  observe(id) {
    if (!Number.isSafeInteger(id) || id <= 0) {
      return { kind: OUT_OF_ORDER, id, reason: `not a positive integer id: ${id}` };
    }
    if (id === this.last || (this.seen !== null && this.seen.has(id))) {
      return { kind: DUPLICATE, id, last: this.last };
    }
    if (this.seen !== null) this.seen.add(id);
    this.count += 1;
    const last = this.last;
    if (last === null) {
      this.last = id;
      return { kind: FIRST, id };
    }
    if (id < last) {
      return { kind: OUT_OF_ORDER, id, last };
    }
    this.last = id;
    if (this.consecutive && id !== last + 1) {
      return { kind: GAP, id, last, missing: id - last - 1 };
    }
    return { kind: OK, id, last };
  }
}

/**
 * Adds one outcome of `IdSequence.observe` to the matching counter of
 * `counters` (`{ gaps, duplicates, outOfOrder }`, k6 Counters). A gap counts
 * the number of ids skipped. Returns true for `ok`/`first`.
 */
export function countOutcome(outcome, counters, tags) {
  switch (outcome.kind) {
    case GAP:
      counters.gaps.add(outcome.missing, tags);
      return false;
    case DUPLICATE:
      counters.duplicates.add(1, tags);
      return false;
    case OUT_OF_ORDER:
      counters.outOfOrder.add(1, tags);
      return false;
    default:
      return true;
  }
}

/** Whether `ids` is strictly increasing. */
export function strictlyIncreasing(ids) {
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i] > ids[i - 1])) return false;
  }
  return true;
}

/** The ids of `logIds` that `seq` never received. */
export function missingIds(logIds, seq) {
  return logIds.filter((id) => !seq.has(id));
}

/** Index of the first element of sorted `ids` that is greater than `value`. */
export function upperBound(ids, value) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
