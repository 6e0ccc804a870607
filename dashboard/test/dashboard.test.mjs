// The dashboard in a real browser (Debian's Chromium, driven by
// playwright-core) against the real server binary: what a person watching a
// deployment sees when events arrive, when the server dies and comes back,
// and when the page is open in eight tabs.
//
// Nothing here sleeps to synchronise: every step waits for what the page or
// the server shows. Screenshots go to artifacts/ (kept out of git); with
// UPDATE_README_SCREENSHOT=1 the README's is written to docs/dashboard.png.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

import { batch, binaryPath, PushlogServer, waitFor } from '../../clients/js/integration/support/pushlog.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dashboardDir = resolve(here, '..');
const artifacts = join(here, 'artifacts');
const docsScreenshot = resolve(here, '../../docs/dashboard.png');
const TABS = 8;

const row = (id) => `[data-testid="event-row"][data-id="${id}"]`;

const timings = {};

/** Milliseconds from now until `promise` settles, recorded under `name`. */
async function timed(name, promise) {
  const started = Date.now();
  const value = await promise;
  timings[name] = Date.now() - started;
  return value;
}

describe('dashboard in Chromium against the real server', () => {
  let server;
  let context;
  let userDataDir;
  let reader;
  let publisher;
  let first;
  const pageErrors = [];

  async function openTab(withToken = true) {
    return openPage(withToken ? `/?token=${reader}` : '/');
  }

  async function openPage(path) {
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
    await page.goto(`${server.url}${path}`);
    return page;
  }

  const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
  const waitForStatus = (page, color, timeout = 10_000) =>
    page.waitForSelector(`[data-testid="status"][data-color="${color}"]`, { timeout });
  const rowIds = (page) =>
    page.$$eval('[data-testid="event-row"]', (rows) => rows.map((r) => Number(r.dataset.id)));

  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    server = await PushlogServer.create({ bin: binaryPath(here) });
    await server.start();
    // The page is compiled into the binary: a stale build would test old files.
    for (const [path, file] of [
      ['/', 'index.html'],
      ['/assets/app.js', 'app.js'],
      ['/assets/style.css', 'style.css'],
      ['/assets/pushlog-client.js', 'pushlog-client.js'],
    ]) {
      const served = await (await fetch(`${server.url}${path}`)).text();
      assert.equal(
        served,
        readFileSync(join(dashboardDir, file), 'utf8'),
        `the binary serves an old dashboard/${file}: run \`cargo build --bin pushlog\``,
      );
    }
    reader = server.token({ sub: 'viewer' });
    publisher = server.token({ sub: 'ops', roles: ['publisher'] });
    userDataDir = mkdtempSync(join(tmpdir(), 'pushlog-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      timezoneId: 'UTC',
    });
  });

  after(async () => {
    await context?.close();
    await server?.destroy();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    writeFileSync(join(artifacts, 'timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
    console.log(`# browser test timings (ms): ${JSON.stringify(timings)}`);
  });

  it('takes the token from the URL, hides it, and shows published events as they come', async () => {
    first = context.pages()[0] ?? (await context.newPage());
    first.on('pageerror', (error) => pageErrors.push(`${first.url()}: ${error.message}`));
    await timed('first_page_live', (async () => {
      await first.goto(`${server.url}/?token=${reader}&topics=*`);
      await waitForStatus(first, 'green');
    })());
    assert.equal(await first.textContent('[data-testid="status-label"]'), 'Live');
    assert.ok(!first.url().includes('token='), `the token left the address bar: ${first.url()}`);
    assert.equal(await first.evaluate(() => sessionStorage.getItem('pushlog:dashboard:token')), reader);

    const published = await server.publish([
      { topic: 'deploy:api', type: 'notification:deploy', payload: { version: 'v2.14.0', stage: 'canary' } },
      { topic: 'faults', type: 'entity:updated', entity: { kind: 'fault', id: '42', op: 'updated' }, payload: { status: 'resolved' } },
      ...batch('device:dev-0001', 3, 'telemetry:reading'),
    ]);
    await timed('publish_to_row', first.waitForSelector(row(published.at(-1).id)));
    assert.deepEqual(await rowIds(first), published.map((e) => e.id).reverse(), 'newest first');
    assert.match(await first.textContent('[data-testid="entity-hint"]'), /fault 42 updated — refetch/);
    const counters = await first.$$eval('[data-testid="topic-counter"]', (items) =>
      Object.fromEntries(items.map((li) => [li.dataset.topic, Number(li.dataset.count)])),
    );
    assert.deepEqual(counters, { 'device:dev-0001': 3, 'deploy:api': 1, faults: 1 });
    await shot(first, '01-live');
  });

  it('filters by topic and type, and buffers while paused', async () => {
    await first.fill('[data-testid="filter-topic"]', 'device:*');
    await first.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 3);
    await first.fill('[data-testid="filter-topic"]', '');
    await first.selectOption('[data-testid="filter-type"]', 'entity:updated');
    await first.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 1);
    await first.selectOption('[data-testid="filter-type"]', '');

    await first.click('[data-testid="pause"]');
    assert.equal(await first.getAttribute('[data-testid="pause"]', 'aria-pressed'), 'true');
    const before = (await rowIds(first)).length;
    const held = await server.publish(batch('alerts', 2));
    await first.waitForSelector('[data-testid="pending"]:has-text("2 waiting")');
    assert.equal((await rowIds(first)).length, before, 'nothing shown while paused');
    await shot(first, '02-paused');
    await first.click('[data-testid="pause"]');
    await first.waitForSelector(row(held[1].id));
    assert.equal(await first.isHidden('[data-testid="pending"]'), true);
    assert.deepEqual((await rowIds(first)).slice(0, 2), [held[1].id, held[0].id]);
  });

  it('publishes from the form, and shows the server’s message when it refuses', async () => {
    await first.fill('[data-testid="publish-token"]', reader);
    await first.fill('[data-testid="publish-topic"]', 'faults');
    await first.fill('[data-testid="publish-type"]', 'entity:created');
    await first.fill('[data-testid="publish-entity-kind"]', 'fault');
    await first.fill('[data-testid="publish-entity-id"]', '43');
    await first.selectOption('[data-testid="publish-entity-op"]', 'created');
    await first.fill('[data-testid="publish-payload"]', '{"severity": "minor"}');
    await first.click('[data-testid="publish-submit"]');
    await first.waitForSelector('[data-testid="publish-result"][data-outcome="error"]');
    const refusal = await first.textContent('[data-testid="publish-result"]');
    assert.match(refusal, /^403: .*publisher/, 'the server’s own message, with the status');

    await first.fill('[data-testid="publish-payload"]', '{"severity": ');
    await first.click('[data-testid="publish-submit"]');
    await first.waitForSelector('[data-testid="publish-result"]:has-text("not valid JSON")');

    await first.fill('[data-testid="publish-token"]', publisher);
    await first.fill('[data-testid="publish-payload"]', '{"severity": "minor"}');
    await first.click('[data-testid="publish-submit"]');
    await first.waitForSelector('[data-testid="publish-result"][data-outcome="ok"]');
    const id = Number(/#(\d+)/.exec(await first.textContent('[data-testid="publish-result"]'))[1]);
    await first.waitForSelector(row(id));
    assert.match(await first.textContent(row(id)), /faults.*entity:created.*fault 43 · created.*"severity":"minor"/s);
    await first.waitForSelector('[data-testid="entity-hint"]:has-text("fault 43 created — refetch")');
  });

  it('opens showing the most recent events, then goes live from there with none twice or missing', async () => {
    const shownBefore = await first.$$eval('[data-testid="event-row"]', (rows) =>
      rows.map((r) => ({ id: Number(r.dataset.id), topic: r.dataset.topic })),
    );
    // Events keep coming while the pages open: the page read from the log
    // and the stream resumed after it must meet exactly.
    let opening = true;
    const during = [];
    const publishing = (async () => {
      for (let n = 0; opening && n < 40; n++) {
        during.push(...(await server.publish(batch('alerts', 1, 'message:new', 200 + n))));
        await new Promise((done) => setTimeout(done, 15));
      }
    })();
    // One page with a connection of its own (other topics: another
    // connection), resuming from its page; one joining `first`'s connection,
    // which fills in what went by while it joined. The second carries the
    // publisher token in its fragment, as the development-mode link does.
    const own = await openPage(`/?token=${reader}&topics=faults,alerts`);
    const joined = await openPage(`/?token=${reader}#publisher=${publisher}`);
    await Promise.all([own, joined].map((page) => waitForStatus(page, 'green')));
    const atGreen = await rowIds(joined);
    opening = false;
    await publishing;

    const everything = [...shownBefore.map((e) => e.id).reverse(), ...during.map((e) => e.id)];
    const ownTopics = [...shownBefore.filter((e) => e.topic === 'faults' || e.topic === 'alerts').map((e) => e.id).reverse(),
      ...during.map((e) => e.id)];
    assert.ok(shownBefore.length > 0 && atGreen.length >= shownBefore.length, `opened with history: ${atGreen}`);
    for (const [page, expected] of [[joined, everything], [own, ownTopics]]) {
      await page.waitForSelector(row(during.at(-1).id));
      assert.deepEqual(await rowIds(page), [...expected].reverse(), 'newest first, each once, none missing');
    }
    await shot(joined, '02b-opened-with-history');

    // The publisher token came in the fragment: the form publishes as is,
    // and the token is gone from the address bar.
    assert.ok(!joined.url().includes('publisher='), `the token left the address bar: ${joined.url()}`);
    assert.equal(await joined.inputValue('[data-testid="publish-token"]'), publisher);
    await joined.click('[data-testid="publish-submit"]');
    await joined.waitForSelector('[data-testid="publish-result"][data-outcome="ok"]');
    const id = Number(/#(\d+)/.exec(await joined.textContent('[data-testid="publish-result"]'))[1]);
    await Promise.all([own, joined, first].map((page) => page.waitForSelector(row(id))));
    await Promise.all([own.close(), joined.close()]);
  });

  it('turns red when the server is killed', async () => {
    await server.kill();
    await timed('kill_to_red', waitForStatus(first, 'red'));
    assert.equal(await first.textContent('[data-testid="status-label"]'), 'Offline');
    await shot(first, '03-offline');
  });

  it('turns green after a restart, applies what was published meanwhile, and says how many', async (t) => {
    // Record, in the page, when the new session opens: the replay counts as
    // "missed" only for events published before that moment.
    await first.evaluate(() => {
      window.__reconnectedAt = null;
      const unsubscribe = window.pushlog.subscribe((s) => {
        if (s.reconnects > 0 && (s.state === 'connected' || s.state === 'fallback')) {
          window.__reconnectedAt = Date.now();
          unsubscribe();
        }
      });
    });
    const restartedAt = Date.now();
    await server.start();
    const missed = await server.publish(batch('alerts', 4, 'message:new', 100));
    const publishedAt = Date.now();
    timings.restart_and_publish = publishedAt - restartedAt;

    await waitForStatus(first, 'green', 40_000);
    timings.restart_to_green = Date.now() - restartedAt;
    await first.waitForSelector(row(missed.at(-1).id));
    const toast = await first.waitForSelector('[data-testid="toast"]:not([hidden])');
    const text = await toast.textContent();
    const n = Number(/^Reconnected — (\d+) missed events? applied$/.exec(text)?.[1]);
    assert.ok(Number.isInteger(n), `toast says "${text}"`);
    const reconnectedAt = await first.evaluate(() => window.__reconnectedAt);
    if (reconnectedAt > publishedAt) {
      assert.equal(n, missed.length, 'every event published during the outage came as missed');
    } else {
      // The page's jittered retry won the race against the publish.
      t.diagnostic(`page reconnected ${publishedAt - reconnectedAt} ms before the publish finished`);
      assert.ok(n <= missed.length);
    }
    timings.missed_in_toast = n;
    const ids = await rowIds(first);
    assert.deepEqual(ids.slice(0, 4), missed.map((e) => e.id).reverse());
    assert.equal(new Set(ids).size, ids.length, 'no event shown twice');
    assert.equal(await first.getAttribute('[data-testid="toast"]', 'aria-live'), 'polite');
    await shot(first, '04-reconnected');
  });

  it(`shares one server connection among ${TABS} tabs, and every tab shows every event`, async () => {
    const tabs = [first];
    // One tab comes without a token and uses the form, as a person would.
    const gated = await openTab(false);
    await gated.waitForSelector('[data-testid="token-form"]');
    await gated.fill('#token-input', reader);
    await gated.click('[data-testid="token-form"] [type="submit"]');
    tabs.push(gated);
    while (tabs.length < TABS) tabs.push(await openTab());
    await timed('tabs_all_green', Promise.all(tabs.map((page) => waitForStatus(page, 'green'))));

    await timed('tabs_one_connection', waitFor(async () => (await server.connections()) === 1, 10_000, 'one connection'));
    const leaders = await Promise.all(tabs.map((page) => page.evaluate(() => window.pushlog.getSnapshot().isLeader)));
    assert.equal(leaders.filter(Boolean).length, 1, `exactly one leader tab: ${leaders}`);

    const published = await server.publish(batch('fanout', 5));
    const ids = published.map((e) => e.id);
    await timed('publish_to_all_tabs', Promise.all(tabs.map((page) => page.waitForSelector(row(ids.at(-1))))));
    for (const page of tabs) {
      const shown = await rowIds(page);
      for (const id of ids) assert.equal(shown.filter((x) => x === id).length, 1, `event ${id} once in every tab`);
    }
    const streams = await server.connections();
    assert.equal(streams, 1, `${streams} streams open`);
    timings.tabs = TABS;
    timings.tabs_server_connections = streams;
    await shot(tabs[TABS - 1], '05-follower-tab');

    // The leader goes; another tab takes over and nothing is lost.
    const leader = tabs[leaders.indexOf(true)];
    const others = tabs.filter((page) => page !== leader);
    await timed('leader_close_to_new_leader', (async () => {
      await leader.close();
      await waitFor(
        async () => {
          const now = await Promise.all(others.map((page) => page.evaluate(() => window.pushlog.getSnapshot())));
          return now.filter((s) => s.isLeader).length === 1 && now.every((s) => s.state === 'connected');
        },
        15_000,
        'a new leader tab, and every tab live again',
      );
    })());
    const more = await server.publish(batch('fanout', 3, 'message:new', 5));
    await Promise.all(others.map((page) => page.waitForSelector(row(more.at(-1).id))));
    for (const page of others) {
      const shown = await rowIds(page);
      for (const { id } of [...published, ...more]) {
        assert.equal(shown.filter((x) => x === id).length, 1, `event ${id} once in every remaining tab`);
      }
    }
    await waitFor(async () => (await server.connections()) === 1, 10_000, 'one connection after the hand-over');
    timings.after_handover_server_connections = await server.connections();
    await Promise.all(others.slice(1).map((page) => page.close()));
    first = others[0];
  });

  it('fits a 360 px wide phone screen', async () => {
    await first.setViewportSize({ width: 360, height: 780 });
    const overflow = await first.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    assert.ok(await first.isVisible('[data-testid="status"]'));
    assert.ok(await first.isVisible('[data-testid="retry"]'));
    await first.screenshot({ path: join(artifacts, '06-phone.png'), fullPage: true });
    await first.setViewportSize({ width: 1280, height: 800 });
  });

  it('Retry reconnects at once', async () => {
    const reconnects = await first.evaluate(() => window.pushlog.getSnapshot().reconnects);
    await first.click('[data-testid="retry"]');
    await first.waitForFunction((n) => window.pushlog.getSnapshot().reconnects > n && window.pushlog.getState() === 'connected', reconnects);
    await waitFor(async () => (await server.connections()) === 1, 10_000, 'one connection after Retry');
  });

  it('raised no errors in any page', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('takes the README screenshot', async () => {
    // A fresh log, so the picture shows a plausible deployment, not test data.
    const demo = await PushlogServer.create({ bin: server.bin });
    try {
      await demo.start();
      const page = await context.newPage();
      await page.goto(`${demo.url}/?token=${demo.token({ sub: 'viewer' })}`);
      await waitForStatus(page, 'green');
      const published = [];
      for (const event of demoEvents()) published.push(...(await demo.publish([event])));
      await page.waitForSelector(row(published.at(-1).id));
      await page.fill('[data-testid="publish-token"]', demo.token({ sub: 'ops', roles: ['publisher'] }));
      await page.fill('[data-testid="publish-topic"]', 'faults');
      await page.fill('[data-testid="publish-type"]', 'entity:updated');
      await page.fill('[data-testid="publish-entity-kind"]', 'fault');
      await page.fill('[data-testid="publish-entity-id"]', '42');
      await page.fill('[data-testid="publish-payload"]', '{"status": "resolved"}');
      await page.click('[data-testid="publish-submit"]');
      await page.waitForSelector('[data-testid="publish-result"][data-outcome="ok"]');
      await page.waitForSelector('[data-testid="entity-hint"]:has-text("fault 42 updated")');
      // Let the arrival highlights finish so the picture is calm.
      await page.evaluate(() =>
        Promise.all(document.getAnimations().filter((a) => a.animationName === 'arrive').map((a) => a.finished)),
      );
      await page.screenshot({ path: join(artifacts, '07-readme.png') });
      // The committed picture changes only when asked for, so that a test
      // run leaves the work tree as it found it.
      if (process.env.UPDATE_README_SCREENSHOT === '1') {
        mkdirSync(dirname(docsScreenshot), { recursive: true });
        await page.screenshot({ path: docsScreenshot });
      }
      await page.close();
    } finally {
      await demo.destroy();
    }
  });
});

/** What a small deployment's stream looks like. */
function demoEvents() {
  return [
    { topic: 'deploy:api', type: 'notification:deploy', payload: { version: 'v2.14.0', stage: 'canary', by: 'alice' } },
    { topic: 'device:dev-0001', type: 'telemetry:reading', payload: { temp_c: 21.4, humidity: 41 } },
    { topic: 'device:dev-0002', type: 'telemetry:reading', payload: { temp_c: 31.5, humidity: 38 } },
    { topic: 'faults', type: 'entity:created', entity: { kind: 'fault', id: '42', op: 'created' }, payload: { severity: 'major', device: 'dev-0002', summary: 'Fan speed below threshold' } },
    { topic: 'alerts', type: 'notification:alert', payload: { text: 'Disk usage above 85% on db-2', level: 'warning' } },
    { topic: 'device:dev-0001', type: 'telemetry:reading', payload: { temp_c: 21.6, humidity: 40 } },
    { topic: 'chat:ops', type: 'message:new', payload: { from: 'bob', text: 'Looking at dev-0002 now' } },
    { topic: 'faults', type: 'entity:updated', entity: { kind: 'fault', id: '42', op: 'updated' }, payload: { status: 'acknowledged', assignee: 'bob' } },
    { topic: 'deploy:api', type: 'notification:deploy', payload: { version: 'v2.14.0', stage: 'rolled out', pods: 12 } },
  ];
}
