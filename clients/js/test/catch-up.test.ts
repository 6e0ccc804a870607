import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CHANGES_PAGE } from '../src/changes.js';
import type { Harness, World } from './support/harness.js';
import { change, connected, event, launch, world } from './support/harness.js';

/**
 * A log where the client saw ids 1–2, then, while it was away: fault 1
 * updated twice, fault 2 deleted, a notification, announcement 7 created;
 * retention then pruned through id 5.
 */
function awayWorld(): World {
  const shared = world();
  shared.server.publishMany(2);
  shared.server.publish('alerts', 'entity:updated', change('fault', '1')); // 3
  shared.server.publish('alerts', 'entity:deleted', change('fault', '2', 'deleted')); // 4
  shared.server.publish('alerts', 'notification:info'); // 5
  shared.server.publish('alerts', 'entity:updated', change('fault', '1')); // 6
  shared.server.publish('alerts', 'entity:created', change('announcement', '7', 'created')); // 7
  shared.server.prunedThrough = 5;
  return shared;
}

/** A client back after a drop, whose re-subscription from `since` the server refuses as expired. */
async function expiredOverWebSocket(shared: World, since = 2): Promise<Harness> {
  const h = await launch({ since }, shared);
  h.socket().accept({ head: shared.server.head });
  assert.equal(h.socket().lastSent('subscribe')?.['since'], since);
  h.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 6, head: shared.server.head, request_id: 'r1' });
  await h.clock.advance(0);
  return h;
}

const idsOf = (report: { entities: readonly { id: number }[] } | undefined) => report?.entities.map((e) => e.id);

