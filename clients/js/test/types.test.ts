import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeBrowser } from './support/fake-browser.js';
import { launch, start, world } from './support/harness.js';

const types = ['entity:*', 'message:new'];

describe('type filters', () => {
  it('go into the WebSocket subscribe, and stay out of it when not asked for', async () => {
    const filtered = await launch({ types });
    filtered.socket().accept({ head: 3 });
    assert.deepEqual(filtered.socket().lastSent('subscribe')?.['types'], types);

    const unfiltered = await launch();
    unfiltered.socket().accept({ head: 3 });
    assert.equal('types' in (unfiltered.socket().lastSent('subscribe') ?? {}), false);
  });

  it('go into the SSE stream URL and its /events/missed checks', async () => {
    const shared = world();
    shared.server.publishMany(2);
    const h = await launch({ transport: 'sse', types }, shared);
    assert.equal(h.stream().params.get('types'), 'entity:*,message:new');
    assert.deepEqual(
      h.server.requestsTo('/events/missed').map((r) => r.types),
      ['entity:*,message:new'],
      'the head for a client without a cursor',
    );
  });

  it('go into every polling request', async () => {
    const shared = world();
    shared.server.publishMany(2);
    const h = await launch({ transport: 'polling', types }, shared);
    await h.clock.advance(5_000);
    const seen = h.server.requestsTo('/events/missed').map((r) => r.types);
    assert.ok(seen.length >= 3);
    assert.ok(seen.every((t) => t === 'entity:*,message:new'), String(seen));
  });

  it('go into the catch-up on an expired cursor', async () => {
    const shared = world();
    shared.server.publishMany(5);
    shared.server.prunedThrough = 4;
    const h = await launch({ transport: 'polling', since: 1, types }, shared);
    assert.deepEqual(
      h.server.requestsTo('/events/changes').map((r) => [r.since, r.types]),
      [[1, 'entity:*,message:new']],
    );
  });

  it('put tabs with other filters on other connections', async () => {
    const browser = new FakeBrowser();
    const shared = world();
    const tab = (name: string, tabTypes?: string[]) =>
      start(
        {
          shareAcrossTabs: true,
          BroadcastChannel: browser.BroadcastChannel(name),
          locks: browser.locks(name),
          types: tabTypes,
        },
        shared,
      );
    tab('A', ['entity:*']);
    tab('B', ['notification:*']);
    tab('C', ['entity:*']);
    await shared.clock.advance(0);
    assert.equal(shared.sockets.length, 2, 'A and C share one; B has its own');
  });
});
