// The live dashboard: watch a pushlog deployment from a browser.
//
// No framework: the page is a handful of regions (status, stream, counters,
// hints, entities, publish form) that each render from a few variables below. The
// connection is the bundled @pushlog/client with its defaults: WebSocket,
// then SSE and polling as fallbacks, gap-free resume, and one connection for
// all tabs of this browser (the other tabs get events relayed).
//
// Everything the server sends is untrusted text: it is only ever put into
// the page with `textContent`, never as HTML.

import { connect, readChanges, topicMatches } from './pushlog-client.js';

const KEYS = {
  token: 'pushlog:dashboard:token',
  topics: 'pushlog:dashboard:topics',
  publisher: 'pushlog:dashboard:publisher-token',
};
/** Events kept and shown; older ones scroll off (the counters keep counting). */
const MAX_EVENTS = 500;
const HINT_MS = 8_000;
const MAX_HINTS = 6;
const TOAST_MS = 6_000;
/** Entities listed at most; the count covers them all. */
const MAX_ENTITY_ROWS = 200;
/** Entities named in a "changed while you were away" report at most. */
const MAX_AWAY_SHOWN = 30;

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
/** A form control by name (`form.id` would be the form's own id). */
const field = (form, name) => form.elements.namedItem(name);
const ui = {
  status: byTestId('status'),
  statusLabel: byTestId('status-label'),
  statusDetail: byTestId('status-detail'),
  connMeta: byTestId('conn-meta'),
  scope: byTestId('scope'),
  retry: byTestId('retry'),
  error: byTestId('error'),
  changeToken: byTestId('change-token'),
  gate: byTestId('token-gate'),
  tokenForm: byTestId('token-form'),
  dashboard: byTestId('dashboard'),
  total: byTestId('event-total'),
  filterTopic: byTestId('filter-topic'),
  filterType: byTestId('filter-type'),
  seenTopics: document.getElementById('seen-topics'),
  pause: byTestId('pause'),
  pending: byTestId('pending'),
  clear: byTestId('clear'),
  events: byTestId('events'),
  empty: byTestId('empty'),
  counters: byTestId('topic-counters'),
  noTopics: byTestId('no-topics'),
  hints: byTestId('hints'),
  awayReport: byTestId('away-report'),
  awayTitle: byTestId('away-title'),
  awayList: byTestId('away-list'),
  awayWarning: byTestId('away-warning'),
  awayDismiss: byTestId('away-dismiss'),
  loadState: byTestId('load-state'),
  entitiesSummary: byTestId('entities-summary'),
  entities: byTestId('entities'),
  publishForm: byTestId('publish-form'),
  publishResult: byTestId('publish-result'),
  toast: byTestId('toast'),
  rowTemplate: document.getElementById('event-row'),
};

// ---------------------------------------------------------------- storage

