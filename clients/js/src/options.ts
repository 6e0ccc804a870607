/**
 * What `connect()` accepts, and its one-time check and completion into a
 * `Config`. Invalid options throw a `TypeError` at `connect()`: a typo in an
 * interval must not silently become a default.
 */

import { DEFAULT_BACKOFF } from './backoff.js';
import type { BackoffPolicy, RandomSource } from './backoff.js';
import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import type { PushlogError } from './errors.js';
import type { ChangesReport, ResetInfo, ResetReason } from './event.js';
import { alwaysOnline, browserNetwork, globalPlatform } from './platform.js';
import type {
  BroadcastChannelConstructor,
  EventSourceConstructor,
  FetchLike,
  LockManagerLike,
  NetworkMonitor,
  StorageLike,
  WebSocketConstructor,
} from './platform.js';
import type { TransportKind } from './state.js';
import { parseBaseUrl } from './transports/endpoints.js';

export interface ConnectOptions {
  /** The server's base URL, e.g. `https://push.example.com` (a path prefix is kept). */
  readonly url: string | URL;
  /** Topic patterns to receive: exact, `prefix*`, or `*` (the default). */
  readonly topics?: readonly string[] | undefined;
  /**
   * Event types to receive: exact (`entity:updated`) or a prefix ending in
   * `*` (`notification:*`). Default: every type. Applies to every transport
   * and to the changes the client reads.
   */
  readonly types?: readonly string[] | undefined;
  /** A fixed token. Omit both `token` and `getToken` to rely on the `pushlog_token` cookie. */
  readonly token?: string | undefined;
  /** Called before every connection attempt and poll request, so tokens can refresh. */
  readonly getToken?: (() => string | undefined | Promise<string | undefined>) | undefined;
  /** The preferred transport; lesser ones are fallbacks. Default `websocket`. */
  readonly transport?: TransportKind | undefined;
  /** Whether to fall back to lesser transports at all. Default `true`. */
  readonly fallback?: boolean | undefined;
  /** Failed attempts on a transport before falling back. Default 3. */
  readonly fallbackAfter?: number | undefined;
  /** Poll interval when polling and nothing more is pending. Default 5 000 ms. */
  readonly pollIntervalMs?: number | undefined;
  /** How often to try the preferred transport again while on a fallback. Default 60 000 ms. */
  readonly upgradeIntervalMs?: number | undefined;
  /** Reconnect backoff window: first ceiling and cap. Default 1 000 ms and 30 000 ms. */
  readonly backoff?: Partial<BackoffPolicy> | undefined;
  /** How long a session must stay up before the backoff resets. Default 10 000 ms. */
  readonly stableAfterMs?: number | undefined;
  /** How long an attempt may take to open. Default 10 000 ms. */
  readonly connectTimeoutMs?: number | undefined;
  /** Timeout of each HTTP request (polling, SSE checks). Default 15 000 ms. */
  readonly requestTimeoutMs?: number | undefined;
  /** WebSocket heartbeat when the server's `welcome` names none. Default 30 000 ms. */
  readonly heartbeatMs?: number | undefined;
  /** How long an SSE stream may stay silent before the client checks on it. Default 30 000 ms. */
  readonly sseCheckIntervalMs?: number | undefined;
  /** Start after this event id, overriding a stored cursor. */
  readonly since?: number | undefined;
  /**
   * Before going live, read the current state of every entity on `topics`
   * (`/events/changes?since=0`) and hand it to `onInitialState`; then live
   * from just after it. Per tab: every tab gets its own. Not with `since`.
   */
  readonly initialState?: boolean | undefined;
  /** Where to persist the cursor so a reload resumes: `localStorage`, `sessionStorage`, … */
  readonly storage?: StorageLike | undefined;
  /** The storage key. Default `pushlog:cursor:<url>|<topics>`. */
  readonly storageKey?: string | undefined;
  /** One connection for all tabs of this origin. Default `true` in pages that have BroadcastChannel. */
  readonly shareAcrossTabs?: boolean | undefined;
  /** Tabs with the same scope share a connection. Default `pushlog:<url>|<topics>`. */
  readonly tabScope?: string | undefined;
  /** Leader heartbeat for browsers without Web Locks. Default 1 000 ms. */
  readonly leaderHeartbeatMs?: number | undefined;
  /** The server could not resume: refetch everything, then rely on events again. */
  readonly onReset?: ((reason: ResetReason, info: ResetInfo) => void) | undefined;
  /**
   * The cursor had expired, but the server still knew which entities changed
   * after it: refetch those (`report.entities`); the rest of the app's state
   * is current.
   */
  readonly onChangedWhileAway?: ((report: ChangesReport) => void) | undefined;
  /** With `initialState`: the latest event of every entity, before any live event. */
  readonly onInitialState?: ((report: ChangesReport) => void) | undefined;
  readonly onError?: ((error: PushlogError) => void) | undefined;

