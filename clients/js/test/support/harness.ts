/**
 * One client wired to fakes for everything: clock, WebSocket, EventSource,
 * the HTTP endpoints, the network. Each test reads as "the server does X,
 * the client is seen to do Y".
 */

import { connect } from '../../src/connect.js';
import type { PushlogClient } from '../../src/connect.js';
import type { PushlogError } from '../../src/errors.js';
import type { ChangesReport, EntityEvent, PushEvent, ResetInfo } from '../../src/event.js';
import type { ConnectOptions } from '../../src/options.js';
import type { NetworkMonitor } from '../../src/platform.js';
import type { ConnectionSnapshot, ConnectionState } from '../../src/state.js';
import { FakeClock } from './fake-clock.js';
import { fakeEventSource } from './fake-event-source.js';
import type { FakeStream } from './fake-event-source.js';
import { FakeServer } from './fake-server.js';
import { fakeWebSocket } from './fake-websocket.js';
import type { FakeSocket } from './fake-websocket.js';

export const BASE_URL = 'https://push.example.com';

/** The fakes several tabs of one browser share. */
export interface World {
  readonly clock: FakeClock;
  readonly server: FakeServer;
  readonly sockets: FakeSocket[];
  readonly streams: FakeStream[];
  readonly WebSocket: new (url: string) => FakeSocket;
  readonly EventSource: new (url: string) => FakeStream;
  readonly network: FakeNetwork;
}

export function world(): World {
  const { WebSocket, sockets } = fakeWebSocket();
  const { EventSource, streams } = fakeEventSource();
  return {
    clock: new FakeClock(),
    server: new FakeServer(),
    sockets,
    streams,
    WebSocket,
    EventSource,
    network: new FakeNetwork(),
  };
}

export interface Harness extends World {
  readonly client: PushlogClient;
  /** Every event a handler on `*` received, in order. */
  readonly received: PushEvent[];
  readonly resets: { reason: string; info: ResetInfo }[];
  /** Every "changed while you were away" report, in order. */
  readonly awayReports: ChangesReport[];
  readonly initialStates: ChangesReport[];
  readonly errors: PushlogError[];
  /** Every state the client went through, in order, without repeats. */
  readonly states: ConnectionState[];
  snapshot(): ConnectionSnapshot;
  /** The socket the client opened last. */
  socket(): FakeSocket;
  /** The stream the client opened last. */
  stream(): FakeStream;
  receivedIds(): number[];
}

/** Starts a client against fakes; `options` override the defaults. */
export function start(options: Partial<ConnectOptions> = {}, shared: World = world()): Harness {
  const received: PushEvent[] = [];
  const resets: Harness['resets'] = [];
  const awayReports: ChangesReport[] = [];
  const initialStates: ChangesReport[] = [];
  const errors: PushlogError[] = [];
  const states: ConnectionState[] = [];
  const client = connect({
    url: BASE_URL,
    topics: ['alerts'],
    token: 'token-1',
    // Jitter pinned to the middle of each window: 500, 1000, 2000, … ms.
    random: () => 0.5,
    shareAcrossTabs: false,
    clock: shared.clock,
    WebSocket: shared.WebSocket,
    EventSource: shared.EventSource,
    fetch: shared.server.fetch,
    network: shared.network,
    onReset: (reason, info) => resets.push({ reason, info }),
    onChangedWhileAway: (report) => awayReports.push(report),
    onInitialState: (report) => initialStates.push(report),
    onError: (error) => errors.push(error),
    ...options,
  });
  const record = (state: ConnectionState) => {
    if (states.at(-1) !== state) states.push(state);
  };
  record(client.getState());
  client.subscribe((snapshot) => record(snapshot.state));
  client.on('*', (event) => received.push(event));
  return {
    ...shared,
    client,
    received,
    resets,
    awayReports,
    initialStates,
    errors,
    states,
    snapshot: () => client.getSnapshot(),
    socket: () => last(shared.sockets, 'no WebSocket was opened'),
    stream: () => last(shared.streams, 'no EventSource was opened'),
    receivedIds: () => received.map((e) => e.id),
  };
}

function last<T>(items: readonly T[], message: string): T {
  const item = items.at(-1);
  if (item === undefined) throw new Error(message);
  return item;
}

/** A network the test can unplug. */
export class FakeNetwork implements NetworkMonitor {
  private online = true;
  private readonly listeners = new Set<(online: boolean) => void>();

  isOnline(): boolean {
    return this.online;
  }

  subscribe(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(online: boolean): void {
    this.online = online;
    for (const listener of this.listeners) listener(online);
  }
}

/** A minimal event as the server would send it. */
export function event(id: number, topic = 'alerts', type = 'entity:updated', extra: Partial<PushEvent> = {}): PushEvent {
  return { id, topic, type, timestamp: '2026-11-22T10:15:03.123Z', ...extra };
}

/** What publishing a change of entity `kind`/`id` carries. */
export function change(kind: string, id: string, op = 'updated'): Partial<PushEvent> {
  return { entity: { kind, id, op } };
}

/** An event naming an entity, as `/events/changes` returns it. */
export function entityEvent(id: number, kind: string, entityId: string, op = 'updated', topic = 'alerts'): EntityEvent {
  return { id, topic, type: `entity:${op}`, timestamp: '2026-11-22T10:15:03.123Z', entity: { kind, id: entityId, op } };
}

/** `start`, then lets the first attempt get under way. */
export async function launch(options: Partial<ConnectOptions> = {}, shared: World = world()): Promise<Harness> {
  const harness = start(options, shared);
  await shared.clock.advance(0);
  return harness;
}

/** `launch`, then the server accepts the WebSocket and replays nothing. */
export async function connected(
  options: Partial<ConnectOptions> = {},
  shared: World = world(),
  head = 0,
): Promise<Harness> {
  const harness = await launch(options, shared);
  harness.socket().accept({ head });
  harness.socket().caughtUp(head);
  return harness;
}
