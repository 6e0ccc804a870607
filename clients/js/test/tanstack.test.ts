import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { PushEvent } from '../src/event.js';
import type { QueryKey } from '../src/tanstack.js';
import { invalidateOnEvents } from '../src/tanstack.js';
import { connected, event } from './support/harness.js';

/** Records calls the way TanStack's QueryClient would receive them. */
class RecordingQueryClient {
  readonly calls: (QueryKey | 'everything')[] = [];
  invalidateQueries(filters?: { queryKey: QueryKey }): Promise<void> {
    this.calls.push(filters ? filters.queryKey : 'everything');
    return Promise.resolve();
  }
}

/** A client stand-in the test drives by hand. */
class FakeClient {
  private handlers: ((event: PushEvent) => void)[] = [];
  private resetListeners: (() => void)[] = [];
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
  emit(e: PushEvent) {
    for (const handler of this.handlers) handler(e);
  }
  reset() {
    for (const listener of this.resetListeners) listener();
  }
}

const fault = (id: string, op = 'updated') =>
  event(1, 'faults', `entity:${op}`, { entity: { kind: 'fault', id, op } });

describe('TanStack Query adapter', () => {
  it('invalidates the list and the item of the entity an event names', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(client, queries, { fault: ['faults'], announcement: ['announcements'] });

    client.emit(fault('42'));

    assert.deepEqual(queries.calls, [['faults'], ['faults', '42']]);
  });

  it('maps event types as well as entity kinds', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(client, queries, { 'message:new': ['inbox'] });

    client.emit(event(1, 'chat', 'message:new'));

    assert.deepEqual(queries.calls, [['inbox']]);
  });

  it('invalidates a key once when both the kind and the type map to it', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(client, queries, { fault: ['faults'], 'entity:deleted': ['faults'] });

    client.emit(fault('7', 'deleted'));

    assert.deepEqual(queries.calls, [['faults'], ['faults', '7']]);
  });

  it('keeps nested keys intact and leaves unmapped events alone', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(client, queries, { fault: ['site', 3, 'faults'] });

    client.emit(fault('1'));
    client.emit(event(2, 'alerts', 'notification:ping'));
    client.emit(event(3, 'x', 'entity:updated', { entity: { kind: 'toString', id: '1', op: 'updated' } }));

    assert.deepEqual(queries.calls, [
      ['site', 3, 'faults'],
      ['site', 3, 'faults', '1'],
    ]);
  });

  it('invalidates everything on a reset', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(client, queries, { fault: ['faults'] });

    client.reset();

    assert.deepEqual(queries.calls, ['everything']);
  });

  it('stops when the returned function is called', () => {
    const client = new FakeClient();
    const queries = new RecordingQueryClient();
    const stop = invalidateOnEvents(client, queries, { fault: ['faults'] });

    stop();
    client.emit(fault('42'));
    client.reset();

    assert.deepEqual(queries.calls, []);
  });

  it('plugs into a real client', async () => {
    const h = await connected();
    const queries = new RecordingQueryClient();
    invalidateOnEvents(h.client, queries, { fault: ['faults'] });

    h.socket().events(event(5, 'alerts', 'entity:created', { entity: { kind: 'fault', id: '9', op: 'created' } }));
    h.socket().push({ type: 'reset', reason: 'lagged', head: 10 });

    assert.deepEqual(queries.calls, [['faults'], ['faults', '9'], 'everything']);
  });
});
