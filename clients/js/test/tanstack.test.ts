import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { QueryClient } from '@tanstack/query-core';

import type { ChangesReport, EntityEvent, PushEvent } from '../src/event.js';
import type { QueryKey } from '../src/tanstack.js';
import { invalidateOnEvents } from '../src/tanstack.js';
import { change, connected, event, launch, world } from './support/harness.js';

/**
 * TanStack's own QueryClient (a differential check: the adapter is correct
 * only if the real cache invalidates what it means), holding one query per
 * key, none of them observed, so invalidation marks them and refetches none.
 */
function cacheOf(keys: readonly QueryKey[]) {
  const queryClient = new QueryClient();
  for (const key of keys) queryClient.setQueryData(key, 'cached');
  let calls = 0;
  const invalidateQueries = queryClient.invalidateQueries.bind(queryClient);
  queryClient.invalidateQueries = (...args: Parameters<typeof invalidateQueries>) => {
    calls += 1;
    return invalidateQueries(...args);
  };
  return {
    queryClient,
    calls: () => calls,
    /** The keys now invalidated, as `a/b/c` (objects as JSON). */
    invalidated: () =>
      keys
        .filter((key) => queryClient.getQueryState(key)?.isInvalidated)
        .map((key) => key.map((part) => (typeof part === 'object' ? JSON.stringify(part) : String(part))).join('/')),
  };
}

const KEYS: QueryKey[] = [
  ['faults'],
  ['faults', { status: 'open' }],
  ['faults', '1'],
  ['faults', '2'],
  ['faults', '42'],
  ['faults', '42', 'comments'],
  ['faults', 42],
  ['announcements'],
  ['announcements', '7'],
  ['inbox'],
  ['inbox', 'thread-1'],
];

/** A client stand-in the test drives by hand. */
class FakeClient {
  private handlers: ((event: PushEvent) => void)[] = [];
  private resetListeners: (() => void)[] = [];
  private changeListeners: ((report: ChangesReport) => void)[] = [];
  on(_pattern: string, handler: (event: PushEvent) => void) {
    this.handlers.push(handler);
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }
  onReset(listener: () => void) {
    this.resetListeners.push(listener);
    return () => {
      this.resetListeners = this.resetListeners.filter((l) => l !== listener);
    };
  }
  onChangedWhileAway(listener: (report: ChangesReport) => void) {
    this.changeListeners.push(listener);
    return () => {
      this.changeListeners = this.changeListeners.filter((l) => l !== listener);
    };
  }
  emit(e: PushEvent) {
    for (const handler of this.handlers) handler(e);
  }
  reset() {
    for (const listener of this.resetListeners) listener();
  }
  changedWhileAway(report: ChangesReport) {
    for (const listener of this.changeListeners) listener(report);
  }
}

const entity = (id: number, kind: string, entityId: string, op = 'updated'): EntityEvent =>
  ({ ...event(id, 'alerts', `entity:${op}`), entity: { kind, id: entityId, op } }) as EntityEvent;

const report = (entities: EntityEvent[]): ChangesReport => ({
  count: entities.length,
  entities,
  since: 1,
  head: 10,
  logComplete: false,
});

const MAPPING = { fault: ['faults'], announcement: ['announcements'], 'message:new': ['inbox'] };