/** sessionStorage, which throws when disabled: then the page just forgets. */
const session = {
  get(key) {
    try {
      return sessionStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch {
      // Best effort.
    }
  },
};

/**
 * The reader token and topics. A `?token=` in the address is taken once,
 * kept in sessionStorage (this tab only, gone with it) and removed from the
 * address bar, so it does not linger in history, bookmarks or screenshots.
 *
 * A `#publisher=` fragment is the same for the publish form's token: the
 * link a development-mode server prints carries one, so that the form works
 * without pasting. It is a fragment because a fragment is never sent: no
 * request, server log or `Referer` header carries a token that may publish.
 * The server itself never hands the page a token, in any mode.
 */
function takeCredentials() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  const fragment = new URLSearchParams(url.hash.slice(1));
  const publisher = fragment.get('publisher');
  if (fromUrl !== null || publisher !== null) {
    if (fromUrl) session.set(KEYS.token, fromUrl);
    if (publisher) session.set(KEYS.publisher, publisher);
    url.searchParams.delete('token');
    fragment.delete('publisher');
    const hash = fragment.toString();
    history.replaceState(history.state, '', `${url.pathname}${url.search}${hash ? `#${hash}` : ''}`);
  }
  const topicsParam = url.searchParams.get('topics');
  if (topicsParam) session.set(KEYS.topics, topicsParam);
  return {
    token: session.get(KEYS.token),
    topics: parseTopics(session.get(KEYS.topics) ?? '*'),
  };
}

function parseTopics(text) {
  const topics = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  return topics.length > 0 ? topics : ['*'];
}

/** The server this page came from, path prefix included. */
const serverUrl = new URL('./', location.href);

// ------------------------------------------------------------ connection

const LOOKS = {
  connecting: { color: 'yellow', label: 'Connecting' },
  connected: { color: 'green', label: 'Live' },
  fallback: { color: 'blue', label: 'Fallback' },
  reconnecting: { color: 'red', label: 'Offline' },
  offline: { color: 'red', label: 'Offline' },
};
const TRANSPORT_NAMES = { websocket: 'WebSocket', sse: 'Server-Sent Events', polling: 'polling' };

function renderStatus(snapshot) {
  const look = LOOKS[snapshot.state] ?? LOOKS.offline;
  ui.status.dataset.color = look.color;
  ui.status.dataset.state = snapshot.state;
  ui.statusLabel.textContent = look.label;
  let detail = '';
  if (snapshot.state === 'connected' || snapshot.state === 'fallback') {
    detail = TRANSPORT_NAMES[snapshot.transport] ?? '';
  } else if (snapshot.state === 'reconnecting') {
    detail = 'reconnecting…';
  } else if (snapshot.state === 'offline') {
    detail = navigator.onLine === false ? 'no network' : 'stopped';
  }
  ui.statusDetail.textContent = detail;
  const meta = [];
  const part = (text, className) => {
    const span = document.createElement('span');
    span.textContent = text;
    if (className) span.className = className;
    meta.push(span);
  };
  if (snapshot.lastEventId !== null) part(`cursor #${snapshot.lastEventId}`);
  if (snapshot.reconnects > 0) part(`${snapshot.reconnects} reconnect${snapshot.reconnects === 1 ? '' : 's'}`);
  part(snapshot.isLeader ? 'this tab holds the connection' : 'shared from another tab', 'meta-tab');
  ui.connMeta.replaceChildren(...meta);
  ui.retry.disabled = false;
  ui.retry.classList.toggle('primary', snapshot.state === 'reconnecting' || snapshot.state === 'offline');
}

/**
 * "Reconnected — N missed events applied", once per reconnect. The client
 * counts what the replay brought (`missedOnLastReconnect`, null while the
 * replay runs); the first live snapshot only sets the baseline, so a tab
 * opened after earlier reconnects does not announce them.
 */
function reconnectToaster() {
  let seen = null;
  let due = false;
  let reportsWhenDue = 0;
  return (snapshot) => {
    const live = snapshot.state === 'connected' || snapshot.state === 'fallback';
    if (seen === null) {
      if (live) seen = snapshot.reconnects;
      return;
    }
    if (snapshot.reconnects > seen) {
      seen = snapshot.reconnects;
      due = true;
      reportsWhenDue = awayReports;
    }
    if (!due || !live) return;
    // The report of what changed meanwhile said it better: no event was
    // replayed from before its head, so "0 missed" would mislead.
    if (awayReports !== reportsWhenDue) {
      due = false;
      return;
    }
    const missed = snapshot.missedOnLastReconnect;
    if (missed !== null) {
      due = false;
      showToast(`Reconnected — ${missed} missed event${missed === 1 ? '' : 's'} applied`);
    } else if (snapshot.transport === 'sse') {
      // SSE has no "caught up" mark to count by; the replay still happened.
      due = false;
      showToast('Reconnected — missed events replayed');
    }
  };
}

function showError(error) {
  // Transport hiccups are what the status shows; these need a person.
  const needsPerson =
    error.kind === 'rejected' ||
    error.kind === 'server' ||
    error.kind === 'token' ||
    error.status === 401 ||
    error.status === 403;
  if (!needsPerson) return;
  const what =
    error.code === 'unauthorized' || error.status === 401
      ? 'The server rejected the reader token'
      : error.code === 'forbidden_topic'
        ? 'This token may not read a subscribed topic'
        : 'The server refused the connection';
  ui.error.querySelector('.banner-text').textContent = `${what}: ${error.message}`;
  ui.error.hidden = false;
}

/**
 * Shows the dashboard: the newest events first, then the live stream from
 * just after them. Without the newest events (the read failed) it goes
 * live anyway, from now, as it did before it read any; the client then
 * reports what is wrong with the token.
 */
async function start(credentials) {
  const { topics } = credentials;
  ui.gate.hidden = true;
  ui.dashboard.hidden = false;
  ui.scope.hidden = false;
  ui.scope.textContent = `topics: ${topics.join(', ')}`;
  ui.statusDetail.textContent = 'reading recent events…';

  let recent = { events: [], cursor: undefined };
  try {
    recent = await recentEvents(credentials);
  } catch (error) {
    console.warn('pushlog dashboard: no recent events, going live from now', error);
  }
  showHistory(recent.events);
  goLive(credentials, recent.cursor);
}

/** The live stream, resumed after `since` (an event id), or from now. */
function goLive(credentials, since) {
  const { token, topics } = credentials;
  const client = connect({ url: serverUrl, topics, token, since });
  client.on('*', receive);
  if (since !== undefined) fillWhenJoining(client, credentials, since);
  const toaster = reconnectToaster();
  let previous = null;
  const onSnapshot = (snapshot) => {
    renderStatus(snapshot);
    toaster(snapshot);
    // A session that opens again clears an old complaint; one that is still
    // true (a forbidden topic) is reported again by that session.
    if (snapshot.state !== previous && (snapshot.state === 'connected' || snapshot.state === 'fallback')) {
      ui.error.hidden = true;
    }
    previous = snapshot.state;
  };
  client.subscribe(onSnapshot);
  onSnapshot(client.getSnapshot());
  client.onError(showError);
  client.onReset((reason) => showToast(`The server could not resume (${reason.replace('_', ' ')}); continuing from now`));
  client.onChangedWhileAway(showAwayReport);
  ui.loadState.addEventListener('click', () => void loadCurrentState(credentials));
  ui.retry.addEventListener('click', () => {
    ui.error.hidden = true;
    client.reconnect();
  });
  // For the browser test and for poking at it from the console.
  window.pushlog = client;
}

function askForToken() {
  ui.gate.hidden = false;
  ui.dashboard.hidden = true;
  ui.statusLabel.textContent = 'Not connected';
  ui.status.dataset.color = 'grey';
  const tokenInput = field(ui.tokenForm, 'token');
  const topicsInput = field(ui.tokenForm, 'topics');
  topicsInput.value = session.get(KEYS.topics) ?? '*';
  tokenInput.focus();
  ui.tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) return;
    session.set(KEYS.token, token);
    session.set(KEYS.topics, topicsInput.value.trim() || '*');
    void start({ token, topics: parseTopics(topicsInput.value) });
  });
}

