import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connected, event, launch, world } from './support/harness.js';

const pings = (sent: Record<string, unknown>[]) => sent.filter((m) => m['type'] === 'ping').length;

describe('WebSocket heartbeat', () => {
  it('pings every heartbeat_ms named in welcome', async () => {
    const h = await launch();
    h.socket().accept({ heartbeat_ms: 5_000 });
    await h.clock.advance(4_999);
    assert.equal(pings(h.socket().sent), 0);
    await h.clock.advance(1);
    assert.equal(pings(h.socket().sent), 1);
    h.socket().push({ type: 'pong' });
    await h.clock.advance(5_000);
    assert.equal(pings(h.socket().sent), 2);
  });

  it('keeps a connection that answers', async () => {
    const h = await launch();
    h.socket().accept({ heartbeat_ms: 5_000 });
    for (let i = 0; i < 20; i += 1) {
      await h.clock.advance(5_000);
      h.socket().push({ type: 'pong' });
    }
    assert.equal(h.sockets.length, 1);
    assert.equal(h.client.getState(), 'connected');
  });

  it('counts any frame as a sign of life, not only pongs', async () => {
    const h = await launch();
    h.socket().accept({ heartbeat_ms: 5_000 });
    for (let i = 1; i <= 10; i += 1) {
      await h.clock.advance(5_000);
      h.socket().events(event(i));
    }
    assert.equal(h.socket().closedWith, null);
  });

  it('gives up on a socket silent for two heartbeats and reconnects from the cursor', async () => {
    const h = await launch();
    h.socket().accept({ heartbeat_ms: 5_000 });
    h.socket().events(event(1));
    await h.clock.advance(10_000);

    assert.deepEqual(h.sockets[0]?.closedWith, { code: 4000, reason: 'heartbeat timeout' });
    assert.equal(h.client.getState(), 'reconnecting');
    await h.clock.advance(500);
    h.socket().accept({ head: 1 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 1);
  });

  it('uses the heartbeatMs option when welcome names none', async () => {
    const h = await connected({ heartbeatMs: 2_000 });
    // `connected` welcomes with the harness default; send a bare welcome instead.
    h.client.reconnect();
    await h.clock.advance(0);
    h.socket().push({ type: 'welcome', connection_id: 'c2', head: 0 });
    await h.clock.advance(2_000);
    assert.equal(pings(h.socket().sent), 1);
  });
});

describe('SSE liveness', () => {
  async function quietStream() {
    const shared = world();
    shared.server.publishMany(3);
    const h = await launch({ transport: 'sse', since: 3, sseCheckIntervalMs: 30_000 }, shared);
    h.stream().open();
    return h;
  }

  it('keeps a quiet stream when the server has nothing newer either', async () => {
    const h = await quietStream();
    await h.clock.advance(120_000);
    assert.equal(h.streams.length, 1);
    assert.equal(h.stream().closed, false);
    assert.ok(h.server.requests.every((r) => r.since === 3 && r.limit === 1));
  });

  it('replaces a stream that stays silent about events the server has', async () => {
    const h = await quietStream();
    h.server.publish('alerts'); // id 4, which the stream never delivers
    await h.clock.advance(30_000);
    assert.equal(h.stream().closed, false, 'one check is not enough: 4 may be in flight');
    await h.clock.advance(30_000);

    assert.equal(h.streams[0]?.closed, true);
    await h.clock.advance(h.clock.pendingDelays()[0] ?? 0);
    assert.equal(h.streams.length, 2);
    assert.equal(h.stream().params.get('since'), '3');
  });

  it('keeps a stream that delivers what the check found', async () => {
    const h = await quietStream();
    const late = h.server.publish('alerts');
    await h.clock.advance(30_000);
    h.stream().events(late);
    await h.clock.advance(30_000);
    assert.equal(h.streams.length, 1);
    assert.deepEqual(h.receivedIds(), [4]);
  });

  it('drops the stream when the server stops answering plain HTTP', async () => {
    const h = await quietStream();
    h.server.mode = { kind: 'down' };
    await h.clock.advance(30_000);
    assert.equal(h.stream().closed, true);
    assert.equal(h.client.getState(), 'reconnecting');
  });

  it('drops an SSE stream on its error event and reconnects with backoff', async () => {
    const h = await quietStream();
    h.stream().fail();
    assert.equal(h.stream().closed, true);
    assert.equal(h.client.getState(), 'reconnecting');
    await h.clock.advance(500);
    assert.equal(h.streams.length, 2);
  });
});
