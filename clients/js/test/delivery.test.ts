import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Cursor } from '../src/cursor.js';
import { Delivery } from '../src/delivery.js';
import type { PushEvent } from '../src/event.js';
import { topicMatches } from '../src/topics.js';
import { connected, event } from './support/harness.js';

function delivery(start?: number) {
  const errors: unknown[] = [];
  const cursor = new Cursor(undefined, 'unused', start);
  return { cursor, errors, delivery: new Delivery(cursor, (e) => errors.push(e)) };
}

describe('topic patterns', () => {
  it('match exactly, by prefix, or everything', () => {
    assert.ok(topicMatches('alerts', 'alerts'));
    assert.ok(!topicMatches('alerts', 'alerts:eu'));
    assert.ok(topicMatches('device:*', 'device:dev-0001'));
    assert.ok(topicMatches('device:*', 'device:'));
    assert.ok(!topicMatches('device:*', 'devices'));
    assert.ok(topicMatches('*', 'anything/at:all'));
  });
});

describe('delivery', () => {
  it('hands each event to every matching handler once, in id order', () => {
    const { delivery: d } = delivery();
    const alerts: number[] = [];
    const devices: number[] = [];
    const all: number[] = [];
    d.on('alerts', (e) => alerts.push(e.id));
    d.on('device:*', (e) => devices.push(e.id));
    d.on('*', (e) => all.push(e.id));

    for (const e of [event(1, 'alerts'), event(2, 'device:7'), event(3, 'faults'), event(4, 'alerts')]) d.deliver(e);

    assert.deepEqual(alerts, [1, 4]);
    assert.deepEqual(devices, [2]);
    assert.deepEqual(all, [1, 2, 3, 4]);
  });

  it('drops duplicates and anything older than the last event seen', () => {
    const { delivery: d, cursor } = delivery();
    const seen: number[] = [];
    d.on('*', (e) => seen.push(e.id));

    const results = [5, 5, 3, 6, 4, 6, 9].map((id) => d.deliver(event(id)));

    assert.deepEqual(seen, [5, 6, 9]);
    assert.deepEqual(results, [true, false, false, true, false, false, true]);
    assert.equal(cursor.value, 9);
  });

  it('drops events at or below a starting cursor', () => {
    const { delivery: d } = delivery(10);
    const seen: number[] = [];
    d.on('*', (e) => seen.push(e.id));
    for (const id of [9, 10, 11]) d.deliver(event(id));
    assert.deepEqual(seen, [11]);
  });

  it('routes by type with onType', () => {
    const { delivery: d } = delivery();
    const created: number[] = [];
    d.onType('entity:created', (e) => created.push(e.id));
    d.deliver(event(1, 'faults', 'entity:created'));
    d.deliver(event(2, 'faults', 'entity:updated'));
    assert.deepEqual(created, [1]);
  });

  it('stops calling a handler once unsubscribed, even mid-delivery', () => {
    const { delivery: d } = delivery();
    const seen: string[] = [];
    const stopSecond = d.on('*', (e) => seen.push(`second ${e.id}`));
    d.on('*', (e) => {
      seen.push(`first ${e.id}`);
    });
    const stopOnce: () => void = d.on('*', () => stopOnce());
    d.deliver(event(1));
    stopSecond();
    d.deliver(event(2));
    assert.deepEqual(seen, ['second 1', 'first 1', 'first 2']);
  });

  it('keeps delivering when a handler throws, and consumes the event', () => {
    const { delivery: d, errors, cursor } = delivery();
    const seen: number[] = [];
    d.on('*', () => {
      throw new Error('app bug');
    });
    d.on('*', (e) => seen.push(e.id));
    d.deliver(event(1));
    assert.deepEqual(seen, [1]);
    assert.equal(errors.length, 1);
    assert.equal(cursor.value, 1);
  });
});

describe('delivery through a connection', () => {
  it('never repeats an event when a replay overlaps what was already received', async () => {
    const h = await connected();
    h.socket().events(event(1), event(2), event(3));
    h.socket().drop();
    await h.clock.advance(500);

    // The server replays from the cursor; a careless one might resend 3.
    h.socket().accept({ head: 5 });
    h.socket().events(event(3), event(4), event(5));
    h.socket().caughtUp(5);

    assert.deepEqual(h.receivedIds(), [1, 2, 3, 4, 5]);
  });

  it('reports a throwing handler through onError and carries on', async () => {
    const h = await connected();
    h.client.on('alerts', () => {
      throw new Error('render failed');
    });
    h.socket().events(event(1), event(2));
    assert.deepEqual(h.receivedIds(), [1, 2]);
    assert.deepEqual(
      h.errors.map((e) => e.kind),
      ['handler', 'handler'],
    );
  });

  it('passes the event through as the server sent it', async () => {
    const h = await connected();
    const sent: PushEvent = event(7, 'faults', 'entity:updated', {
      entity: { kind: 'fault', id: '42', op: 'updated' },
      payload: { status: 'resolved' },
    });
    h.socket().events(sent);
    assert.deepEqual(h.received, [sent]);
  });
});
