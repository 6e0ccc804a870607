import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connected, event, launch, start, world } from './support/harness.js';

describe('connection state', () => {
  it('goes connecting → connected when the server welcomes the client', async () => {
    const h = await launch();
    assert.equal(h.client.getState(), 'connecting');
    assert.equal(h.sockets.length, 1);

    h.socket().accept({ head: 0 });

    assert.equal(h.client.getState(), 'connected');
    assert.deepEqual(h.states, ['connecting', 'connected']);
    assert.equal(h.snapshot().transport, 'websocket');
    assert.equal(h.snapshot().isLeader, true);
  });

  it('goes connected → reconnecting → connected when the connection drops, and counts it', async () => {
    const h = await connected();
    h.socket().drop(1006);
    assert.equal(h.client.getState(), 'reconnecting');
    assert.equal(h.snapshot().transport, null);

    await h.clock.advance(500);
    h.socket().accept();

    assert.deepEqual(h.states, ['connecting', 'connected', 'reconnecting', 'connected']);
    assert.equal(h.snapshot().reconnects, 1);
  });

  it('waits a growing, jittered delay between failed attempts', async () => {
    // The fallback threshold is raised so the ladder does not interfere.
    const h = await launch({ fallbackAfter: 100 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      h.socket().drop(1006);
      delays.push(h.clock.pendingDelays()[0] ?? -1);
      await h.clock.advance(delays.at(-1) ?? 0);
    }
    // random() is pinned at 0.5: half of 1, 2, 4, 8, 16, 30 s.
    assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 15_000]);
  });

  it('resets the backoff only after a connection stayed up for the stable period', async () => {
    const h = await launch({ fallbackAfter: 100 });
    for (let i = 0; i < 3; i += 1) {
      h.socket().drop(1006);
      await h.clock.advance(h.clock.pendingDelays()[0] ?? 0);
    }
    // Up for 9 s, not stable yet: the next delay keeps growing.
    h.socket().accept();
    await h.clock.advance(9_000);
    h.socket().drop(1006);
    assert.equal(h.clock.pendingDelays()[0], 4_000);

    await h.clock.advance(4_000);
    h.socket().accept();
    await h.clock.advance(10_000);
    h.socket().drop(1006);
    assert.equal(h.clock.pendingDelays()[0], 500);
  });

  it('reconnects at once on reconnect(), without waiting out a backoff', async () => {
    const h = await connected();
    const first = h.socket();
    h.client.reconnect();
    await h.clock.advance(0);

    assert.deepEqual(first.closedWith?.code, 1000);
    assert.equal(h.sockets.length, 2);
    h.socket().accept();
    assert.equal(h.client.getState(), 'connected');
  });

  it('goes offline on close() and stays there', async () => {
    const h = await connected();
    h.client.close();
    assert.equal(h.client.getState(), 'offline');
    assert.ok(h.socket().closedWith);
    await h.clock.advance(120_000);
    assert.equal(h.sockets.length, 1);
  });

  it('goes offline while the browser has no network, and reconnects the moment it has', async () => {
    const h = await connected();
    h.network.set(false);
    assert.equal(h.client.getState(), 'offline');
    assert.ok(h.socket().closedWith);
    await h.clock.advance(60_000);
    assert.equal(h.sockets.length, 1, 'no attempts while offline');

    h.network.set(true);
    await h.clock.advance(0);
    assert.equal(h.sockets.length, 2);
    assert.equal(h.client.getState(), 'reconnecting');
    h.socket().accept();
    assert.equal(h.client.getState(), 'connected');
  });

  it('starts offline when the browser starts without a network', async () => {
    const shared = world();
    shared.network.set(false);
    const h = start({}, shared);
    await h.clock.advance(5_000);
    assert.equal(h.client.getState(), 'offline');
    assert.equal(h.sockets.length, 0);
  });

  it('gives up on an attempt the server never answers after the connect timeout', async () => {
    const h = await launch({ connectTimeoutMs: 10_000 });
    await h.clock.advance(10_000);
    assert.ok(h.socket().closedWith, 'the silent socket is closed');
    assert.equal(h.client.getState(), 'reconnecting');
    await h.clock.advance(500);
    assert.equal(h.sockets.length, 2);
  });

  it('publishes counters in the snapshot, which changes identity only on change', async () => {
    const h = await connected();
    const seen: number[] = [];
    h.client.subscribe((s) => seen.push(s.lastEventId ?? -1));
    const before = h.client.getSnapshot();
    assert.equal(h.client.getSnapshot(), before);

    h.socket().events(event(1), event(2));

    assert.deepEqual(seen, [1, 2]);
    assert.notEqual(h.client.getSnapshot(), before);
    assert.equal(h.snapshot().lastEventId, 2);
    assert.ok(Object.isFrozen(h.snapshot()));
  });

  it('reports a throwing state listener without breaking the others', async () => {
    const h = await launch();
    h.client.subscribe(() => {
      throw new Error('listener bug');
    });
    h.socket().accept();
    assert.equal(h.client.getState(), 'connected');
    assert.deepEqual(h.states, ['connecting', 'connected']);
    assert.equal(h.errors[0]?.kind, 'handler');
  });
});
