import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { channelElection } from '../src/tabs/election.js';
import { FakeClock } from './support/fake-clock.js';
import { FakeBrowser } from './support/fake-browser.js';
import type { ConnectOptions } from '../src/options.js';
import type { World } from './support/harness.js';
import { change, event, start, world } from './support/harness.js';

/** A tab of `browser` running a client; all tabs share the world's server and clock. */
function tab(name: string, browser: FakeBrowser, shared: World, options: Partial<ConnectOptions> = {}) {
  return start(
    {
      shareAcrossTabs: true,
      BroadcastChannel: browser.BroadcastChannel(name),
      locks: browser.locks(name),
      ...options,
    },
    shared,
  );
}

/** Two tabs, A leading with a live socket, B following. */
async function twoTabs(options: Partial<ConnectOptions> = {}) {
  const browser = new FakeBrowser();
  const shared = world();
  const a = tab('A', browser, shared, options);
  await shared.clock.advance(0);
  const b = tab('B', browser, shared, options);
  await shared.clock.advance(0);
  a.socket().accept({ head: 0 });
  a.socket().caughtUp(0);
  await shared.clock.advance(0);
  return { browser, shared, a, b };
}

describe('one connection per browser', () => {
  it('connects from the leader tab only', async () => {
    const { shared, a, b } = await twoTabs();
    assert.equal(shared.sockets.length, 1);
    assert.equal(a.snapshot().isLeader, true);
    assert.equal(b.snapshot().isLeader, false);
  });

  it('relays events, in order and once, to the other tabs', async () => {
    const { shared, a, b } = await twoTabs();
    a.socket().events(event(1), event(2), event(3));
    await shared.clock.advance(0);
    assert.deepEqual(a.receivedIds(), [1, 2, 3]);
    assert.deepEqual(b.receivedIds(), [1, 2, 3]);
    assert.equal(b.snapshot().lastEventId, 3);
  });

  it('mirrors the leader connection state in the other tabs', async () => {
    const { shared, a, b } = await twoTabs();
    assert.equal(b.client.getState(), 'connected');
    assert.equal(b.snapshot().transport, 'websocket');

    a.socket().drop(1006);
    await shared.clock.advance(0);
    assert.equal(b.client.getState(), 'reconnecting');

    await shared.clock.advance(500);
    a.socket().accept();
    await shared.clock.advance(0);
    assert.equal(b.client.getState(), 'connected');
    assert.equal(b.snapshot().reconnects, 1);
  });

  it('hands over when the leader tab dies, resuming from what the follower saw: nothing lost, nothing twice', async () => {
    const { browser, shared, a, b } = await twoTabs();
    a.socket().events(event(1), event(2), event(3));
    await shared.clock.advance(0);

    // Event 4 reaches the leader, which dies before its relay message is delivered.
    a.socket().events(event(4));
    browser.closeTab('A');
    a.client.close(); // stands in for the page's code no longer running
    await shared.clock.advance(0);

    assert.equal(b.snapshot().isLeader, true);
    assert.equal(b.client.getState(), 'reconnecting');
    assert.equal(shared.sockets.length, 2);
    b.socket().accept({ head: 5 });
    assert.equal(b.socket().lastSent('subscribe')?.['since'], 3);
    b.socket().events(event(4), event(5));
    b.socket().caughtUp(5);

    assert.deepEqual(b.receivedIds(), [1, 2, 3, 4, 5]);
    assert.equal(b.client.getState(), 'connected');
    assert.equal(b.snapshot().reconnects, 1);
    assert.equal(b.snapshot().missedOnLastReconnect, 2);
  });

  it('hands over when the leader tab closes the client', async () => {
    const { shared, a, b } = await twoTabs();
    a.socket().events(event(1));
    await shared.clock.advance(0);
    a.client.close();
    await shared.clock.advance(0);

    assert.equal(a.client.getState(), 'offline');
    assert.equal(b.snapshot().isLeader, true);
    b.socket().accept({ head: 1 });
    assert.equal(b.socket().lastSent('subscribe')?.['since'], 1);
  });

  it('brings a tab that joins late up to date, from the leader cursor on', async () => {
    const { browser, shared, a } = await twoTabs();
    a.socket().events(event(1), event(2));
    await shared.clock.advance(0);

    const c = tab('C', browser, shared);
    await shared.clock.advance(0);
    assert.equal(c.client.getState(), 'connected');
    assert.equal(c.snapshot().lastEventId, 2);

    a.socket().events(event(3));
    await shared.clock.advance(0);
    assert.deepEqual(c.receivedIds(), [3]);
  });

  it('passes reconnect() in a follower on to the leader', async () => {
    const { shared, a, b } = await twoTabs();
    b.client.reconnect();
    await shared.clock.advance(0);
    assert.equal(a.sockets[0]?.closedWith?.code, 1000);
    assert.equal(shared.sockets.length, 2);
  });

  it('relays resets and errors', async () => {
    const { shared, a, b } = await twoTabs();
    a.socket().push({ type: 'reset', reason: 'lagged', oldest_id: 1, head: 70 });
    a.socket().push({ type: 'error', error: 'forbidden_topic', message: 'no', request_id: 'r1' });
    await shared.clock.advance(0);

    assert.deepEqual(
      b.resets.map((r) => [r.reason, r.info.head]),
      [['lagged', 70]],
    );
    assert.equal(b.snapshot().lastEventId, 70);
    assert.equal(b.errors[0]?.code, 'forbidden_topic');
    assert.equal(b.errors[0]?.kind, 'server');
  });

  it('relays a changed-while-away report to every tab, each moving its cursor to the report’s head', async () => {
    const { shared, a, b } = await twoTabs();
    a.socket().events(event(1), event(2));
    shared.server.publishMany(2);
    shared.server.publish('alerts', 'entity:deleted', change('fault', '5', 'deleted'));
    shared.server.publish('alerts', 'notification:info');
    shared.server.prunedThrough = 3;
    await shared.clock.advance(0);

    a.socket().push({ type: 'reset', reason: 'cursor_expired', oldest_id: 4, head: 4 });
    await shared.clock.advance(0);

    for (const tab of [a, b]) {
      assert.deepEqual(
        tab.awayReports.map((r) => [r.count, r.entities[0]?.entity.id, r.head, r.logComplete]),
        [[1, '5', 4, false]],
      );
      assert.deepEqual(tab.resets, []);
      assert.equal(tab.snapshot().lastEventId, 4);
    }
    assert.equal(shared.server.requestsTo('/events/changes').length, 1, 'read once, by the leader');
    a.socket().accept({ head: 4 });
    assert.equal(a.socket().lastSent('subscribe')?.['since'], 4);
  });

  it('gives a tab that joins with initialState a state of its own, then what the leader relays after it, in order', async () => {
    const { browser, shared, a } = await twoTabs();
    shared.server.publish('alerts', 'entity:created', change('fault', '1', 'created')); // 1
    shared.server.publish('alerts', 'entity:updated', change('fault', '1')); // 2
    a.socket().events(event(1), event(2, 'alerts', 'entity:updated', change('fault', '1')));
    // While the joining tab reads the state (head 2): the leader relays id 2
    // again in no order the tab can rely on, and id 3, committed after the read.
    shared.server.beforeChangesAnswer = () => {
      shared.server.publish('alerts', 'entity:created', change('fault', '3', 'created'));
      a.socket().events(event(3, 'alerts', 'entity:created', change('fault', '3', 'created')));
    };
    const c = tab('C', browser, shared, { initialState: true });
    const order: string[] = [];
    c.client.onInitialState((state) => order.push(`state@${state.head}`));
    c.client.on('*', (e) => order.push(`event ${e.id}`));
    await shared.clock.advance(0);

    assert.deepEqual(order, ['state@2', 'event 3']);
    assert.deepEqual(c.initialStates[0]?.entities.map((e) => e.id), [2]);
    assert.equal(c.snapshot().lastEventId, 3);
    assert.equal(c.snapshot().isLeader, false);
    assert.equal(shared.sockets.length, 1, 'the joining tab uses the leader’s connection');
  });

  it('lets a lone tab with initialState lead once it has its state', async () => {
    const browser = new FakeBrowser();
    const shared = world();
    shared.server.publish('alerts', 'entity:created', change('fault', '1', 'created'));
    const a = tab('A', browser, shared, { initialState: true });
    await shared.clock.advance(0);
    assert.equal(a.initialStates[0]?.head, 1);
    assert.equal(a.snapshot().isLeader, true);
    a.socket().accept({ head: 1 });
    assert.equal(a.socket().lastSent('subscribe')?.['since'], 1);
  });

  it('keeps tabs with different topics on separate connections', async () => {
    const browser = new FakeBrowser();
    const shared = world();
    tab('A', browser, shared, { topics: ['alerts'] });
    tab('B', browser, shared, { topics: ['faults'] });
    await shared.clock.advance(0);
    assert.equal(shared.sockets.length, 2);
  });

  it('works over Node’s own BroadcastChannel', async () => {
    const browser = new FakeBrowser();
    const shared = world();
    const options = { BroadcastChannel: globalThis.BroadcastChannel, tabScope: `node-bc-${process.pid}` };
    const a = tab('A', browser, shared, options);
    await shared.clock.advance(0);
    const b = tab('B', browser, shared, options);
    await shared.clock.advance(0);
    try {
      const relayed = new Promise<number>((resolve) => b.client.on('*', (e) => resolve(e.id)));
      a.socket().accept({ head: 0 });
      a.socket().events(event(1));
      assert.equal(await withTimeout(relayed, 2_000), 1);
    } finally {
      a.client.close();
      b.client.close();
    }
  });
});

