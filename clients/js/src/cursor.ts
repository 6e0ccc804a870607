/**
 * The resume cursor: the id of the last event this tab has processed.
 *
 * Optionally persisted to a `Storage`-like object so that a page reload
 * resumes where the page left off. Persistence is best effort: a full or
 * disabled storage (Safari private mode throws on `setItem`) costs the
 * reload resume, never the live connection.
 */

import { isEventId } from './event.js';
import type { StorageLike } from './platform.js';

export class Cursor {
  private current: number | null;
  private onChange: (id: number) => void = () => {};

  constructor(
    private readonly storage: StorageLike | undefined,
    private readonly key: string,
    /** An explicit start (the `since` option) wins over a stored one. */
    initial: number | undefined,
  ) {
    this.current = initial ?? this.load();
  }

  /** Calls `listener` whenever the cursor moves (one listener: the snapshot). */
  watch(listener: (id: number) => void): void {
    this.onChange = listener;
  }

  get value(): number | null {
    return this.current;
  }

  /**
   * Moves forward to `id`; ids at or below the current one are ignored.
   * Returns whether the cursor moved, which is how de-duplication works.
   */
  advance(id: number): boolean {
    if (this.current !== null && id <= this.current) return false;
    this.current = id;
    // Several tabs may share one localStorage key and process the same ids
    // slightly apart in time; never let a slower tab move it backwards.
    const stored = this.load();
    if (stored === null || id > stored) this.save(id);
    this.onChange(id);
    return true;
  }

  /**
   * Jumps to the server's head after a reset. Unlike `advance` this may go
   * backwards: a `cursor_unknown` reset means our cursor came from another
   * log and is above its head.
   */
  resetTo(id: number): void {
    this.current = id;
    this.save(id);
    this.onChange(id);
  }

  private load(): number | null {
    try {
      const raw = this.storage?.getItem(this.key);
      if (raw == null || !/^\d+$/.test(raw)) return null;
      const id = Number(raw);
      return isEventId(id) ? id : null;
    } catch {
      return null;
    }
  }

  private save(id: number): void {
    try {
      this.storage?.setItem(this.key, String(id));
    } catch {
      // Best effort; see the module comment.
    }
  }
}
