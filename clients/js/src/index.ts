/**
 * @pushlog/client: a browser client for pushlog.
 *
 * A map of the modules, in the order data flows:
 *
 * - `connect.ts`: `connect()`, which assembles the parts below and returns
 *   the `PushlogClient`.
 * - `options.ts`: the options, checked once and completed with defaults.
 * - `tabs/`: one connection per browser. `election.ts` picks the leader tab
 *   (Web Locks, or BroadcastChannel heartbeats); `coordinator.ts` runs the
 *   supervisor in the leader and relays to the others (`messages.ts`).
 * - `supervisor.ts`: keeps a session alive: retries with backoff, falls back
 *   WebSocket → SSE → polling, upgrades back, resumes from the cursor, and
 *   catches up on an expired cursor through `changes.ts`.
 * - `changes.ts`: `/events/changes`, all pages, as one report of the
 *   entities changed after a cursor; `initial-state.ts` reads a tab's
 *   initial state with it before the tab goes live.
 * - `backoff.ts`: exponential backoff with full jitter (pure).
 * - `transports/`: one wire format each: `websocket.ts`, `sse.ts`,
 *   `polling.ts`, over `missed.ts` (one `/events/missed` request),
 *   `log-request.ts` (any paged log read) and `endpoints.ts` (URLs);
 *   `session.ts` is the contract they share.
 * - `local.ts`: where a tab applies what arrives: `cursor.ts` (the resume
 *   point, optionally persisted), `delivery.ts` (de-duplication and handler
 *   routing via `topics.ts`), `state.ts` (the observable snapshot).
 * - `event.ts`, `errors.ts`: the types the app sees, parsed at the edge.
 * - `platform.ts`, `clock.ts`: the browser APIs and timers, injectable.
 * - `tanstack.ts`: invalidate TanStack Query caches from events.
 */

export { connect } from './connect.js';
export type { PushlogClient } from './connect.js';
export type { ConnectOptions } from './options.js';
export type { EventHandler } from './delivery.js';
export type { ChangesReport, EntityEvent, EntityRef, PushEvent, ResetInfo, ResetReason } from './event.js';
export { readChanges } from './changes.js';
export type { ReadChangesOptions } from './changes.js';
export { PushlogError } from './errors.js';
export type { PushlogErrorDetails, PushlogErrorKind } from './errors.js';
export type { ConnectionSnapshot, ConnectionState, TransportKind, Unsubscribe } from './state.js';
export { Backoff, backoffCeiling, DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
export type { BackoffPolicy, RandomSource } from './backoff.js';
export { topicMatches } from './topics.js';
export type { Clock, TimerHandle } from './clock.js';
export type {
  BroadcastChannelConstructor,
  BroadcastChannelLike,
  EventSourceConstructor,
  EventSourceLike,
  FetchLike,
  LockManagerLike,
  NetworkMonitor,
  ResponseLike,
  StorageLike,
  WebSocketConstructor,
  WebSocketLike,
} from './platform.js';
export { invalidateOnEvents } from './tanstack.js';
export type { EventSourceForQueries, InvalidationMapping, QueryFilters, QueryInvalidator, QueryKey } from './tanstack.js';
