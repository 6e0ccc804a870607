/**
 * This tab's end of the pipeline: where events, resets, reports, errors and
 * status land, whether they come from this tab's own supervisor or, relayed,
 * from the leader tab's. Either way they go through the same cursor and the
 * same de-duplication, which is what makes a hand-over between tabs loss-
 * and duplicate-free.
 */

import type { Cursor } from './cursor.js';
import type { Delivery } from './delivery.js';
import type { PushlogError } from './errors.js';
import type { ChangesReport, PushEvent, ResetInfo, ResetReason } from './event.js';
import type { Listeners } from './listeners.js';
import type { ConnectionSnapshot, SnapshotPatch, SnapshotStore } from './state.js';
import type { Pipeline } from './supervisor.js';

/** The app's callbacks other than event handlers. */
export interface LocalHooks {
  readonly resets: Listeners<[ResetReason, ResetInfo]>;
  readonly errors: Listeners<[PushlogError]>;
  readonly changedWhileAway: Listeners<[ChangesReport]>;
  readonly initialState: Listeners<[ChangesReport]>;
}

export class LocalPipeline implements Pipeline {
  /**
   * What arrived while this tab loads its initial state, applied once the
   * state is in; `null` when not loading. Relayed events must not reach the
   * app before the state they come after.
   */
  private held: (() => void)[] | null = null;

  constructor(
    private readonly cursorStore: Cursor,
    private readonly delivery: Delivery,
    private readonly store: SnapshotStore,
    private readonly hooks: LocalHooks,
  ) {}

  cursor(): number | null {
    return this.cursorStore.value;
  }

  startFrom(head: number): void {
    this.cursorStore.advance(head);
  }

  deliver(event: PushEvent): boolean {
    if (this.hold(() => this.deliver(event))) return false;
    return this.delivery.deliver(event);
  }

  skipTo(id: number): void {
    if (this.hold(() => this.skipTo(id))) return;
    this.cursorStore.advance(id);
  }

  /**
   * Moves the cursor to the server's head first, then tells the app: by the
   * time its `onReset` refetches, nothing at or below the head will be
   * delivered on top of the fresh state.
   */
  reset(info: ResetInfo): void {
    // Held, a reset at or below the initial state's head changes nothing:
    // that state is the refetch the reset asks for.
    if (this.hold(() => info.head > (this.cursor() ?? -1) && this.reset(info))) return;
    this.cursorStore.resetTo(info.head);
    this.hooks.resets.emit(info.reason, info);
  }

  /**
   * The cursor moves to the report's head first, then the app hears which
   * entities changed, as with `reset`.
   */
  changedWhileAway(report: ChangesReport): void {
    if (this.hold(() => report.head > (this.cursor() ?? -1) && this.changedWhileAway(report))) return;
    this.cursorStore.advance(report.head);
    this.hooks.changedWhileAway.emit(report);
  }

  /** From now until `initialState()`, what arrives waits. */
  holdForInitialState(): void {
    this.held ??= [];
  }

  /**
   * The tab's initial state: the cursor goes to exactly its head (a stored
   * cursor ahead of it would drop the events in between), the app gets the
   * state, then whatever arrived meanwhile is applied: what is at or below
   * the head is a duplicate of the state and dropped.
   */
  initialState(report: ChangesReport): void {
    const cursor = this.cursor();
    if (cursor === null || cursor < report.head) this.cursorStore.advance(report.head);
    else if (cursor > report.head) this.cursorStore.resetTo(report.head);
    this.hooks.initialState.emit(report);
    this.release();
  }

  /** Applies what was held, in order, and holds nothing more. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const apply of held) apply();
  }

  error(error: PushlogError): void {
    this.hooks.errors.emit(error);
  }

  /** Never held: it describes the connection the tabs share, which is true meanwhile. */
  status(patch: SnapshotPatch): void {
    this.store.update(patch);
  }

  snapshot(): ConnectionSnapshot {
    return this.store.get();
  }

  /** Queues `apply` while holding; says whether it did. */
  private hold(apply: () => unknown): boolean {
    if (this.held === null) return false;
    this.held.push(apply);
    return true;
  }
}
