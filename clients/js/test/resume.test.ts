import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { StorageLike } from '../src/platform.js';
import { connected, event, launch, world } from './support/harness.js';

/** A `localStorage` stand-in; shared between "page loads" of one test. */
class MemoryStorage implements StorageLike {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

describe('resume over WebSocket', () => {
  it('starts a client without a cursor from the head the server names, not from nothing', async () => {
    const h = await launch();
    h.socket().accept({ head: 120 });
    assert.deepEqual(h.socket().lastSent('subscribe'), {
      type: 'subscribe',
      topics: ['alerts'],
      since: 120,
      request_id: 'r1',
    });
    assert.equal(h.snapshot().lastEventId, 120);
  });

  it('subscribes with since = the last event id on every reconnect', async () => {
    const h = await connected();
    h.socket().events(event(1), event(2), event(3));
    h.socket().drop(1006);
    await h.clock.advance(500);
    h.socket().accept({ head: 9 });

    assert.equal(h.socket().lastSent('subscribe')?.['since'], 3);

    h.socket().events(event(4));
    h.socket().drop(1001);
    await h.clock.advance(1_000);
    h.socket().accept({ head: 9 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 4);
  });

  it('counts what the replay brought as missedOnLastReconnect', async () => {
    const h = await connected();
    h.socket().events(event(1));
    h.socket().drop(1006);
    await h.clock.advance(500);

    h.socket().accept({ head: 4 });
    h.socket().events(event(2), event(3), event(4));
    h.socket().caughtUp(4);
    h.socket().events(event(5)); // live, after the handover

    assert.equal(h.snapshot().missedOnLastReconnect, 3);
    assert.equal(h.snapshot().reconnects, 1);
    assert.deepEqual(h.receivedIds(), [1, 2, 3, 4, 5]);
  });

  it('shows missedOnLastReconnect as null until the replay is done, so equal counts are still seen', async () => {
    const h = await connected();
    h.socket().drop(1006);
    await h.clock.advance(500);
    h.socket().accept({ head: 0 });
    assert.equal(h.snapshot().missedOnLastReconnect, null, 'unknown while replaying');
    h.socket().caughtUp(0);
    assert.equal(h.snapshot().missedOnLastReconnect, 0);

    const seen: (number | null)[] = [];
    h.client.subscribe((snapshot) => seen.push(snapshot.missedOnLastReconnect));
    h.socket().drop(1006);
    await h.clock.advance(1_000);
    h.socket().accept({ head: 0 });
    h.socket().caughtUp(0);
    // Dropped (the last count stays), reopened (unknown), caught up (0 again).
    assert.deepEqual(seen.filter((missed, i) => missed !== seen[i - 1]), [0, null, 0]);
    assert.equal(h.snapshot().reconnects, 2);
  });

  it('asks getToken() again on every attempt and sends the token as a query parameter', async () => {
    let issued = 0;
    const h = await launch({
      token: undefined,
      getToken: async () => `token-${(issued += 1)}`,
    });
    h.socket().drop(1006);
    await h.clock.advance(500);
    h.socket().drop(4001, 'token expired');
    await h.clock.advance(1_000);

    assert.deepEqual(
      h.sockets.map((s) => s.params.get('token')),
      ['token-1', 'token-2', 'token-3'],
    );
    assert.equal(h.errors[0]?.code, 'unauthorized');
    assert.equal(h.errors[0]?.closeCode, 4001);
  });

  it('reconnects at once with a fresh token when the token expires on a live connection', async () => {
    let issued = 0;
    const h = await connected({ token: undefined, getToken: () => `token-${(issued += 1)}` });
    h.socket().events(event(1));
    h.socket().drop(4001, 'token expired: reconnect or send a fresh `auth`');
    await h.clock.advance(0);

    assert.equal(h.sockets.length, 2);
    assert.equal(h.socket().params.get('token'), 'token-2');

    // Rejected again before `welcome`: now it waits, instead of looping.
    h.socket().drop(4001, 'invalid token');
    await h.clock.advance(0);
    assert.equal(h.sockets.length, 2);
    await h.clock.advance(500);
    assert.equal(h.sockets.length, 3);
    h.socket().accept({ head: 1 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 1);
  });

  it('retries with backoff when getToken() fails, and says why', async () => {
    let fail = true;
    const h = await launch({
      token: undefined,
      getToken: () => {
        if (fail) throw new Error('refresh endpoint down');
        return 'fresh';
      },
    });
    assert.equal(h.sockets.length, 0);
    assert.equal(h.errors[0]?.kind, 'token');
    fail = false;
    await h.clock.advance(500);
    assert.equal(h.socket().params.get('token'), 'fresh');
  });

  it('omits the token entirely for cookie authentication', async () => {
    const h = await launch({ token: undefined });
    assert.equal(h.socket().params.has('token'), false);
    assert.equal(h.socket().url.startsWith('wss://push.example.com/ws'), true);
  });

  it('reconnects at once, with its cursor, when the server says it fell behind (4008)', async () => {
    const h = await connected();
    h.socket().events(event(1), event(2));
    h.socket().drop(4008, 'too far behind');
    await h.clock.advance(0);
    assert.equal(h.sockets.length, 2);
    h.socket().accept({ head: 50 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 2);
  });
});

describe('resume across page loads', () => {
  it('persists the cursor and resumes from it after a reload', async () => {
    const storage = new MemoryStorage();
    const first = await connected({ storage });
    first.socket().events(event(41), event(42));
    first.client.close();

    const reloaded = await launch({ storage }, world());
    assert.equal(reloaded.snapshot().lastEventId, 42);
    reloaded.socket().accept({ head: 50 });
    assert.equal(reloaded.socket().lastSent('subscribe')?.['since'], 42);
  });

  it('uses the storage key it is given', async () => {
    const storage = new MemoryStorage();
    const h = await connected({ storage, storageKey: 'app:cursor' });
    h.socket().events(event(7));
    assert.deepEqual([...storage.items], [['app:cursor', '7']]);
  });

  it('lets an explicit since win over a stored cursor', async () => {
    const storage = new MemoryStorage();
    storage.setItem('k', '42');
    const h = await launch({ storage, storageKey: 'k', since: 10 });
    h.socket().accept({ head: 50 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 10);
  });

  it('never moves a shared stored cursor backwards', async () => {
    const storage = new MemoryStorage();
    const h = await connected({ storage, storageKey: 'k' });
    storage.setItem('k', '100'); // another tab got further already
    h.socket().events(event(5));
    assert.equal(storage.getItem('k'), '100');
  });

  it('ignores a stored value that is not an event id', async () => {
    const storage = new MemoryStorage();
    storage.setItem('k', 'not-a-number');
    const h = await launch({ storage, storageKey: 'k' });
    assert.equal(h.snapshot().lastEventId, null);
  });

  it('keeps working when the storage refuses writes', async () => {
    const storage: StorageLike = {
      getItem: () => null,
      setItem: () => {
        throw new DOMException('quota', 'QuotaExceededError');
      },
    };
    const h = await connected({ storage });
    h.socket().events(event(1), event(2));
    assert.deepEqual(h.receivedIds(), [1, 2]);
    assert.equal(h.errors.length, 0);
  });
});

describe('resume over SSE and polling', () => {
  it('opens each SSE stream with since = the cursor', async () => {
    const h = await launch({ transport: 'sse', since: 7 });
    assert.equal(h.stream().params.get('since'), '7');
    assert.equal(h.stream().params.get('topics'), 'alerts');
    assert.equal(h.stream().params.get('token'), 'token-1');
    h.stream().open();
    h.stream().events(event(8), event(9));
    h.stream().fail();
    await h.clock.advance(500);
    assert.equal(h.stream().params.get('since'), '9');
    assert.equal(h.streams[0]?.closed, true, 'the old EventSource does not reconnect by itself');
  });

  it('starts an SSE client without a cursor from the head, so a drop before the first event loses nothing', async () => {
    const shared = world();
    shared.server.publishMany(30);
    const h = await launch({ transport: 'sse' }, shared);
    assert.equal(h.server.requests[0]?.since, 0, 'asks for the head first');
    assert.equal(h.stream().params.get('since'), '30');
  });

  it('polls with since = the cursor and follows next_since', async () => {
    const shared = world();
    shared.server.publishMany(3);
    const h = await launch({ transport: 'polling', since: 1, pollIntervalMs: 5_000 }, shared);
    assert.deepEqual(h.receivedIds(), [2, 3]);
    assert.equal(h.client.getState(), 'connected');
    assert.equal(h.snapshot().missedOnLastReconnect, 2);

    shared.server.publish('alerts');
    await h.clock.advance(5_000);
    assert.deepEqual(
      h.server.requests.map((r) => r.since),
      [1, 3],
    );
    assert.deepEqual(h.receivedIds(), [2, 3, 4]);
  });

  it('sends the polling token in the Authorization header, not the URL', async () => {
    const h = await launch({ transport: 'polling', since: 0 });
    assert.equal(h.server.requests[0]?.authorization, 'Bearer token-1');
  });

  it('follows has_more at once until caught up', async () => {
    const shared = world();
    shared.server.publishMany(1_200);
    const h = await launch({ transport: 'polling', since: 0 }, shared);
    assert.equal(h.received.length, 1_200);
    assert.equal(h.server.requests.length, 3, 'three pages of 500, back to back');
    assert.equal(h.snapshot().missedOnLastReconnect, 1_200);
  });
});