describe('catching up on an expired cursor', () => {
  it('tells the app which entities changed meanwhile (a deleted one too), instead of a reset', async () => {
    const h = await expiredOverWebSocket(awayWorld());

    assert.deepEqual(h.resets, []);
    assert.equal(h.awayReports.length, 1);
    const report = h.awayReports[0];
    assert.equal(report?.count, 3);
    assert.deepEqual(idsOf(report), [4, 6, 7], 'the latest event of each entity, in id order');
    assert.deepEqual(
      report?.entities.map((e) => `${e.entity.kind} ${e.entity.id} ${e.entity.op}`),
      ['fault 2 deleted', 'fault 1 updated', 'announcement 7 created'],
    );
    assert.equal(report?.since, 2);
    assert.equal(report?.head, 7);
    assert.equal(report?.logComplete, false, 'retention pruned events after the cursor');
    assert.deepEqual(
      h.server.requestsTo('/events/changes').map((r) => [r.since, r.topics, r.authorization]),
      [[2, 'alerts', 'Bearer token-1']],
    );
  });

  it('resumes from the head of the changes, on a new session, so nothing between the two is lost', async () => {
    const shared = awayWorld();
    // Committed after the changes were read, before the client listens again.
    shared.server.beforeChangesAnswer = () => void shared.server.publish('alerts', 'entity:updated', change('fault', '9'));
    const h = await expiredOverWebSocket(shared);

    assert.equal(h.sockets[0]?.closedWith?.code, 1000, 'the refused session is closed');
    assert.equal(h.sockets.length, 2);
    assert.equal(h.snapshot().lastEventId, 7);
    h.socket().accept({ head: 8 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 7, 'from the answer’s head, not the newer log head');
    h.socket().events(event(8, 'alerts', 'entity:updated', change('fault', '9')));
    h.socket().caughtUp(8);

    assert.deepEqual(h.receivedIds(), [8]);
    assert.equal(h.client.getState(), 'connected');
    assert.equal(h.snapshot().reconnects, 0, 'the catch-up continues the connection; it is no reconnect');
    assert.equal(h.snapshot().missedOnLastReconnect, 1);
  });

  it('reads every page, keeping each entity’s newest event when it changes again meanwhile', async () => {
    const shared = world();
    shared.server.publishMany(1);
    for (let i = 0; i < CHANGES_PAGE + 200; i += 1) {
      shared.server.publish('alerts', 'entity:updated', change('device', String(i)));
    }
    shared.server.prunedThrough = 100;
    let pages = 0;
    shared.server.beforeChangesAnswer = () => {
      pages += 1;
      // Device 0, already on the first page, changes again before the second is read.
      if (pages === 1) shared.server.publish('alerts', 'entity:deleted', change('device', '0', 'deleted'));
    };
    const h = await expiredOverWebSocket(shared, 1);

    const report = h.awayReports[0];
    assert.equal(pages, 2);
    assert.equal(report?.count, CHANGES_PAGE + 200, 'each entity once');
    const ids = idsOf(report) ?? [];
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in id order');
    assert.equal(report?.entities.at(-1)?.entity.op, 'deleted', 'device 0 as it is now, last');
    assert.equal(report?.entities.at(-1)?.entity.id, '0');
    assert.equal(report?.head, shared.server.head);
  });

  it('falls back to a reset when the entity index cannot serve the cursor either', async () => {
    const shared = awayWorld();
    shared.server.entitiesPrunedThrough = 4;
    const h = await expiredOverWebSocket(shared);

    assert.deepEqual(h.awayReports, []);
    assert.deepEqual(
      h.resets.map((r) => [r.reason, r.info.head]),
      [['cursor_expired', 7]],
    );
    h.socket().accept({ head: 7 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 7);
  });

  it('falls back to a reset, and says why, with a server that has no /events/changes', async () => {
    const shared = awayWorld();
    shared.server.servesChanges = false;
    const h = await expiredOverWebSocket(shared);

    assert.deepEqual(h.awayReports, []);
    assert.deepEqual(
      h.resets.map((r) => [r.reason, r.info.head, r.info.oldestId]),
      [['cursor_expired', 7, 6]],
    );
    assert.equal(h.errors[0]?.status, 404);
    h.socket().accept({ head: 7 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 7);
  });

  it('tries again after a backoff when /events/changes cannot be reached, without giving up the cursor', async () => {
    const shared = awayWorld();
    shared.server.mode = { kind: 'down' };
    const h = await expiredOverWebSocket(shared);

    assert.equal(h.errors[0]?.code, 'network_error');
    assert.deepEqual([h.resets, h.awayReports], [[], []]);
    assert.equal(h.snapshot().lastEventId, 2);
    assert.equal(h.client.getState(), 'reconnecting');
    assert.equal(h.sockets.length, 1, 'no session while the cursor is unresolved');

    shared.server.mode = { kind: 'up' };
    await h.clock.advance(500);
    h.socket().accept({ head: 7 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 2);
    h.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 6, head: 7 });
    await h.clock.advance(0);
    assert.deepEqual(idsOf(h.awayReports[0]), [4, 6, 7]);
  });

  it('keeps a plain reset for a cursor the log does not know (cursor_unknown)', async () => {
    const h = await launch({ since: 9_000 });
    h.socket().accept({ head: 40 });
    h.socket().push({ type: 'reset', reason: 'cursor_unknown', oldest_id: 1, head: 40 });
    await h.clock.advance(0);

    assert.equal(h.resets[0]?.reason, 'cursor_unknown');
    assert.deepEqual(h.server.requestsTo('/events/changes'), []);
    assert.equal(h.sockets.length, 1);
  });

  it('over SSE: catches up, then opens the new stream from the changes’ head', async () => {
    const h = await launch({ transport: 'sse', since: 2 }, awayWorld());
    h.stream().open();
    h.stream().reset({ reason: 'cursor_expired', oldest_id: 6, head: 7 });
    await h.clock.advance(0);

    assert.deepEqual(idsOf(h.awayReports[0]), [4, 6, 7]);
    assert.deepEqual(h.resets, []);
    assert.equal(h.streams[0]?.closed, true);
    assert.equal(h.streams.length, 2);
    assert.equal(h.stream().params.get('since'), '7');
  });

  it('over polling: catches up on a 410 from /events/missed, then polls on from the changes’ head', async () => {
    const shared = awayWorld();
    const h = await launch({ transport: 'polling', since: 2 }, shared);

    assert.deepEqual(idsOf(h.awayReports[0]), [4, 6, 7]);
    assert.deepEqual(h.resets, []);
    assert.deepEqual(
      h.server.requests.map((r) => `${r.path} ${r.since}`),
      ['/events/missed 2', '/events/changes 2', '/events/missed 7'],
    );
    shared.server.publish('alerts');
    await h.clock.advance(5_000);
    assert.deepEqual(h.receivedIds(), [8]);
  });

  it('reports nothing, and opens nothing, once closed during the catch-up', async () => {
    const shared = awayWorld();
    shared.server.mode = { kind: 'hang' };
    const h = await expiredOverWebSocket(shared);
    h.client.close();
    shared.server.mode = { kind: 'up' };
    await h.clock.advance(60_000);

    assert.deepEqual([h.awayReports, h.resets], [[], []]);
    assert.equal(h.sockets.length, 1);
    assert.equal(h.client.getState(), 'offline');
  });

  it('lets any number of listeners hear the report through client.onChangedWhileAway', async () => {
    const shared = awayWorld();
    const h = await launch({ since: 2 }, shared);
    const heard: number[] = [];
    h.client.onChangedWhileAway((report) => heard.push(report.count));
    h.client.onChangedWhileAway(() => {
      throw new Error('a broken listener');
    });
    h.socket().accept({ head: 7 });
    h.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 6, head: 7 });
    await h.clock.advance(0);

    assert.deepEqual(heard, [3]);
    assert.equal(h.awayReports.length, 1);
    assert.equal(h.errors.at(-1)?.kind, 'handler', 'the throwing listener is reported, the others still hear it');
  });

  it('is reached from a live connection too: a connected client told its cursor expired', async () => {
    const shared = awayWorld();
    const h = await connected({ since: 2 }, shared, 2);
    h.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 6, head: 7 });
    await h.clock.advance(0);
    assert.equal(h.awayReports[0]?.count, 3);
    h.socket().accept({ head: 7 });
    assert.equal(h.client.getState(), 'connected');
  });
});
