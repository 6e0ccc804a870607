// The changes endpoint against the real server: a client whose cursor the
// log has pruned past catches up from the entity index (which entities
// changed, not every event) and goes on live with nothing lost in between;
// a client asks for the initial state of its topics; and when the entity
// index cannot serve the cursor either, the old reset.
//
// Retention is a count of 20 events, pruned every second, so a cursor
// expires after a few dozen publishes; `prunedPast` waits for the pruner.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connectRecorded, idsOf } from './support/client.mjs';
import { batch, PushlogServer, waitFor } from './support/pushlog.mjs';

const RETENTION = { PUSHLOG_RETENTION: '20', PUSHLOG_PRUNE_INTERVAL: '1s' };

const change = (topic, kind, id, op = 'updated', payload = undefined) => ({
  topic,
  type: `entity:${op}`,
  entity: { kind, id, op },
  ...(payload === undefined ? {} : { payload }),
});

/** Publishes `events` and returns them with their ids. */
async function publishAll(server, events) {
  const published = await server.publish(events);
  return events.map((event, i) => ({ ...event, id: published[i].id }));
}

/** The latest event of each (topic, kind, id) among `events` on `topics`, in id order. */
function latestPerEntity(events, topics) {
  const latest = new Map();
  for (const event of events) {
    if (event.entity && topics.includes(event.topic)) {
      latest.set(JSON.stringify([event.topic, event.entity.kind, event.entity.id]), event);
    }
  }
  return [...latest.values()].sort((a, b) => a.id - b.id);
}

/**
 * What a client on `faults` and `notes` misses while away: forty changes of
 * twelve faults (fault 3 deleted last), notifications, and changes on a
 * topic it does not read.
 */
function whileAway() {
  const events = [];
  for (let round = 0; round < 4; round += 1) {
    for (let n = 1; n <= 10; n += 1) events.push(change('faults', 'fault', String(n), 'updated', { round }));
    events.push({ topic: 'notes', type: 'notification:info', payload: { round } });
    events.push(change('elsewhere', 'fault', String(round)));
  }
  events.push(change('faults', 'fault', '11', 'created'));
  events.push(change('faults', 'fault', '3', 'deleted'));
  events.push(change('notes', 'note', '12', 'created'));
  return events;
}

const TOPICS = ['faults', 'notes'];