  // Platform seams, defaulting to the globals: for tests, polyfills and
  // non-browser runtimes.
  readonly WebSocket?: WebSocketConstructor | undefined;
  readonly EventSource?: EventSourceConstructor | undefined;
  readonly fetch?: FetchLike | undefined;
  readonly BroadcastChannel?: BroadcastChannelConstructor | undefined;
  /** `navigator.locks`; pass `null` to force the BroadcastChannel election. */
  readonly locks?: LockManagerLike | null | undefined;
  readonly network?: NetworkMonitor | undefined;
  readonly clock?: Clock | undefined;
  /** Random source for backoff jitter and tab ids. */
  readonly random?: RandomSource | undefined;
}

export interface SharingConfig {
  readonly BroadcastChannel: BroadcastChannelConstructor;
  readonly locks: LockManagerLike | undefined;
  readonly scope: string;
  readonly leaderHeartbeatMs: number;
}

export interface Config {
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  readonly types: readonly string[] | undefined;
  readonly getToken: () => Promise<string | undefined>;
  readonly ladder: readonly TransportKind[];
  readonly fallbackAfter: number;
  readonly pollIntervalMs: number;
  readonly upgradeIntervalMs: number;
  readonly backoff: BackoffPolicy;
  readonly stableAfterMs: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly sseCheckIntervalMs: number;
  readonly since: number | undefined;
  readonly initialState: boolean;
  readonly storage: StorageLike | undefined;
  readonly storageKey: string;
  readonly sharing: SharingConfig | undefined;
  readonly onReset: ConnectOptions['onReset'];
  readonly onChangedWhileAway: ConnectOptions['onChangedWhileAway'];
  readonly onInitialState: ConnectOptions['onInitialState'];
  readonly onError: ConnectOptions['onError'];
  readonly WebSocket: WebSocketConstructor | undefined;
  readonly EventSource: EventSourceConstructor | undefined;
  readonly fetch: FetchLike | undefined;
  readonly network: NetworkMonitor;
  readonly clock: Clock;
  readonly random: RandomSource;
}

const LADDER: readonly TransportKind[] = ['websocket', 'sse', 'polling'];

