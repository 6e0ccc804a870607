// Polling (`GET /events/missed` in a loop), the last rung of the ladder,
// against the real server: chosen directly, and reached by falling back
// when neither WebSocket nor SSE gets through.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connectRecorded, idsOf } from './support/client.mjs';
import { batch, PushlogServer, waitFor } from './support/pushlog.mjs';

/** A network that lets plain HTTP requests through and nothing long-lived. */
class BlockedWebSocket {
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  constructor() {
    setTimeout(() => {
      this.onerror?.({});
      this.onclose?.({ code: 1006, reason: '' });
    }, 0);
  }
  send() {}
  close() {}
}

class BlockedEventSource {
  onopen = null;
  onmessage = null;
  onerror = null;
  constructor() {
    setTimeout(() => this.onerror?.({}), 0);
  }
  addEventListener() {}
  close() {}
}

describe('polling against the real server', () => {
  it('pages through /events/missed and resumes gap-free after kill -9 and a restart', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();
    const c = connectRecorded(server, {
      transport: 'polling',
      fallback: false,
      pollIntervalMs: 100,
      backoff: { initialMs: 200, maxMs: 400 },
    });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the first poll');
    assert.equal(c.snapshot().transport, 'polling');

    // More than one page: the server's default page is 500 events.
    const first = [
      ...(await server.publish(batch('bulk', 1000))),
      ...(await server.publish(batch('bulk', 200, 'message:new', 1000))),
    ];
    await waitFor(() => c.events.length === first.length, 10_000, `${first.length} events`);
    assert.deepEqual(c.ids(), idsOf(first));

    await server.kill();
    await waitFor(() => c.snapshot().state === 'reconnecting', 5_000, 'a poll to fail');
    await server.start();
    const second = await server.publish(batch('bulk', 5, 'message:new', 1200));
    await waitFor(() => c.events.length === first.length + second.length, 15_000, 'the events published after the restart');
    assert.deepEqual(c.ids(), idsOf([...first, ...second]));
    assert.equal(c.snapshot().reconnects, 1);
  });

  it('is where the client ends up when WebSocket and SSE are blocked, and it delivers', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();
    const c = connectRecorded(server, {
      WebSocket: BlockedWebSocket,
      EventSource: BlockedEventSource,
      fallbackAfter: 1,
      pollIntervalMs: 100,
      backoff: { initialMs: 50, maxMs: 100 },
    });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'fallback', 10_000, 'the fallback to polling');
    assert.equal(c.snapshot().transport, 'polling');

    const published = await server.publish(batch('alerts', 4));
    await waitFor(() => c.events.length === 4, 5_000, 'the events over polling');
    assert.deepEqual(c.ids(), idsOf(published));
  });
});