describe('TanStack Query adapter', () => {
  it('invalidates the lists and the queries of the entity an event names, not other entities’', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, MAPPING);

    client.emit(entity(1, 'fault', '42'));

    assert.deepEqual(cache.invalidated(), ['faults', 'faults/{"status":"open"}', 'faults/42', 'faults/42/comments', 'faults/42']);
    assert.equal(cache.calls(), 1);
  });

  it('invalidates everything under a key mapped by type for an event without an entity', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, MAPPING);

    client.emit(event(1, 'chat', 'message:new'));

    assert.deepEqual(cache.invalidated(), ['inbox', 'inbox/thread-1']);
  });

  it('makes one call when both the kind and the type map to the same key', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, { fault: ['faults'], 'entity:deleted': ['faults'] });

    client.emit(entity(1, 'fault', '2', 'deleted'));

    assert.equal(cache.calls(), 1);
    assert.deepEqual(cache.invalidated(), ['faults', 'faults/{"status":"open"}', 'faults/2']);
  });

  it('keeps nested keys intact and leaves unmapped events alone', () => {
    const client = new FakeClient();
    const cache = cacheOf([['site', 3, 'faults'], ['site', 3, 'faults', '1'], ['site', 3, 'faults', '2'], ['faults']]);
    invalidateOnEvents(client, cache.queryClient, { fault: ['site', 3, 'faults'] });

    client.emit(entity(1, 'fault', '1'));
    client.emit(event(2, 'alerts', 'notification:ping'));
    client.emit(event(3, 'x', 'entity:updated', { entity: { kind: 'toString', id: '1', op: 'updated' } }));

    assert.deepEqual(cache.invalidated(), ['site/3/faults', 'site/3/faults/1']);
  });

  it('invalidates everything on a reset', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, MAPPING);

    client.reset();

    assert.equal(cache.invalidated().length, KEYS.length);
  });

  it('after an expired cursor, invalidates exactly the entities that changed meanwhile, a deleted one too', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, MAPPING);

    client.changedWhileAway(
      report([
        entity(4, 'fault', '2', 'deleted'),
        entity(6, 'fault', '1', 'updated'),
        entity(7, 'announcement', '7', 'created'),
        entity(8, 'unmapped', '1', 'updated'),
      ]),
    );

    assert.deepEqual(cache.invalidated(), [
      'faults',
      'faults/{"status":"open"}',
      'faults/1',
      'faults/2',
      'announcements',
      'announcements/7',
    ]);
    assert.equal(cache.calls(), 2, 'one call per mapped key, however many entities');
  });

  it('invalidates nothing for a report of no entities', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(client, cache.queryClient, MAPPING);
    client.changedWhileAway(report([]));
    assert.deepEqual(cache.invalidated(), []);
    assert.equal(cache.calls(), 0);
  });

  it('stops when the returned function is called', () => {
    const client = new FakeClient();
    const cache = cacheOf(KEYS);
    const stop = invalidateOnEvents(client, cache.queryClient, MAPPING);

    stop();
    client.emit(entity(1, 'fault', '42'));
    client.changedWhileAway(report([entity(4, 'fault', '2', 'deleted')]));
    client.reset();

    assert.deepEqual(cache.invalidated(), []);
  });

  it('plugs into a real client', async () => {
    const h = await connected();
    const cache = cacheOf(KEYS);
    invalidateOnEvents(h.client, cache.queryClient, MAPPING);

    h.socket().events(event(5, 'alerts', 'entity:created', { entity: { kind: 'fault', id: '1', op: 'created' } }));
    assert.deepEqual(cache.invalidated(), ['faults', 'faults/{"status":"open"}', 'faults/1']);
    h.socket().push({ type: 'reset', reason: 'lagged', head: 10 });
    assert.equal(cache.invalidated().length, KEYS.length);
  });

  it('plugs into a real client: an expired cursor invalidates what changed, and nothing else', async () => {
    const shared = world();
    shared.server.publishMany(2);
    shared.server.publish('alerts', 'entity:updated', change('fault', '2'));
    shared.server.publish('alerts', 'notification:info');
    shared.server.prunedThrough = 3;
    const h = await launch({ since: 2 }, shared);
    const cache = cacheOf(KEYS);
    invalidateOnEvents(h.client, cache.queryClient, MAPPING);

    h.socket().accept({ head: 4 });
    h.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 4, head: 4 });
    await h.clock.advance(0);

    assert.equal(h.awayReports.length, 1);
    assert.deepEqual(cache.invalidated(), ['faults', 'faults/{"status":"open"}', 'faults/2']);
  });
});
