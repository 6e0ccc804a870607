/**
 * `connect()`: builds a client from its parts and starts it.
 *
 * Every tab has the same local half (cursor, delivery, snapshot, hooks).
 * What feeds it differs: without tab sharing, the tab's own supervisor; with
 * it, the coordinator, which runs a supervisor only while this tab leads and
 * otherwise relays the leader's.
 */

import { Backoff } from './backoff.js';
import { fetchChanges } from './changes.js';
import { Cursor } from './cursor.js';
import { Delivery } from './delivery.js';
import type { EventHandler } from './delivery.js';
import { PushlogError } from './errors.js';
import type { ChangesReport, ResetInfo, ResetReason } from './event.js';
import { loadInitialState } from './initial-state.js';
import { Listeners, reportUncaught } from './listeners.js';
import { LocalPipeline } from './local.js';
import { resolveOptions } from './options.js';
import type { Config, ConnectOptions } from './options.js';
import { SnapshotStore } from './state.js';
import type { ConnectionSnapshot, ConnectionState, TransportKind, Unsubscribe } from './state.js';
import { Supervisor } from './supervisor.js';
import type { ChangesSince, Pipeline, Resumption } from './supervisor.js';
import { channelElection, lockElection } from './tabs/election.js';
import { TabCoordinator } from './tabs/coordinator.js';
import { pollingTransport } from './transports/polling.js';
import type { OpenSession } from './transports/session.js';
import { sseTransport } from './transports/sse.js';
import { webSocketTransport } from './transports/websocket.js';

export interface PushlogClient {
  /** Events whose topic matches `pattern` (exact, `prefix*` or `*`), once each, in id order. */
  on(pattern: string, handler: EventHandler): Unsubscribe;
  /** Events of one type, e.g. `entity:updated`. */
  onType(type: string, handler: EventHandler): Unsubscribe;
  /** The server could not resume from the cursor: refetch everything. */
  onReset(listener: (reason: ResetReason, info: ResetInfo) => void): Unsubscribe;
  /**
   * The cursor had expired, but the server still knew which entities
   * changed after it: refetch those. Comes instead of `onReset`.
   */
  onChangedWhileAway(listener: (report: ChangesReport) => void): Unsubscribe;
  /** With the `initialState` option: the latest event of every entity, before any live event. */
  onInitialState(listener: (report: ChangesReport) => void): Unsubscribe;
  onError(listener: (error: PushlogError) => void): Unsubscribe;
  /** Connection state and counters; called on every change. */
  subscribe(listener: (snapshot: ConnectionSnapshot) => void): Unsubscribe;
  getState(): ConnectionState;
  getSnapshot(): ConnectionSnapshot;
  /** Drops the connection and reconnects at once, from the preferred transport. */
  reconnect(): void;
  /** Stops for good (state `offline`); in a leader tab, another tab takes over. */
  close(): void;
}

/**
 * Opens a connection and keeps it open. Handlers can be added right after:
 * nothing is delivered before the first network round trip.
 */
