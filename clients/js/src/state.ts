/**
 * The connection as the app sees it: a state, the transport in use and a few
 * counters, published as one immutable snapshot.
 *
 * The snapshot object only changes identity when a field changes, so it
 * works as-is with React's `useSyncExternalStore(client.subscribe,
 * client.getSnapshot)`.
 */

/**
 * - `connecting`: the first attempt is under way; nothing has failed yet.
 * - `connected`: live on the preferred transport (WebSocket by default).
 * - `reconnecting`: the connection dropped or an attempt failed; waiting out
 *   the backoff or trying again.
 * - `fallback`: live, but on a lesser transport (SSE or polling) while the
 *   preferred one is unreachable; upgrades are tried in the background.
 * - `offline`: not trying: the client was closed, or the browser reports no
 *   network (the client retries as soon as it reports one again).
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'fallback' | 'offline';

export type TransportKind = 'websocket' | 'sse' | 'polling';

export interface ConnectionSnapshot {
  readonly state: ConnectionState;
  /** The transport of the live session; `null` while not live. */
  readonly transport: TransportKind | null;
  /** The resume cursor: the id of the last event processed, if any. */
  readonly lastEventId: number | null;
  /** Sessions re-established after the first one (drops survived). */
  readonly reconnects: number;
  /**
   * Events applied between the start of the latest session and the server's
   * "caught up" mark: what the client had missed while away. `null` from the
   * moment a session opens until it has caught up, and on SSE, which has no
   * such mark; so each catch-up is seen as a change from `null`.
   */
  readonly missedOnLastReconnect: number | null;
  /** Whether this tab holds the connection (always true without tab sharing). */
  readonly isLeader: boolean;
}

export type SnapshotPatch = Partial<ConnectionSnapshot>;

export type Unsubscribe = () => void;

export class SnapshotStore {
  private current: ConnectionSnapshot;
  private readonly listeners = new Set<(snapshot: ConnectionSnapshot) => void>();

  constructor(
    initial: ConnectionSnapshot,
    /** Where a throwing listener is reported; it must not stop the others. */
    private readonly report: (error: unknown) => void,
  ) {
    this.current = Object.freeze({ ...initial });
  }

  get(): ConnectionSnapshot {
    return this.current;
  }

  update(patch: SnapshotPatch): void {
    const next = { ...this.current, ...patch };
    const keys = Object.keys(next) as (keyof ConnectionSnapshot)[];
    if (keys.every((key) => next[key] === this.current[key])) return;
    this.current = Object.freeze(next);
    for (const listener of [...this.listeners]) {
      try {
        listener(this.current);
      } catch (error) {
        this.report(error);
      }
    }
  }

  subscribe(listener: (snapshot: ConnectionSnapshot) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
