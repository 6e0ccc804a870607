// The client over Server-Sent Events (the first fallback) against the real
// server, through the `eventsource` package.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connectRecorded, idsOf } from './support/client.mjs';
import { batch, PushlogServer, waitFor } from './support/pushlog.mjs';

describe('SSE against the real server', () => {
  it('receives what is published, and resumes gap-free after kill -9 and a restart', async (t) => {
    const server = await PushlogServer.create();
    t.after(() => server.destroy());
    await server.start();

    const retryMs = 2_000;
    const c = connectRecorded(server, {
      transport: 'sse',
      fallback: false,
      backoff: { initialMs: retryMs, maxMs: retryMs },
      random: () => 0.99,
    });
    t.after(() => c.client.close());
    await waitFor(() => c.snapshot().state === 'connected', 5_000, 'the stream to open');
    assert.equal(c.snapshot().transport, 'sse');

    const first = await server.publish([
      ...batch('device:dev-1', 3),
      { topic: 'faults', type: 'entity:created', entity: { kind: 'fault', id: '7', op: 'created' } },
    ]);
    await waitFor(() => c.events.length === 4, 5_000, 'the first events');
    assert.deepEqual(c.ids(), idsOf(first));
    assert.deepEqual(c.events[3].entity, { kind: 'fault', id: '7', op: 'created' });

    await server.kill();
    await waitFor(() => c.snapshot().state === 'reconnecting', 5_000, 'the client to notice the crash');
    await server.start();
    const whileAway = await server.publish(batch('device:dev-2', 6));

    await waitFor(() => c.snapshot().state === 'connected' && c.snapshot().reconnects === 1, 20_000, 'the stream to reopen');
    const live = await server.publish(batch('device:dev-1', 3, 'message:new', 3));
    const all = [...first, ...whileAway, ...live];
    await waitFor(() => c.events.length >= all.length, 5_000, `all ${all.length} events`);

    assert.deepEqual(c.ids(), idsOf(all), 'every published id, once, in order');
    assert.deepEqual(c.wire, idsOf(all), 'the stream resumed from since= without gaps or duplicates');
    // SSE has no "caught up" mark; the client says so rather than guess.
    assert.equal(c.snapshot().missedOnLastReconnect, null);
    assert.equal(c.attempts.sse, 2);
  });
});
