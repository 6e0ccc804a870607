import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connected, event, launch, world } from './support/harness.js';

describe('reset', () => {
  it('over WebSocket: tells the app, jumps to the head and subscribes again from there', async () => {
    const h = await connected();
    h.socket().events(event(1));
    h.socket().drop(1006);
    await h.clock.advance(500);
    h.socket().accept({ head: 5_120 });

    h.socket().push({ type: 'reset', reason: 'lagged', oldest_id: 900, head: 5_120, request_id: 'r1' });

    assert.deepEqual(h.resets, [{ reason: 'lagged', info: { reason: 'lagged', head: 5_120, oldestId: 900 } }]);
    assert.equal(h.snapshot().lastEventId, 5_120);
    const [unsubscribe, subscribe] = h.socket().sent.slice(-2);
    assert.deepEqual(unsubscribe, { type: 'unsubscribe', topics: ['alerts'], request_id: 'r2' });
    assert.deepEqual(subscribe, { type: 'subscribe', topics: ['alerts'], since: 5_120, request_id: 'r3' });
  });

  it('delivers nothing at or below the head after a reset, and everything after it', async () => {
    const h = await connected();
    h.socket().push({ type: 'reset', reason: 'lagged', oldest_id: 1, head: 100 });
    h.socket().events(event(99), event(100), event(101));
    assert.deepEqual(h.receivedIds(), [101]);
  });

  it('moves a cursor from another log back down to its head (cursor_unknown)', async () => {
    const h = await launch({ since: 9_000 });
    h.socket().accept({ head: 40 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 9_000);

    h.socket().push({ type: 'reset', reason: 'cursor_unknown', oldest_id: 1, head: 40 });
    h.socket().events(event(41));

    assert.equal(h.resets[0]?.reason, 'cursor_unknown');
    assert.deepEqual(h.receivedIds(), [41]);
    assert.equal(h.snapshot().lastEventId, 41);
  });

  it('lets any number of listeners hear it through client.onReset', async () => {
    const h = await connected();
    const heard: string[] = [];
    const stop = h.client.onReset((reason, info) => heard.push(`${reason}@${info.head}`));
    h.socket().push({ type: 'reset', reason: 'lagged', head: 10 });
    stop();
    h.socket().push({ type: 'reset', reason: 'lagged', head: 20 });
    assert.deepEqual(heard, ['lagged@10']);
    assert.equal(h.resets.length, 2, 'the onReset option hears both');
  });

  it('over SSE: tells the app and opens a new stream from the head at once', async () => {
    const h = await launch({ transport: 'sse', since: 3 });
    h.stream().open();
    h.stream().reset({ reason: 'lagged', oldest_id: 900, head: 5_120 });
    await h.clock.advance(0);

    assert.equal(h.resets[0]?.reason, 'lagged');
    assert.equal(h.streams.length, 2);
    assert.equal(h.streams[0]?.closed, true);
    assert.equal(h.stream().params.get('since'), '5120');
  });

  it('over polling: a 410 from /events/missed is a reset, and polling goes on from the head', async () => {
    const shared = world();
    shared.server.publishMany(10);
    shared.server.prunedThrough = 5;
    shared.server.servesChanges = false;
    const h = await launch({ transport: 'polling', since: 2 }, shared);

    assert.deepEqual(h.resets, [{ reason: 'cursor_expired', info: { reason: 'cursor_expired', head: 10, oldestId: 6 } }]);
    assert.deepEqual(h.receivedIds(), []);
    assert.deepEqual(
      h.server.requestsTo('/events/missed').map((r) => r.since),
      [2, 10],
    );
    assert.equal(h.client.getState(), 'connected');

    shared.server.publish('alerts');
    await h.clock.advance(5_000);
    assert.deepEqual(h.receivedIds(), [11]);
  });

  it('is not a reset when a new client merely learns the head from a 410', async () => {
    const shared = world();
    shared.server.publishMany(10);
    shared.server.prunedThrough = 5;
    const h = await launch({ transport: 'polling' }, shared);
    assert.deepEqual(h.resets, []);
    assert.equal(h.snapshot().lastEventId, 10);
  });
});