ui.changeToken.addEventListener('click', () => {
  session.set(KEYS.token, null);
  // A fresh page: the old client (and the connection it may hold) goes with it.
  location.reload();
});

// ---------------------------------------------------------------- history

/** How many of the newest events the page shows when it opens. */
const RECENT = 100;
/** Events per request when filling a gap. */
const FILL_PAGE = 500;

/**
 * `GET /events/missed` with the reader token: `{kind: 'page', body}`, or
 * `{kind: 'gone', body}` for a 410 (whose body has `head` and, when
 * retention is the cause, `oldest_id`). Throws on anything else.
 */
async function missed({ token, topics }, since, limit) {
  const url = new URL('events/missed', serverUrl);
  url.search = new URLSearchParams({ since: String(since), topics: topics.join(','), limit: String(limit) }).toString();
  const response = await fetch(url, {
    headers: { Accept: 'application/json', Authorization: `Bearer ${token}` },
    cache: 'no-store',
  });
  const body = await response.json().catch(() => null);
  if (response.status === 200 && Array.isArray(body?.events) && isId(body.next_since) && isId(body.head)) {
    return { kind: 'page', body: { ...body, events: body.events.filter(isEvent) } };
  }
  if (response.status === 410 && isId(body?.head)) return { kind: 'gone', body };
  throw new Error(`GET /events/missed answered ${response.status}${body?.error ? ` (${body.error})` : ''}`);
}

const isId = (value) => Number.isSafeInteger(value) && value >= 0;
const isEvent = (event) =>
  isId(event?.id) && event.id > 0 && typeof event.topic === 'string' && typeof event.type === 'string';

/**
 * The newest id in the log. `GET /readyz` says it without reading the log;
 * when the server is not ready (draining, or a disk that refuses writes,
 * while reads still work) a one-event page says it too, as every page and
 * every 410 does. (Only the fallback: with topics that match little, even
 * one event can take a long scan from the start of a large log.)
 */
