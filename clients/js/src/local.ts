/**
 * This tab's end of the pipeline: where events, resets, errors and status
 * land, whether they come from this tab's own supervisor or, relayed, from
 * the leader tab's. Either way they go through the same cursor and the same
 * de-duplication, which is what makes a hand-over between tabs loss- and
 * duplicate-free.
 */

import type { Cursor } from './cursor.js';
import type { Delivery } from './delivery.js';
import type { PushlogError } from './errors.js';
import type { PushEvent, ResetInfo, ResetReason } from './event.js';
import type { Listeners } from './listeners.js';
import type { ConnectionSnapshot, SnapshotPatch, SnapshotStore } from './state.js';
import type { Pipeline } from './supervisor.js';

export class LocalPipeline implements Pipeline {
  constructor(
    private readonly cursorStore: Cursor,
    private readonly delivery: Delivery,
    private readonly store: SnapshotStore,
    private readonly resets: Listeners<[ResetReason, ResetInfo]>,
    private readonly errors: Listeners<[PushlogError]>,
  ) {}

  cursor(): number | null {
    return this.cursorStore.value;
  }

  startFrom(head: number): void {
    this.cursorStore.advance(head);
  }

  deliver(event: PushEvent): boolean {
    return this.delivery.deliver(event);
  }

  skipTo(id: number): void {
    this.cursorStore.advance(id);
  }

  /**
   * Moves the cursor to the server's head first, then tells the app: by the
   * time its `onReset` refetches, nothing at or below the head will be
   * delivered on top of the fresh state.
   */
  reset(info: ResetInfo): void {
    this.cursorStore.resetTo(info.head);
    this.resets.emit(info.reason, info);
  }

  error(error: PushlogError): void {
    this.errors.emit(error);
  }

  status(patch: SnapshotPatch): void {
    this.store.update(patch);
  }

  snapshot(): ConnectionSnapshot {
    return this.store.get();
  }
}
