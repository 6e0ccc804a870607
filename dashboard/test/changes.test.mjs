// "Changed while you were away" in a real browser (Debian's Chromium,
// driven by playwright-core) against the real server binary, whose log keeps
// only the last 20 events, so a page's cursor expires after a short absence:
//
// - a page that caches with TanStack Query (the real @tanstack/query-core)
//   and the client's adapter comes back with an expired cursor: exactly the
//   changed entities' queries are refetched, the page shows how many, and
//   it goes on live;
// - the dashboard shows the report, and loads the current state of every
//   entity on request.
//
// Nothing here sleeps to synchronise: every step waits for what the page or
// the server shows.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
const queryCore = resolve(here, 'node_modules/@tanstack/query-core/build/modern');
const CHROMIUM_PAGE_ARGS = [
  ...CHROMIUM_ARGS,
  // The test page is answered by Playwright, not by a socket, so Chromium
  // cannot place it in the loopback address space and would block its
  // requests to the server as "local network access" from a public page.
  '--disable-features=LocalNetworkAccessChecks',
];

/** The app under test: a page that caches per entity and lets the adapter invalidate. */
const QUERIES_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>queries</title>
<p id="away" data-testid="away"></p>
<p id="reset" data-testid="reset"></p>
<!-- What a bundler would replace in query-core's ES build. -->
<script>globalThis.process = { env: { NODE_ENV: 'production' } };</script>
<script type="module" src="/__test__/queries.js"></script>`;

const QUERIES_SCRIPT = `
import { QueryClient, QueryObserver } from '/__test__/query-core/index.js';
import { connect, invalidateOnEvents } from '/assets/pushlog-client.js';

const queryClient = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });
// Every query the page shows, and how often each was fetched.
const fetches = {};
const keys = [['faults'], ...['1', '2', '3', '4', '5'].map((id) => ['faults', id]), ['announcements'], ['announcements', '7']];
for (const queryKey of keys) {
  const observer = new QueryObserver(queryClient, {
    queryKey,
    queryFn: async () => {
      const name = queryKey.join('/');
      fetches[name] = (fetches[name] ?? 0) + 1;
      return fetches[name];
    },
  });
  observer.subscribe(() => {});
}