export function connect(options: ConnectOptions): PushlogClient {
  const config = resolveOptions(options);

  const errors = new Listeners<[PushlogError]>(reportUncaught);
  const reportCallbackError = (cause: unknown) =>
    errors.emit(
      new PushlogError(
        { kind: 'handler', code: 'handler_failed', message: `a pushlog callback threw: ${String(cause)}` },
        { cause },
      ),
    );
  const resets = new Listeners<[ResetReason, ResetInfo]>(reportCallbackError);
  const changedWhileAway = new Listeners<[ChangesReport]>(reportCallbackError);
  const initialState = new Listeners<[ChangesReport]>(reportCallbackError);
  if (config.onError) errors.add(config.onError);
  if (config.onReset) resets.add(config.onReset);
  if (config.onChangedWhileAway) changedWhileAway.add(config.onChangedWhileAway);
  if (config.onInitialState) initialState.add(config.onInitialState);

  const cursor = new Cursor(config.storage, config.storageKey, config.since);
  const snapshots = new SnapshotStore(
    {
      state: 'connecting',
      transport: null,
      lastEventId: cursor.value,
      reconnects: 0,
      missedOnLastReconnect: null,
      isLeader: config.sharing === undefined,
    },
    reportCallbackError,
  );
  cursor.watch((id) => snapshots.update({ lastEventId: id }));
  const delivery = new Delivery(cursor, reportCallbackError);
  const local = new LocalPipeline(cursor, delivery, snapshots, { resets, errors, changedWhileAway, initialState });
  const changesSince = changesReader(config);
  const supervise = (pipeline: Pipeline, resumption: Resumption) =>
    new Supervisor(supervisorOptions(config, changesSince), pipeline, resumption);

  let connection: { listen(): void; start(): void; reconnect(): void; close(): void };
  if (config.sharing) {
    const { BroadcastChannel, locks, scope, leaderHeartbeatMs } = config.sharing;
    const tabId = newTabId(config.random);
    const coordinator = new TabCoordinator({
      tabId,
      channel: new BroadcastChannel(scope),
      election: locks
        ? lockElection(locks, scope)
        : channelElection({
            channel: new BroadcastChannel(`${scope}:election`),
            clock: config.clock,
            tabId,
            heartbeatMs: leaderHeartbeatMs,
          }),
      local,
      lead: supervise,
    });
    connection = {
      listen: () => coordinator.listen(),
      start: () => coordinator.campaign(),
      reconnect: () => coordinator.reconnect(),
      close: () => coordinator.close(),
    };
  } else {
    const supervisor = supervise(local, { resuming: false, reconnects: 0 });
    connection = {
      listen: () => {},
      start: () => supervisor.start(),
      reconnect: () => supervisor.reconnect(),
      close: () => supervisor.stop(),
    };
  }

  let loading: { cancel(): void } | undefined;
  if (config.initialState && changesSince) {
    local.holdForInitialState();
    connection.listen();
    loading = loadInitialState(
      {
        read: (token, signal) => changesSince(0, token, signal),
        getToken: config.getToken,
        backoff: new Backoff(config.backoff, config.random),
        clock: config.clock,
        onError: (error) => local.error(error),
      },
      (result) => {
        loading = undefined;
        if (result.kind === 'state') local.initialState(result.report);
        else local.release();
        connection.start();
      },
    );
  } else {
    connection.start();
  }

  const close = () => {
    if (loading) {
      loading.cancel();
      loading = undefined;
      local.status({ state: 'offline', transport: null });
    }
    connection.close();
  };

  return {
    on: (pattern, handler) => delivery.on(pattern, handler),
    onType: (type, handler) => delivery.onType(type, handler),
    onReset: (listener) => resets.add(listener),
    onChangedWhileAway: (listener) => changedWhileAway.add(listener),
    onInitialState: (listener) => initialState.add(listener),
    onError: (listener) => errors.add(listener),
    subscribe: (listener) => snapshots.subscribe(listener),
    getState: () => snapshots.get().state,
    getSnapshot: () => snapshots.get(),
    reconnect: () => connection.reconnect(),
    close,
  };
}

/** `/events/changes` with this client's filters, all pages; none without `fetch`. */
function changesReader(config: Config): ChangesSince | undefined {
  const { fetch, clock, baseUrl, topics, types, requestTimeoutMs } = config;
  if (!fetch) return undefined;
  return (since, token, signal) =>
    fetchChanges({ fetch, clock, baseUrl, topics, types, token, timeoutMs: requestTimeoutMs, signal }, since);
}

function supervisorOptions(config: Config, changesSince: ChangesSince | undefined) {
  const transports: Partial<Record<TransportKind, OpenSession>> = {};
  const { baseUrl, topics, types, clock, WebSocket, EventSource, fetch } = config;
  if (WebSocket) {
    transports.websocket = webSocketTransport({
      baseUrl,
      topics,
      types,
      WebSocket,
      clock,
      defaultHeartbeatMs: config.heartbeatMs,
    });
  }
  if (EventSource && fetch) {
    transports.sse = sseTransport({
      baseUrl,
      topics,
      types,
      EventSource,
      fetch,
      clock,
      checkIntervalMs: config.sseCheckIntervalMs,
      requestTimeoutMs: config.requestTimeoutMs,
    });
  }
  if (fetch) {
    transports.polling = pollingTransport({
      baseUrl,
      topics,
      types,
      fetch,
      clock,
      intervalMs: config.pollIntervalMs,
      requestTimeoutMs: config.requestTimeoutMs,
    });
  }
  return {
    ladder: config.ladder,
    transports,
    fallbackAfter: config.fallbackAfter,
    // One per supervisor: a tab that takes over starts with fresh windows.
    backoff: new Backoff(config.backoff, config.random),
    stableAfterMs: config.stableAfterMs,
    connectTimeoutMs: config.connectTimeoutMs,
    upgradeIntervalMs: config.upgradeIntervalMs,
    clock,
    network: config.network,
    getToken: config.getToken,
    changesSince,
  };
}

/** Unique per tab; `randomUUID` is missing outside secure contexts. */
function newTabId(random: () => number): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof crypto?.randomUUID === 'function') return crypto.randomUUID();
  return `${random().toString(36).slice(2)}${Date.now().toString(36)}`;
}
