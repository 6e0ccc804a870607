import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { Harness } from './support/harness.js';
import { event, launch, world } from './support/harness.js';

/** The current WebSocket attempt fails before `welcome`, then the backoff passes. */
async function failWebSocket(h: Harness): Promise<void> {
  h.socket().drop(1006);
  await h.clock.advance(h.clock.pendingDelays()[0] ?? 0);
}

/** The current SSE attempt fails before it opens, then the backoff passes. */
async function failStream(h: Harness): Promise<void> {
  h.stream().fail();
  await h.clock.advance(h.clock.pendingDelays()[0] ?? 0);
}

describe('fallback', () => {
  it('switches to SSE after three failed WebSocket attempts', async () => {
    const h = await launch({ since: 5 });
    await failWebSocket(h);
    await failWebSocket(h);
    assert.equal(h.streams.length, 0, 'two failures are not enough');
    h.socket().drop(1006);
    await h.clock.advance(0);

    assert.equal(h.sockets.length, 3);
    assert.equal(h.streams.length, 1, 'the switch happens at once');
    assert.equal(h.stream().params.get('since'), '5');
    h.stream().open();
    assert.equal(h.client.getState(), 'fallback');
    assert.equal(h.snapshot().transport, 'sse');

    h.stream().events(event(6));
    assert.deepEqual(h.receivedIds(), [6]);
  });

  it('switches to polling when SSE fails three times too', async () => {
    const shared = world();
    shared.server.publishMany(3);
    const h = await launch({ since: 1 }, shared);
    for (let i = 0; i < 3; i += 1) await failWebSocket(h);
    await failStream(h);
    await failStream(h);
    h.stream().fail();
    await h.clock.advance(0);

    assert.equal(h.snapshot().transport, 'polling');
    assert.equal(h.client.getState(), 'fallback');
    assert.deepEqual(h.receivedIds(), [2, 3]);
  });

  it('honours the fallbackAfter option', async () => {
    const h = await launch({ fallbackAfter: 1 });
    h.socket().drop(1006);
    await h.clock.advance(0);
    assert.equal(h.streams.length, 1);
  });

  it('keeps trying WebSocket in the background and moves back as soon as it works', async () => {
    const shared = world();
    shared.server.publishMany(7);
    const h = await launch({ since: 5, fallbackAfter: 1, upgradeIntervalMs: 60_000 }, shared);
    h.socket().drop(1006);
    await h.clock.advance(0);
    h.stream().open();
    h.stream().events(...shared.server.log.slice(5));

    await h.clock.advance(60_000);
    assert.equal(h.sockets.length, 2, 'an upgrade probe');
    assert.equal(h.client.getState(), 'fallback', 'SSE stays up while the probe connects');
    assert.equal(h.stream().closed, false);

    h.socket().accept({ head: 9 });
    assert.equal(h.stream().closed, true);
    assert.equal(h.client.getState(), 'connected');
    assert.equal(h.snapshot().transport, 'websocket');
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 7);
    assert.equal(h.snapshot().reconnects, 0, 'an upgrade is not a reconnect');

    h.socket().events(event(7), event(8), event(9));
    assert.deepEqual(h.receivedIds(), [6, 7, 8, 9]);
  });

  it('stays on the fallback when the upgrade probe fails, and tries again later', async () => {
    const h = await launch({ fallbackAfter: 1, upgradeIntervalMs: 60_000, since: 0 });
    h.socket().drop(1006);
    await h.clock.advance(0);
    h.stream().open();

    await h.clock.advance(60_000);
    h.socket().drop(1006);
    assert.equal(h.client.getState(), 'fallback');
    assert.equal(h.stream().closed, false);
    assert.equal(h.errors.length, 0, 'a failing probe is not worth an error');

    await h.clock.advance(60_000);
    assert.equal(h.sockets.length, 3);
  });

  it('upgrades from polling straight back to WebSocket', async () => {
    const shared = world();
    shared.server.publishMany(2);
    const h = await launch({ fallbackAfter: 1, since: 0, upgradeIntervalMs: 30_000 }, shared);
    h.socket().drop(1006);
    await h.clock.advance(0);
    h.stream().fail();
    await h.clock.advance(0);
    assert.equal(h.snapshot().transport, 'polling');
    assert.deepEqual(h.receivedIds(), [1, 2]);

    await h.clock.advance(30_000);
    h.socket().accept({ head: 2 });
    const pollsBefore = h.server.requests.length;
    await h.clock.advance(20_000);

    assert.equal(h.snapshot().transport, 'websocket');
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 2);
    assert.equal(h.server.requests.length, pollsBefore, 'polling stopped');
  });

  it('does not fall back when the server rejects the token: SSE would be rejected too', async () => {
    const h = await launch();
    for (let i = 0; i < 5; i += 1) {
      h.socket().drop(4001, 'expired');
      await h.clock.advance(h.clock.pendingDelays()[0] ?? 0);
    }
    assert.equal(h.streams.length, 0);
    assert.equal(h.sockets.length, 6);
  });

  it('never falls back with fallback: false', async () => {
    const h = await launch({ fallback: false });
    for (let i = 0; i < 5; i += 1) await failWebSocket(h);
    assert.equal(h.streams.length, 0);
    assert.equal(h.sockets.length, 6);
  });

  it('returns to WebSocket first after reconnect()', async () => {
    const h = await launch({ fallbackAfter: 1, since: 0 });
    h.socket().drop(1006);
    await h.clock.advance(0);
    h.stream().open();
    h.client.reconnect();
    await h.clock.advance(0);
    assert.equal(h.stream().closed, true);
    assert.equal(h.sockets.length, 2);
  });
});