const client = connect({
  url: '/',
  topics: ['faults', 'announcements', 'notes'],
  token: new URLSearchParams(location.search).get('token'),
  storage: localStorage,
});
invalidateOnEvents(client, queryClient, { fault: ['faults'], announcement: ['announcements'] });
window.received = [];
client.on('*', (event) => window.received.push(event.id));
client.onChangedWhileAway((report) => {
  window.report = report;
  document.querySelector('#away').textContent =
    report.count + ' entities changed while you were away' + (report.logComplete ? '' : '; notifications may be missing');
});
client.onReset((reason) => (document.querySelector('#reset').textContent = 'reset: ' + reason));
window.pushlog = client;
window.fetches = fetches;
`;

const change = (topic, kind, id, op = 'updated') => ({ topic, type: `entity:${op}`, entity: { kind, id, op } });

describe('an expired cursor in Chromium against the real server', () => {
  let server;
  let context;
  let userDataDir;
  let reader;
  const pageErrors = [];

  async function openPage(path) {
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
    await page.goto(`${server.url}${path}`);
    return page;
  }

  /** Publishes notifications until retention has pruned past `cursor`. */
  async function pruneBeyond(cursor) {
    await server.publish(batch('notes', 25));
    await waitFor(() => server.prunedPast(cursor), 10_000, `retention to prune past ${cursor}`);
  }

  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    server = await PushlogServer.create({
      bin: binaryPath(here),
      env: { PUSHLOG_RETENTION: '20', PUSHLOG_PRUNE_INTERVAL: '1s' },
    });
    await server.start();
    for (const [path, file] of [
      ['/assets/app.js', 'app.js'],
      ['/assets/pushlog-client.js', 'pushlog-client.js'],
      ['/', 'index.html'],
    ]) {
      const served = await (await fetch(`${server.url}${path}`)).text();
      assert.equal(served, readFileSync(join(dashboardDir, file), 'utf8'), `the binary serves an old dashboard/${file}: run \`cargo build --bin pushlog\``);
    }
    reader = server.token({ sub: 'viewer' });
    userDataDir = mkdtempSync(join(tmpdir(), 'pushlog-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_PAGE_ARGS,
      viewport: { width: 1280, height: 800 },
      timezoneId: 'UTC',
    });
    // The test page and TanStack Query, served at the server's origin (so the
    // page reaches the server without CORS); everything else is the server.
    await context.route(`${server.url}/__test__/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === '/__test__/queries.html') return route.fulfill({ contentType: 'text/html', body: QUERIES_PAGE });
      if (path === '/__test__/queries.js') return route.fulfill({ contentType: 'text/javascript', body: QUERIES_SCRIPT });
      const file = path.replace('/__test__/query-core/', '');
      if (path.startsWith('/__test__/query-core/') && /^[\w.-]+\.js$/.test(file)) {
        return route.fulfill({ contentType: 'text/javascript', body: readFileSync(join(queryCore, file), 'utf8') });
      }
      return route.fulfill({ status: 404, body: 'not found' });
    });
  });

  after(async () => {
    await context?.close();
    await server?.destroy();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('a TanStack Query page back with an expired cursor refetches only the changed entities and shows how many', async () => {
    const page = await openPage(`/__test__/queries.html?token=${reader}`);
    await page.waitForFunction(() => window.pushlog?.getState() === 'connected');
    const seen = await server.publish(batch('notes', 2));
    await page.waitForFunction((id) => window.pushlog.getSnapshot().lastEventId === id, seen.at(-1).id);
    const cursor = seen.at(-1).id;
    assert.equal(await page.evaluate(() => Object.values(window.fetches).every((n) => n === 1)), true);
    await page.close();

    // Away: faults 2 and 4 change (4 is deleted), on a topic the page reads;
    // fault 1 changes only on one it does not; then enough notifications
    // that the log forgets the cursor.
    await server.publish([
      change('faults', 'fault', '2'),
      change('faults', 'fault', '4', 'deleted'),
      change('elsewhere', 'fault', '1'),
      change('faults', 'fault', '2'),
    ]);
    await pruneBeyond(cursor);

    const back = await openPage(`/__test__/queries.html?token=${reader}`);
    await back.waitForSelector('[data-testid="away"]:has-text("changed while you were away")');
    assert.equal(
      await back.textContent('[data-testid="away"]'),
      '2 entities changed while you were away; notifications may be missing',
    );
    await back.waitForFunction(() => window.fetches['faults/2'] === 2 && window.fetches['faults/4'] === 2);
    assert.deepEqual(
      await back.evaluate(() => window.fetches),
      {
        faults: 2,
        'faults/1': 1,
        'faults/2': 2,
        'faults/3': 1,
        'faults/4': 2,
        'faults/5': 1,
        announcements: 1,
        'announcements/7': 1,
      },
      'the list and the two changed faults were refetched, nothing else',
    );
    const report = await back.evaluate(() => window.report);
    assert.deepEqual(report.entities.map((e) => `${e.entity.id} ${e.entity.op}`), ['4 deleted', '2 updated']);
    assert.equal(report.since, cursor);
    assert.equal(await back.textContent('[data-testid="reset"]'), '', 'no reset: nothing else was invalidated');

    // Live again, from the report's head on.
    const live = await server.publish([change('faults', 'fault', '5')]);
    await back.waitForFunction(() => window.fetches['faults/5'] === 2);
    assert.deepEqual(await back.evaluate(() => window.received), [live[0].id]);
    await back.screenshot({ path: join(artifacts, '08-queries-changed-while-away.png') });
    await back.close();
  });

  it('the dashboard loads the current state of every entity, and shows what changed while it was offline', async () => {
    const page = await openPage(`/?token=${reader}&topics=faults,notes`);
    await page.waitForSelector('[data-testid="status"][data-color="green"]');

    await page.click('[data-testid="load-state"]');
    await page.waitForSelector('[data-testid="entities-summary"][data-outcome="ok"]');
    const state = (await server.read('/events/changes?since=0&topics=faults,notes')).body;
    const rows = () =>
      page.$$eval('[data-testid="entity-row"]', (items) =>
        items.map((li) => ({ entity: li.dataset.entity, op: li.dataset.op, id: Number(li.dataset.id), away: 'changedWhileAway' in li.dataset })),
      );
    assert.deepEqual(
      (await rows()).map((r) => `${r.entity} ${r.op} #${r.id}`),
      state.events.map((e) => `${e.entity.kind} ${e.entity.id} ${e.entity.op} #${e.id}`).reverse(),
      'every entity as its latest event, newest first',
    );
    assert.ok(state.events.length >= 3, 'the faults of the first test');
    assert.match(await page.textContent('[data-testid="entities-summary"]'), new RegExp(`^${state.events.length} entities: current state`));

    // Offline long enough for the log to forget the page's cursor.
    const cursor = await page.evaluate(() => window.pushlog.getSnapshot().lastEventId);
    await context.setOffline(true);
    await page.waitForFunction(() => window.pushlog.getState() === 'offline');
    const away = await server.publish([change('faults', 'fault', '6', 'created'), change('faults', 'fault', '2', 'deleted')]);
    await pruneBeyond(cursor);
    await context.setOffline(false);

    const report = await page.waitForSelector('[data-testid="away-report"]:not([hidden])', { timeout: 20_000 });
    assert.equal(await page.textContent('[data-testid="away-title"]'), '2 entities changed while you were away');
    assert.equal(await report.getAttribute('data-count'), '2');
    await page.waitForSelector('[data-testid="toast"]:not([hidden]):has-text("2 entities changed while you were away")');
    assert.deepEqual(
      await page.$$eval('[data-testid="away-entity"]', (items) => items.map((li) => li.textContent)),
      ['fault 2 · deleted', 'fault 6 · created'],
    );
    assert.equal(await page.isVisible('[data-testid="away-warning"]'), true, 'notifications from then are gone');
    const marked = (await rows()).filter((r) => r.away).map((r) => `${r.entity} ${r.op} #${r.id}`);
    assert.deepEqual(marked, [`fault 2 deleted #${away[1].id}`, `fault 6 created #${away[0].id}`]);
    await page.screenshot({ path: join(artifacts, '09-dashboard-changed-while-away.png') });

    // And live from there: a new change shows in the stream and the table.
    await page.waitForSelector('[data-testid="status"][data-color="green"]');
    const live = await server.publish([change('faults', 'fault', '7', 'created')]);
    await page.waitForSelector(`[data-testid="event-row"][data-id="${live[0].id}"]`);
    await page.waitForSelector(`[data-testid="entity-row"][data-id="${live[0].id}"]`);
    await page.click('[data-testid="away-dismiss"]');
    assert.equal(await page.isHidden('[data-testid="away-report"]'), true);
    await page.close();
  });

  it('raised no errors in any page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
