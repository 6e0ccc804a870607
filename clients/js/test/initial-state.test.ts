import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { World } from './support/harness.js';
import { change, event, launch, world } from './support/harness.js';

/** Faults 1 and 2 and a notification; fault 1 changed twice. Head 4. */
function stateWorld(): World {
  const shared = world();
  shared.server.publish('alerts', 'entity:created', change('fault', '1', 'created')); // 1
  shared.server.publish('alerts', 'entity:created', change('fault', '2', 'created')); // 2
  shared.server.publish('alerts', 'notification:info'); // 3
  shared.server.publish('alerts', 'entity:updated', change('fault', '1')); // 4
  return shared;
}

describe('initial state', () => {
  it('reads the latest event of every entity first, then goes live from just after it', async () => {
    const h = await launch({ initialState: true }, stateWorld());

    assert.equal(h.initialStates.length, 1);
    const [state] = h.initialStates;
    assert.deepEqual(state?.entities.map((e) => e.id), [2, 4]);
    assert.deepEqual([state?.count, state?.since, state?.head, state?.logComplete], [2, 0, 4, true]);
    assert.deepEqual(h.server.requestsTo('/events/changes').map((r) => r.since), [0]);
    assert.equal(h.sockets.length, 1);
    h.socket().accept({ head: 9 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 4, 'from the state’s head, not the welcome’s');
    h.socket().events(event(4), event(5));
    assert.deepEqual(h.receivedIds(), [5]);
  });

  it('does not connect before the state is in', async () => {
    const shared = stateWorld();
    shared.server.mode = { kind: 'hang' };
    const h = await launch({ initialState: true }, shared);
    assert.equal(h.sockets.length, 0);
    assert.equal(h.client.getState(), 'connecting');
  });

  it('tries again after a backoff, reporting each failure', async () => {
    const shared = stateWorld();
    shared.server.mode = { kind: 'down' };
    const h = await launch({ initialState: true }, shared);
    assert.equal(h.errors[0]?.code, 'network_error');
    assert.equal(h.sockets.length, 0);

    shared.server.mode = { kind: 'up' };
    await h.clock.advance(500);
    assert.equal(h.initialStates[0]?.count, 2);
    assert.equal(h.sockets.length, 1);
  });

  it('goes live without it, from now, on a server that has no /events/changes', async () => {
    const shared = stateWorld();
    shared.server.servesChanges = false;
    const h = await launch({ initialState: true }, shared);
    assert.deepEqual(h.initialStates, []);
    assert.equal(h.errors[0]?.status, 404);
    h.socket().accept({ head: 4 });
    assert.equal(h.snapshot().lastEventId, 4);
  });

  it('starts from the state’s head whatever cursor was stored', async () => {
    const stored = new Map([['key', '2']]);
    const storage = { getItem: (k: string) => stored.get(k) ?? null, setItem: (k: string, v: string) => void stored.set(k, v) };
    const h = await launch({ initialState: true, storage, storageKey: 'key' }, stateWorld());
    h.socket().accept({ head: 4 });
    assert.equal(h.socket().lastSent('subscribe')?.['since'], 4);
    assert.equal(stored.get('key'), '4');
  });

  it('stops reading when closed', async () => {
    const shared = stateWorld();
    shared.server.mode = { kind: 'hang' };
    const h = await launch({ initialState: true }, shared);
    h.client.close();
    shared.server.mode = { kind: 'up' };
    await h.clock.advance(60_000);
    assert.deepEqual(h.initialStates, []);
    assert.equal(h.sockets.length, 0);
    assert.equal(h.client.getState(), 'offline');
  });

  it('reads with the subscription’s topics and types', async () => {
    const h = await launch({ initialState: true, topics: ['alerts', 'device:*'], types: ['entity:*'] }, stateWorld());
    assert.deepEqual(
      h.server.requestsTo('/events/changes').map((r) => [r.topics, r.types]),
      [['alerts,device:*', 'entity:*']],
    );
  });
});