async function newestId(credentials) {
  try {
    const response = await fetch(new URL('readyz', serverUrl), { cache: 'no-store' });
    const body = response.ok ? await response.json() : null;
    if (isId(body?.head)) return body.head;
  } catch {
    // Asked the other way below.
  }
  return (await missed(credentials, 0, 1)).body.head;
}

/**
 * The newest events, and the cursor the live stream resumes from.
 *
 * The log reads forward from a cursor, so first the newest id, then the
 * events after `head - RECENT`: the last RECENT ids, fewer events when the
 * topics or an audience leave some out. If retention deleted part of that
 * meanwhile, the 410 names the oldest id left and the read starts just
 * before it. The page's `next_since` covers every event it holds and none
 * it does not (a full page stops at its last event), so the stream resumed
 * from it brings each later event once: no duplicate, no gap, even when
 * events are published while the page loads.
 */
async function recentEvents(credentials) {
  let since = Math.max(0, (await newestId(credentials)) - RECENT);
  for (let attempt = 0; attempt < 3; attempt++) {
    const answer = await missed(credentials, since, RECENT);
    if (answer.kind === 'page') return { events: answer.body.events, cursor: answer.body.next_since };
    const { head, oldest_id: oldest } = answer.body;
    since = Math.max(0, head - RECENT, isId(oldest) ? oldest - 1 : 0);
  }
  throw new Error('retention kept deleting the events being read');
}

/**
 * Older events, put in their place by id: the first read, or a filled gap.
 * Any already shown (or held while paused) are left as they are.
 */
function showHistory(list) {
  const known = new Set([...events, ...pending].map((event) => event.id));
  const added = list.filter((event) => !known.has(event.id));
  if (added.length === 0) return;
  for (const event of added) count(event);
  noteEntities(added);
  events = [...events, ...added].sort((a, b) => a.id - b.id).slice(-MAX_EVENTS);
  rerender();
}

/**
 * A tab that joins another tab's connection (one connection serves all
 * tabs) takes that tab's cursor, which can be past `since`: what was
 * committed between this page's read and its joining was relayed before it
 * listened. So a joining tab reads `(since, cursor]` once, at the cursor's
 * first move, and puts in place what it lacks. A tab that holds the
 * connection itself resumed from `since` and needs nothing.
 */
function fillWhenJoining(client, credentials, since) {
  const stop = client.subscribe((snapshot) => {
    const at = snapshot.lastEventId;
    if (at === null || at <= since) return;
    stop();
    if (snapshot.isLeader) return;
    fill(credentials, since, at).catch((error) =>
      console.warn('pushlog dashboard: could not read the events before joining', error),
    );
  });
}

/** Events in `(since, until]`, at most MAX_EVENTS, shown in their place. */
async function fill(credentials, since, until) {
  const found = [];
  let cursor = since;
  while (cursor < until && found.length < MAX_EVENTS) {
    const answer = await missed(credentials, cursor, FILL_PAGE);
    // Retention took them: there is nothing left to show.
    if (answer.kind !== 'page') break;
    found.push(...answer.body.events.filter((event) => event.id <= until));
    if (!answer.body.has_more || answer.body.next_since <= cursor) break;
    cursor = answer.body.next_since;
  }
  showHistory(found);
}

// ---------------------------------------------------------------- stream

/** Kept events, oldest first. */
let events = [];
/** Arrived while paused, oldest first. */
let pending = [];
let paused = false;
let received = 0;
const topicCounts = new Map();
const types = new Set();
const rows = new WeakMap();

/** Counts an event, live or read from the log, in the totals. */
function count(event) {
  received += 1;
  ui.total.textContent = `${received} received`;
  topicCounts.set(event.topic, (topicCounts.get(event.topic) ?? 0) + 1);
  noteType(event.type);
}

function receive(event) {
  count(event);
  renderCounters();
  if (event.entity) {
    showHint(event.entity);
    noteEntities([event]);
  }
  if (paused) {
    pending.push(event);
    renderPending();
    return;
  }
  keep(event);
  if (matches(event)) {
    ui.events.prepend(row(event, true));
    trimRows();
  }
  renderEmpty();
}

function keep(event) {
  events.push(event);
  if (events.length > MAX_EVENTS) events = events.slice(-MAX_EVENTS);
}

