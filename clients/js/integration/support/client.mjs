// The real client in Node, wired to the `ws` and `eventsource` packages
// (Node 20 has neither `WebSocket` nor `EventSource` globally), with every
// frame the server sends recorded before the client's de-duplication sees
// it: that is how the tests check the *server's* exactly-once promise, not
// just the client's.

import { EventSource as NodeEventSource } from 'eventsource';
import WebSocket from 'ws';

import { connect } from '../../dist/index.js';

/**
 * Connects a client to `server` and records what it sees: events, states,
 * errors, resets, and the changes reports (`awayReports`, `initialStates`).
 * `wire` lists the ids of every event frame, across all sessions, in arrival
 * order; `attempts` counts the sockets and streams the client opened.
 */
export function connectRecorded(server, options = {}) {
  const wire = [];
  const attempts = { websocket: 0, sse: 0 };
  class RecordingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      attempts.websocket += 1;
      this.addEventListener('message', ({ data }) => {
        const message = JSON.parse(String(data));
        if (message.type === 'event') wire.push(message.event.id);
      });
    }
  }
  class RecordingEventSource extends NodeEventSource {
    constructor(url) {
      super(url);
      attempts.sse += 1;
      this.addEventListener('message', ({ data }) => wire.push(JSON.parse(data).id));
    }
  }
  const client = connect({
    url: server.url,
    token: server.token({ sub: 'reader' }),
    WebSocket: RecordingWebSocket,
    EventSource: RecordingEventSource,
    ...options,
  });
  const events = [];
  const snapshots = [client.getSnapshot()];
  const errors = [];
  const resets = [];
  const awayReports = [];
  const initialStates = [];
  client.on('*', (event) => events.push(event));
  client.subscribe((snapshot) => snapshots.push(snapshot));
  client.onError((error) => errors.push(error));
  client.onReset((reason, info) => resets.push(info));
  client.onChangedWhileAway((report) => awayReports.push(report));
  client.onInitialState((report) => initialStates.push(report));
  return {
    client,
    events,
    wire,
    attempts,
    snapshots,
    errors,
    resets,
    awayReports,
    initialStates,
    ids: () => events.map((event) => event.id),
    snapshot: () => client.getSnapshot(),
  };
}

/** Ids from `server.publish()` results. */
export const idsOf = (published) => published.map((event) => event.id);
