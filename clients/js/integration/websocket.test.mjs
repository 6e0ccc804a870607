// The client over WebSocket against the real server: live delivery, and a
// gap-free, duplicate-free resume after the server is killed and restarted
// on the same log.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connectRecorded, idsOf } from './support/client.mjs';
import { batch, PushlogServer, waitFor } from './support/pushlog.mjs';

describe('WebSocket against the real server', () => {
  let server;
  before(async () => {
    server = await PushlogServer.create();
    await server.start();
  });
  after(async () => {
    await server?.destroy();
  });

  it('receives what is published over HTTP, once each and in id order', async (t) => {
    const c = connectRecorded(server, { fallback: false, topics: ['orders', 'faults'] });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the client to connect');

    const published = await server.publish([
      ...batch('orders', 3),
      { topic: 'faults', type: 'entity:updated', entity: { kind: 'fault', id: '42', op: 'updated' }, payload: { status: 'resolved' } },
      ...batch('elsewhere', 2), // not subscribed
      ...batch('orders', 2, 'message:new', 3),
    ]);
    const wanted = published.filter((e) => e.topic !== 'elsewhere');

    await waitFor(() => c.events.length >= wanted.length, 5_000, `${wanted.length} events`);
    assert.deepEqual(c.ids(), idsOf(wanted));
    assert.deepEqual(c.wire, idsOf(wanted), 'the server sent each event exactly once');
    const fault = c.events.find((e) => e.topic === 'faults');
    assert.deepEqual(fault.entity, { kind: 'fault', id: '42', op: 'updated' });
    assert.deepEqual(fault.payload, { status: 'resolved' });
    assert.equal(c.snapshot().transport, 'websocket');
    assert.equal(c.snapshot().lastEventId, wanted.at(-1).id);
    assert.deepEqual(c.errors, []);
  });
});

describe('WebSocket resume after kill -9', () => {
  it('gets every event published while the server was down or the client away, exactly once, in order', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();

    // A fixed reconnect delay (full jitter drawn at 0.99 of a 3 s window) so
    // that the events published right after the restart are, as intended,
    // missed events the reconnect must replay.
    const retryMs = 3_000;
    const c = connectRecorded(server, {
      fallback: false,
      backoff: { initialMs: retryMs, maxMs: retryMs },
      random: () => 0.99,
    });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the client to connect');

    const before = await server.publish(batch('orders', 5));
    await waitFor(() => c.events.length === 5, 5_000, 'the first 5 events');

    await server.kill();
    const killedAt = Date.now();
    await waitFor(() => c.snapshot().state === 'reconnecting', 5_000, 'the client to notice the crash');

    await server.start();
    const whileAway = await server.publish(batch('orders', 7, 'message:new', 5));
    const awayPublishedAfterMs = Date.now() - killedAt;

    await waitFor(() => c.snapshot().state === 'connected' && c.snapshot().missedOnLastReconnect !== null,
      20_000, 'the client to reconnect and catch up');
    const live = await server.publish(batch('orders', 4, 'message:new', 12));
    const all = [...before, ...whileAway, ...live];
    await waitFor(() => c.events.length >= all.length, 5_000, `all ${all.length} events`);

    assert.deepEqual(c.ids(), idsOf(all), 'every published id, once, in order');
    assert.deepEqual(c.wire, idsOf(all), 'the server replayed from the cursor without gaps or duplicates');
    const snapshot = c.snapshot();
    assert.equal(snapshot.reconnects, 1);
    assert.equal(snapshot.transport, 'websocket');
    if (awayPublishedAfterMs < retryMs * 0.99) {
      assert.equal(snapshot.missedOnLastReconnect, whileAway.length);
    } else {
      // The restart was slower than the retry; some may have come live.
      t.diagnostic(`restart + publish took ${awayPublishedAfterMs} ms, longer than the retry delay`);
      assert.ok(snapshot.missedOnLastReconnect <= whileAway.length);
    }
    t.diagnostic(`server ready ${server.readyAfterMs} ms after restart; missed=${snapshot.missedOnLastReconnect}`);
  });

  it('resumes when the server comes back after several failed attempts', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();
    const c = connectRecorded(server, { fallback: false, backoff: { initialMs: 200, maxMs: 400 } });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the client to connect');
    const first = await server.publish(batch('a', 3));
    await waitFor(() => c.events.length === 3, 5_000, 'the first events');

    await server.kill();
    // Let the client fail against the dead port a few times.
    const attemptsBefore = c.attempts.websocket;
    await waitFor(() => c.attempts.websocket >= attemptsBefore + 3, 10_000, '3 failed reconnect attempts');
    assert.equal(c.snapshot().state, 'reconnecting');
    await server.start();
    const second = await server.publish(batch('a', 4, 'message:new', 3));
    await waitFor(() => c.events.length === 7, 15_000, 'the events published after the restart');
    assert.deepEqual(c.ids(), idsOf([...first, ...second]));
    assert.deepEqual(c.wire, idsOf([...first, ...second]));
    assert.notEqual(c.snapshot().missedOnLastReconnect, null);
  });
});