function matches(event) {
  const topic = ui.filterTopic.value.trim();
  const type = ui.filterType.value;
  if (type && event.type !== type) return false;
  if (!topic) return true;
  // A pattern as subscriptions use them, else a plain substring.
  if (topic.endsWith('*')) return topicMatches(topic, event.topic);
  return event.topic.toLowerCase().includes(topic.toLowerCase());
}

function rerender() {
  const shown = [];
  for (let i = events.length - 1; i >= 0 && shown.length < MAX_EVENTS; i--) {
    if (matches(events[i])) shown.push(row(events[i], false));
  }
  ui.events.replaceChildren(...shown);
  renderEmpty();
  renderCounters();
}

function trimRows() {
  while (ui.events.childElementCount > MAX_EVENTS) ui.events.lastElementChild.remove();
}

function renderEmpty() {
  const none = ui.events.childElementCount === 0;
  ui.empty.hidden = !none;
  if (none) {
    ui.empty.textContent =
      events.length > 0
        ? 'No events match these filters.'
        : 'Waiting for events… publish one with the form, or POST /events.';
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
  hour12: false,
});

function row(event, fresh) {
  const existing = rows.get(event);
  if (existing && !fresh) return existing;
  const li = ui.rowTemplate.content.firstElementChild.cloneNode(true);
  li.dataset.id = String(event.id);
  li.dataset.topic = event.topic;
  li.dataset.type = event.type;
  if (fresh) li.classList.add('fresh');
  li.querySelector('.event-id').textContent = `#${event.id}`;
  const time = li.querySelector('.event-time');
  const at = new Date(event.timestamp);
  if (!Number.isNaN(at.getTime())) {
    time.dateTime = event.timestamp;
    time.textContent = timeFormat.format(at);
    time.title = event.timestamp;
  }
  const topic = li.querySelector('.topic');
  topic.textContent = event.topic;
  topic.style.setProperty('--hue', String(hue(event.topic)));
  topic.addEventListener('click', () => setTopicFilter(event.topic));
  li.querySelector('.event-type').textContent = event.type;
  if (event.entity) {
    const tag = li.querySelector('.entity-tag');
    tag.hidden = false;
    tag.textContent = `${event.entity.kind} ${event.entity.id} · ${event.entity.op}`;
    tag.dataset.op = event.entity.op;
  }
  if (event.payload !== undefined) {
    const payload = li.querySelector('.payload');
    const text = JSON.stringify(event.payload);
    payload.hidden = false;
    payload.textContent = text.length > 400 ? `${text.slice(0, 400)}…` : text;
    payload.title = JSON.stringify(event.payload, null, 2).slice(0, 4000);
  }
  rows.set(event, li);
  return li;
}