export function resolveOptions(options: ConnectOptions): Config {
  const globals = globalPlatform();
  const baseUrl = parseBaseUrl(options.url);
  const topics = [...(options.topics ?? ['*'])];
  if (topics.length === 0 || topics.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new TypeError('pushlog: topics must be a non-empty list of topic patterns');
  }
  const types = options.types === undefined ? undefined : [...options.types];
  if (types !== undefined && (types.length === 0 || types.some((t) => typeof t !== 'string' || t.length === 0))) {
    throw new TypeError('pushlog: types must be a non-empty list of event types (omit it for every type)');
  }
  if (options.token !== undefined && options.getToken !== undefined) {
    throw new TypeError('pushlog: pass either token or getToken, not both');
  }

  const WebSocket = options.WebSocket ?? globals.WebSocket;
  const EventSource = options.EventSource ?? globals.EventSource;
  const fetch = options.fetch ?? globals.fetch;
  const preferred = options.transport ?? 'websocket';
  if (!LADDER.includes(preferred)) throw new TypeError(`pushlog: unknown transport ${String(preferred)}`);
  const available: Record<TransportKind, boolean> = {
    websocket: WebSocket !== undefined,
    // SSE asks /events/missed for the head and for its liveness check.
    sse: EventSource !== undefined && fetch !== undefined,
    polling: fetch !== undefined,
  };
  const wanted = options.fallback === false ? [preferred] : LADDER.slice(LADDER.indexOf(preferred));
  const ladder = wanted.filter((kind) => available[kind]);
  if (ladder.length === 0) {
    throw new TypeError(
      `pushlog: none of ${wanted.join(', ')} is available here; pass an implementation in the options`,
    );
  }

  // Clients with other filters need other connections and other cursors.
  // Without types the scope is what it always was, so stored cursors stay.
  const scope = `${baseUrl.href}|${topics.join(',')}${types ? `|types=${types.join(',')}` : ''}`;
  const BroadcastChannel = options.BroadcastChannel ?? globals.BroadcastChannel;
  const share = options.shareAcrossTabs ?? (BroadcastChannel !== undefined && globals.isDocument);
  if (share && BroadcastChannel === undefined) {
    throw new TypeError('pushlog: shareAcrossTabs needs BroadcastChannel');
  }

  const since = options.since;
  if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) {
    throw new TypeError('pushlog: since must be an event id (a non-negative integer)');
  }
  const initialState = options.initialState ?? false;
  if (initialState && since !== undefined) {
    throw new TypeError('pushlog: initialState starts from the current state; it does not go with since');
  }
  if (initialState && fetch === undefined) {
    throw new TypeError('pushlog: initialState needs fetch; pass an implementation in the options');
  }
  const getToken = tokenSource(options);
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  positive('backoff.initialMs', backoff.initialMs);
  positive('backoff.maxMs', backoff.maxMs);

  return {
    baseUrl,
    topics,
    types,
    getToken,
    ladder,
    fallbackAfter: positive('fallbackAfter', options.fallbackAfter ?? 3),
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs ?? 5_000),
    upgradeIntervalMs: positive('upgradeIntervalMs', options.upgradeIntervalMs ?? 60_000),
    backoff,
    stableAfterMs: positive('stableAfterMs', options.stableAfterMs ?? 10_000),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000),
    requestTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs ?? 15_000),
    heartbeatMs: positive('heartbeatMs', options.heartbeatMs ?? 30_000),
    sseCheckIntervalMs: positive('sseCheckIntervalMs', options.sseCheckIntervalMs ?? 30_000),
    since,
    initialState,
    storage: options.storage,
    storageKey: options.storageKey ?? `pushlog:cursor:${scope}`,
    sharing:
      share && BroadcastChannel
        ? {
            BroadcastChannel,
            locks: options.locks === null ? undefined : (options.locks ?? globals.locks),
            scope: options.tabScope ?? `pushlog:${scope}`,
            leaderHeartbeatMs: positive('leaderHeartbeatMs', options.leaderHeartbeatMs ?? 1_000),
          }
        : undefined,
    onReset: options.onReset,
    onChangedWhileAway: options.onChangedWhileAway,
    onInitialState: options.onInitialState,
    onError: options.onError,
    WebSocket,
    EventSource,
    fetch,
    network: options.network ?? browserNetwork() ?? alwaysOnline,
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
  };
}

function tokenSource(options: ConnectOptions): () => Promise<string | undefined> {
  const { token, getToken } = options;
  if (getToken) return async () => getToken();
  return async () => token;
}

function positive(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0)) {
    throw new TypeError(`pushlog: ${name} must be a positive number, not ${String(value)}`);
  }
  return value;
}