describe('an expired cursor against the real server', () => {
  let server;
  before(async () => {
    server = await PushlogServer.create({ env: RETENTION });
    await server.start();
  });
  after(async () => {
    await server?.destroy();
  });

  /** A client that saw some events and went away; its cursor, once the log has pruned past it. */
  async function expiredCursor(t, transport) {
    const first = connectRecorded(server, { transport, fallback: false, topics: TOPICS, shareAcrossTabs: false, pollIntervalMs: 200 });
    t.after(() => first.client.close());
    await waitFor(() => first.snapshot().lastEventId !== null, 5_000, 'the first client to connect');
    const seen = await server.publish(batch('notes', 2));
    await waitFor(() => first.events.length === 2, 5_000, 'the first events');
    first.client.close();
    const cursor = first.snapshot().lastEventId;
    assert.equal(cursor, seen.at(-1).id);

    const away = await publishAll(server, whileAway());
    await waitFor(() => server.prunedPast(cursor), 10_000, 'retention to prune past the cursor');
    return { cursor, away };
  }

  for (const transport of ['websocket', 'sse', 'polling']) {
    it(`over ${transport}: gets exactly the entities changed while away, then every later event, none twice`, async (t) => {
      const { cursor, away } = await expiredCursor(t, transport);

      // Committed just after the changes were read, before the client listens
      // again: the stream must replay these from the changes' head.
      let afterAnswer;
      const fetchThenPublish = async (url, init) => {
        const response = await fetch(url, init);
        if (String(url).includes('/events/changes') && !afterAnswer) {
          afterAnswer = await publishAll(server, [change('faults', 'fault', '99', 'created'), ...batch('notes', 2)]);
        }
        return response;
      };
      const c = connectRecorded(server, {
        transport,
        fallback: false,
        topics: TOPICS,
        since: cursor,
        shareAcrossTabs: false,
        fetch: fetchThenPublish,
        pollIntervalMs: 200,
      });
      t.after(() => c.client.close());

      await waitFor(() => c.awayReports.length === 1, 10_000, 'the changed-while-away report');
      const [report] = c.awayReports;
      const expected = latestPerEntity(away, TOPICS);
      assert.deepEqual(report.entities.map((e) => e.id), idsOf(expected), 'each changed entity once, as its latest event');
      assert.equal(report.count, 12);
      const fault3 = report.entities.find((e) => e.entity.id === '3');
      assert.deepEqual(fault3.entity, { kind: 'fault', id: '3', op: 'deleted' }, 'a deleted entity is reported');
      assert.deepEqual(report.entities.find((e) => e.entity.id === '10').payload, { round: 3 });
      assert.equal(report.since, cursor);
      assert.equal(report.logComplete, false, 'notifications were pruned');
      assert.ok(report.head >= away.at(-1).id && report.head < afterAnswer[0].id, `head ${report.head}`);
      assert.deepEqual(c.resets, []);

      await waitFor(() => c.events.length >= afterAnswer.length, 10_000, 'the events committed after the answer');
      const live = await server.publish(batch('notes', 2, 'message:new', 10));
      await waitFor(() => c.events.length >= afterAnswer.length + live.length, 5_000, 'live events');
      assert.deepEqual(c.ids(), [...idsOf(afterAnswer), ...idsOf(live)], 'nothing at or below the head, nothing missing');
      if (transport !== 'polling') assert.deepEqual(c.wire, c.ids(), 'the server sent each once');
      assert.equal(c.snapshot().lastEventId, live.at(-1).id);
      assert.deepEqual(c.errors, []);
    });
  }

  it('passes the type filter to the catch-up: only entities whose latest event matches', async (t) => {
    const { cursor, away } = await expiredCursor(t, 'websocket');
    const c = connectRecorded(server, {
      fallback: false,
      topics: TOPICS,
      types: ['entity:deleted', 'entity:created'],
      since: cursor,
      shareAcrossTabs: false,
    });
    t.after(() => c.client.close());
    await waitFor(() => c.awayReports.length === 1, 10_000, 'the report');
    const expected = latestPerEntity(away, TOPICS).filter((e) => e.entity.op !== 'updated');
    assert.deepEqual(
      c.awayReports[0].entities.map((e) => `${e.entity.kind} ${e.entity.id} ${e.entity.op}`),
      expected.map((e) => `${e.entity.kind} ${e.entity.id} ${e.entity.op}`),
    );
    assert.equal(expected.length, 3);

    const live = await publishAll(server, [change('faults', 'fault', '1'), change('faults', 'fault', '1', 'deleted')]);
    await waitFor(() => c.events.length === 1, 5_000, 'the one live event of a wanted type');
    assert.deepEqual(c.ids(), [live[1].id]);
  });
});

describe('initial state against the real server', () => {
  it('reads the latest event of every entity on its topics, then goes live from just after it', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();
    const before = await publishAll(server, whileAway());

    const c = connectRecorded(server, { fallback: false, topics: TOPICS, initialState: true, shareAcrossTabs: false });
    t.after(() => c.client.close());
    await waitFor(() => c.initialStates.length === 1, 5_000, 'the initial state');
    const [state] = c.initialStates;
    assert.deepEqual(state.entities.map((e) => e.id), idsOf(latestPerEntity(before, TOPICS)));
    assert.deepEqual([state.since, state.head, state.logComplete], [0, before.at(-1).id, true]);

    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the client to go live');
    const live = await server.publish(batch('notes', 3));
    await waitFor(() => c.events.length === 3, 5_000, 'live events');
    assert.deepEqual(c.ids(), idsOf(live), 'no event at or below the state’s head');
    assert.deepEqual(c.wire, idsOf(live));
  });
});

describe('an expired cursor the entity index cannot serve either', () => {
  it('is a reset, as before: the app refetches everything and the client goes on from the head', async (t) => {
    const server = await PushlogServer.create({ env: { ...RETENTION, PUSHLOG_ENTITY_RETENTION: '1s' } });
    t.after(() => server.destroy());
    await server.start();
    const first = await server.publish(batch('notes', 1));
    const cursor = first[0].id;
    await publishAll(server, whileAway());
    await waitFor(
      async () => (await server.read(`/events/changes?since=${cursor}`)).status === 410,
      15_000,
      'the entity index to age out past the cursor',
    );

    const c = connectRecorded(server, { fallback: false, topics: TOPICS, since: cursor, shareAcrossTabs: false });
    t.after(() => c.client.close());
    await waitFor(() => c.resets.length === 1, 10_000, 'the reset');
    assert.equal(c.resets[0].reason, 'cursor_expired');
    assert.deepEqual(c.awayReports, []);
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the client to go on');
    const live = await server.publish(batch('notes', 2));
    await waitFor(() => c.events.length === 2, 5_000, 'live events');
    assert.deepEqual(c.ids(), idsOf(live));
  });
});