/** A stable colour per topic, so the eye can follow one in the stream. */
function hue(topic) {
  let h = 0;
  for (const ch of topic) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

function setTopicFilter(topic) {
  ui.filterTopic.value = ui.filterTopic.value === topic ? '' : topic;
  rerender();
}

function noteType(type) {
  if (types.has(type)) return;
  types.add(type);
  const options = [...types].sort().map((t) => new Option(t, t));
  const current = ui.filterType.value;
  ui.filterType.replaceChildren(new Option('All types', ''), ...options);
  ui.filterType.value = current;
}

function renderCounters() {
  const sorted = [...topicCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const active = ui.filterTopic.value.trim();
  ui.counters.replaceChildren(
    ...sorted.map(([topic, count]) => {
      const li = document.createElement('li');
      li.dataset.testid = 'topic-counter';
      li.dataset.topic = topic;
      li.dataset.count = String(count);
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'counter';
      button.setAttribute('aria-pressed', String(active === topic));
      button.style.setProperty('--hue', String(hue(topic)));
      const name = document.createElement('span');
      name.className = 'counter-name';
      name.textContent = topic;
      const value = document.createElement('span');
      value.className = 'counter-value';
      value.dataset.testid = 'topic-count';
      value.textContent = count.toLocaleString();
      button.append(name, value);
      button.addEventListener('click', () => setTopicFilter(topic));
      li.append(button);
      return li;
    }),
  );
  ui.noTopics.hidden = sorted.length > 0;
  ui.seenTopics.replaceChildren(...sorted.map(([topic]) => new Option(topic)));
}

function renderPending() {
  ui.pending.hidden = !paused || pending.length === 0;
  ui.pending.textContent = `${pending.length} waiting`;
}

ui.pause.addEventListener('click', () => {
  paused = !paused;
  ui.pause.setAttribute('aria-pressed', String(paused));
  ui.pause.textContent = paused ? 'Resume' : 'Pause';
  ui.pause.classList.toggle('primary', paused);
  if (!paused) {
    const arrived = pending;
    pending = [];
    for (const event of arrived) keep(event);
    const fresh = arrived.filter(matches).map((event) => row(event, true));
    ui.events.prepend(...fresh.reverse());
    trimRows();
    renderEmpty();
  }
  renderPending();
});

ui.clear.addEventListener('click', () => {
  events = [];
  pending = [];
  ui.events.replaceChildren();
  renderPending();
  renderEmpty();
});

ui.filterTopic.addEventListener('input', rerender);
ui.filterType.addEventListener('change', rerender);

// ------------------------------------------------------------- entities

/**
 * The latest event of each entity, by topic, kind and id: from the events
 * shown, the reports of what changed while away, and the current state
 * loaded on request. Whatever order these come in, keeping each entity's
 * highest id gives the same table.
 */
const entityState = new Map();
/** Keys of the entities the last "changed while you were away" report named. */
let changedWhileAway = new Set();
let stateLoaded = false;
/** Reports shown so far, so the reconnect toast can tell one came. */
let awayReports = 0;

const entityKey = (event) => JSON.stringify([event.topic, event.entity.kind, event.entity.id]);

function noteEntities(list) {
  let changed = false;
  for (const event of list) {
    if (!event.entity) continue;
    const key = entityKey(event);
    if ((entityState.get(key)?.id ?? 0) >= event.id) continue;
    entityState.set(key, event);
    changed = true;
  }
  if (changed) renderEntities();
}

function renderEntities() {
  const newest = [...entityState].sort((a, b) => b[1].id - a[1].id).slice(0, MAX_ENTITY_ROWS);
  ui.entities.replaceChildren(
    ...newest.map(([key, event]) => {
      const li = document.createElement('li');
      li.className = 'entity-row';
      li.dataset.testid = 'entity-row';
      li.dataset.entity = `${event.entity.kind} ${event.entity.id}`;
      li.dataset.op = event.entity.op;
      li.dataset.id = String(event.id);
      if (changedWhileAway.has(key)) li.dataset.changedWhileAway = '';
      li.title = `topic ${event.topic}`;
      const name = document.createElement('span');
      name.className = 'entity-name';
      name.textContent = `${event.entity.kind} ${event.entity.id}`;
      const last = document.createElement('span');
      last.className = 'entity-last';
      last.textContent = `${event.entity.op} · #${event.id}`;
      li.append(name, last);
      return li;
    }),
  );
  const n = entityState.size;
  const what = `${n.toLocaleString()} entit${n === 1 ? 'y' : 'ies'}`;
  const source = stateLoaded ? 'current state, kept up to date live' : 'seen on this page';
  const shown = n > MAX_ENTITY_ROWS ? ` (the ${MAX_ENTITY_ROWS} changed last shown)` : '';
  ui.entitiesSummary.textContent = `${what}: ${source}${shown}.`;
}

/**
 * The latest event of every entity on these topics (`/events/changes` from
 * 0, through the client), merged into the table. The page stays live while
 * it loads; what arrives meanwhile and the loaded state meet by id.
 */
async function loadCurrentState({ token, topics }) {
  ui.loadState.disabled = true;
  ui.loadState.textContent = 'Loading…';
  try {
    const state = await readChanges({ url: serverUrl, token, topics });
    stateLoaded = true;
    noteEntities(state.entities);
    renderEntities();
    ui.entitiesSummary.dataset.outcome = 'ok';
  } catch (error) {
    ui.entitiesSummary.textContent = `Could not load the current state: ${error.message}`;
    ui.entitiesSummary.dataset.outcome = 'error';
  } finally {
    ui.loadState.disabled = false;
    ui.loadState.textContent = stateLoaded ? 'Reload' : 'Load current state';
  }
}

/**
 * "N entities changed while you were away": the cursor had expired, and the
 * server said which entities changed instead of replaying every event.
 * Stays until dismissed, since it lists what a front end would refetch;
 * says so when notifications from that time are gone for good.
 */
function showAwayReport(report) {
  awayReports += 1;
  const n = report.count;
  const title = `${n.toLocaleString()} entit${n === 1 ? 'y' : 'ies'} changed while you were away`;
  ui.awayTitle.textContent = title;
  ui.awayReport.dataset.count = String(n);
  const named = report.entities.slice(-MAX_AWAY_SHOWN).reverse();
  const items = named.map((event) => {
    const li = document.createElement('li');
    li.className = 'entity-tag';
    li.dataset.testid = 'away-entity';
    li.dataset.op = event.entity.op;
    li.textContent = `${event.entity.kind} ${event.entity.id} · ${event.entity.op}`;
    return li;
  });
  if (n > named.length) {
    const more = document.createElement('li');
    more.className = 'muted small';
    more.textContent = `and ${(n - named.length).toLocaleString()} more`;
    items.push(more);
  }
  ui.awayList.replaceChildren(...items);
  ui.awayWarning.hidden = report.logComplete;
  ui.awayReport.hidden = false;
  changedWhileAway = new Set(report.entities.map(entityKey));
  noteEntities(report.entities);
  renderEntities();
  showToast(title);
}

ui.awayDismiss.addEventListener('click', () => {
  ui.awayReport.hidden = true;
  changedWhileAway = new Set();
  renderEntities();
});

// ----------------------------------------------------------- hints, toast

/**
 * "fault 42 updated — refetch": what an app with cached queries would do
 * on this event. Fades out by itself; a newer hint for the same entity
 * replaces the older one.
 */
function showHint(entity) {
  const key = `${entity.kind}\u0000${entity.id}`;
  for (const old of ui.hints.querySelectorAll('li')) {
    if (old.dataset.key === key) old.remove();
  }
  const li = document.createElement('li');
  li.className = 'hint';
  li.dataset.testid = 'entity-hint';
  li.dataset.key = key;
  li.dataset.op = entity.op;
  li.style.setProperty('--hint-ms', `${HINT_MS}ms`);
  const what = document.createElement('strong');
  what.textContent = `${entity.kind} ${entity.id}`;
  li.append(what, ` ${entity.op} — refetch`);
  ui.hints.prepend(li);
  while (ui.hints.childElementCount > MAX_HINTS) ui.hints.lastElementChild.remove();
  setTimeout(() => li.remove(), HINT_MS);
}

let toastTimer;
function showToast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  ui.toast.classList.remove('show');
  // Restart the entrance animation.
  void ui.toast.offsetWidth;
  ui.toast.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
    ui.toast.classList.remove('show');
  }, TOAST_MS);
}