describe('leader election without Web Locks', () => {
  function electionTab(id: string, browser: FakeBrowser, clock: FakeClock) {
    const changes: boolean[] = [];
    const Channel = browser.BroadcastChannel(id);
    const election = channelElection({ channel: new Channel('election'), clock, tabId: id, heartbeatMs: 1_000 });
    election.start((leading) => changes.push(leading));
    return { election, changes };
  }

  it('lets a lone tab lead after one heartbeat', async () => {
    const browser = new FakeBrowser();
    const clock = new FakeClock();
    const a = electionTab('a', browser, clock);
    await clock.advance(999);
    assert.deepEqual(a.changes, []);
    await clock.advance(1);
    assert.deepEqual(a.changes, [true]);
  });

  it('keeps a newcomer following while the leader is alive', async () => {
    const browser = new FakeBrowser();
    const clock = new FakeClock();
    const a = electionTab('a', browser, clock);
    await clock.advance(1_000);
    const b = electionTab('b', browser, clock);
    await clock.advance(60_000);
    assert.deepEqual(a.changes, [true]);
    assert.deepEqual(b.changes, []);
  });

  it('hands over at once when the leader resigns', async () => {
    const browser = new FakeBrowser();
    const clock = new FakeClock();
    const a = electionTab('a', browser, clock);
    await clock.advance(1_000);
    const b = electionTab('b', browser, clock);
    await clock.advance(5_000);
    a.election.stop();
    await clock.advance(0);
    assert.deepEqual(b.changes, [true]);
  });

  it('hands over after three missed heartbeats when the leader tab dies', async () => {
    const browser = new FakeBrowser();
    const clock = new FakeClock();
    electionTab('a', browser, clock);
    await clock.advance(1_000);
    const b = electionTab('b', browser, clock);
    await clock.advance(5_000);
    browser.closeTab('a');
    await clock.advance(2_000);
    assert.deepEqual(b.changes, []);
    await clock.advance(1_000);
    assert.deepEqual(b.changes, [true]);
  });

  it('settles two simultaneous claims on the lower tab id', async () => {
    const browser = new FakeBrowser();
    const clock = new FakeClock();
    browser.holdMessages();
    const b = electionTab('b', browser, clock);
    const a = electionTab('a', browser, clock);
    await clock.advance(1_000);
    assert.deepEqual([a.changes, b.changes], [[true], [true]], 'both claimed, unheard');

    browser.deliverHeld();
    await clock.advance(0);
    assert.deepEqual(a.changes, [true]);
    assert.deepEqual(b.changes, [true, false]);
    await clock.advance(30_000);
    assert.deepEqual(b.changes, [true, false], 'and it stays settled');
  });

  it('runs a whole client with it: one connection, and a takeover when the leader dies', async () => {
    const browser = new FakeBrowser();
    const shared = world();
    const options = { locks: null, leaderHeartbeatMs: 1_000 };
    const a = tab('A', browser, shared, options);
    await shared.clock.advance(1_000);
    const b = tab('B', browser, shared, options);
    await shared.clock.advance(0);
    a.socket().accept({ head: 0 });
    a.socket().events(event(1));
    await shared.clock.advance(5_000);
    a.socket().push({ type: 'pong' });
    assert.equal(shared.sockets.length, 1);
    assert.deepEqual(b.receivedIds(), [1]);

    browser.closeTab('A');
    a.client.close();
    await shared.clock.advance(3_000);
    assert.equal(b.snapshot().isLeader, true);
    b.socket().accept({ head: 1 });
    assert.equal(b.socket().lastSent('subscribe')?.['since'], 1);
  });
});

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