describe('polling', () => {
  it('rides out an outage with backoff and resumes from its cursor', async () => {
    const shared = world();
    shared.server.publishMany(2);
    const h = await launch({ transport: 'polling', since: 0, pollIntervalMs: 5_000 }, shared);
    assert.deepEqual(h.receivedIds(), [1, 2]);

    shared.server.mode = { kind: 'down' };
    await h.clock.advance(5_000);
    assert.equal(h.client.getState(), 'reconnecting');
    assert.equal(h.errors.at(-1)?.code, 'network_error');
    await h.clock.advance(500);
    assert.equal(h.client.getState(), 'reconnecting');

    shared.server.mode = { kind: 'up' };
    shared.server.publish('alerts');
    await h.clock.advance(1_000);
    assert.deepEqual(h.receivedIds(), [1, 2, 3]);
    assert.equal(h.client.getState(), 'connected');
    assert.equal(h.snapshot().reconnects, 1);
    assert.deepEqual(
      h.server.requests.map((r) => r.since),
      [0, 2, 2, 2],
    );
  });

  it('aborts a request that hangs after requestTimeoutMs', async () => {
    const h = await launch({ transport: 'polling', since: 0, pollIntervalMs: 5_000, requestTimeoutMs: 15_000 });
    h.server.mode = { kind: 'hang' };
    await h.clock.advance(5_000 + 14_999);
    assert.equal(h.client.getState(), 'connected');
    await h.clock.advance(1);
    assert.equal(h.client.getState(), 'reconnecting');
  });

  it('reports a refused token and keeps trying, with a fresh one each time', async () => {
    const shared = world();
    shared.server.mode = { kind: 'status', status: 401, body: { error: 'invalid_token', message: 'expired' } };
    let n = 0;
    const h = await launch({ transport: 'polling', since: 0, token: undefined, getToken: () => `t${(n += 1)}` }, shared);
    await h.clock.advance(500);
    assert.equal(h.errors[0]?.code, 'invalid_token');
    assert.equal(h.errors[0]?.status, 401);
    assert.deepEqual(
      h.server.requests.map((r) => r.authorization),
      ['Bearer t1', 'Bearer t2'],
    );
  });
});

describe('a transport that cannot even be created', () => {
  it('counts as a failed attempt, so the client falls back instead of crashing', async () => {
    class BlockedWebSocket {
      constructor() {
        throw new DOMException("Refused to connect: violates the Content Security Policy", 'SecurityError');
      }
    }
    const h = await launch({ WebSocket: BlockedWebSocket as never, fallbackAfter: 1, since: 0 });
    assert.equal(h.errors[0]?.kind, 'transport');
    assert.equal(h.errors[0]?.code, 'transport_unavailable');
    assert.equal(h.streams.length, 1);
  });
});