// -------------------------------------------------------------- publish

ui.publishForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = ui.publishForm;
  const fail = (message) => {
    ui.publishResult.textContent = message;
    ui.publishResult.dataset.outcome = 'error';
  };
  const value = (name) => field(form, name).value.trim();
  const token = value('token');
  if (!token) return fail('Enter a publisher token (a token with the publisher role).');
  const body = { topic: value('topic'), type: value('type') };
  const kind = value('entity-kind');
  const id = value('entity-id');
  if (kind || id) {
    if (!kind || !id) return fail('An entity needs both a kind and an id.');
    body.entity = { kind, id, op: value('entity-op') };
  }
  const payloadText = value('payload');
  if (payloadText) {
    try {
      body.payload = JSON.parse(payloadText);
    } catch (error) {
      return fail(`The payload is not valid JSON: ${error.message}`);
    }
  }
  session.set(KEYS.publisher, token);

  const submit = form.querySelector('[type="submit"]');
  submit.disabled = true;
  ui.publishResult.textContent = 'Publishing…';
  ui.publishResult.dataset.outcome = 'busy';
  try {
    const response = await fetch(new URL('events', serverUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (response.ok && answer?.events?.[0]) {
      const published = answer.events[0];
      ui.publishResult.textContent =
        response.status === 201 ? `Published #${published.id}` : `Already published as #${published.id}`;
      ui.publishResult.dataset.outcome = 'ok';
    } else {
      const message = typeof answer?.message === 'string' ? answer.message : response.statusText;
      const code = typeof answer?.error === 'string' ? ` (${answer.error})` : '';
      fail(`${response.status}: ${message}${code}`);
    }
  } catch (error) {
    fail(`Could not reach the server: ${error.message}`);
  } finally {
    submit.disabled = false;
  }
});

// ----------------------------------------------------------------- start

const credentials = takeCredentials();
field(ui.publishForm, 'token').value = session.get(KEYS.publisher) ?? '';
if (credentials.token) void start(credentials);
else askForToken();
renderEmpty();
