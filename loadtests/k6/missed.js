// GET /events/missed under load.
//
// setup() publishes SEED events (default 20,000, in batches of SEED_BATCH =
// 1000) on a topic of its own (`loadtest.missed.<run>`), so the script knows
// exactly what every page must contain. Then two scenarios run side by side
// for DURATION:
//
//   random_pages  VUS users read `since=<random>&limit=LIMIT` (default 1000)
//   big_pages     BIG_VUS users read pages of BIG_LIMIT (default 10,000, the
//                 server's maximum) from random cursors
//
// Every page is checked: 200; ids strictly increasing; exactly the events the
// log holds after the cursor (which includes: a full page of `limit` when at
// least that many remain); `next_since` equal to the last id of a full page
// (and between the last id and `head` otherwise); `has_more` false on a
// partial page.
//
//   PUSHLOG_JWT_SECRET=... k6 run missed.js
//   PUSHLOG_JWT_SECRET=... VUS=4 BIG_VUS=1 DURATION=10s SEED=5000 k6 run missed.js

import { check } from 'k6';
import { Counter } from 'k6/metrics';

import { COMMON_OPTIONS, RUN_TAG, env, envDuration, envFloat, envInt, randomInt, warnSome } from './lib/config.js';
import { publisherToken, readerToken } from './lib/auth.js';
import { checkPublished, publish, readMissed } from './lib/api.js';
import { strictlyIncreasing, upperBound } from './lib/ids.js';

const VUS = envInt('VUS', 8, 0);
const BIG_VUS = envInt('BIG_VUS', 2, 0);
const DURATION = envDuration('DURATION', '30s');
const LIMIT = envInt('LIMIT', 1000, 1);
const BIG_LIMIT = envInt('BIG_LIMIT', 10000, 1);
const SEED = envInt('SEED', 20000, 1);
const SEED_BATCH = envInt('SEED_BATCH', 1000, 1);
const TOPIC = env('TOPIC', `loadtest.missed.${RUN_TAG}`);
const P95_MS = envFloat('P95_MS', 100);
const P99_MS = envFloat('P99_MS', 250);
const BIG_P95_MS = envFloat('BIG_P95_MS', 600);
const BIG_P99_MS = envFloat('BIG_P99_MS', 1000);

if (LIMIT > 10000 || BIG_LIMIT > 10000) throw new Error('LIMIT and BIG_LIMIT: the server allows at most 10000');
if (SEED_BATCH > 1000) throw new Error('SEED_BATCH: the server accepts at most 1000 events per request');
if (VUS + BIG_VUS === 0) throw new Error('VUS and BIG_VUS are both 0: nothing to run');

const eventsRead = new Counter('events_read');
const pageMismatches = new Counter('page_mismatches');

const scenarios = {};
if (VUS > 0) {
  scenarios.random_pages = {
    executor: 'constant-vus',
    vus: VUS,
    duration: DURATION.text,
    exec: 'randomPage',
    gracefulStop: '10s',
  };
}
if (BIG_VUS > 0) {
  scenarios.big_pages = {
    executor: 'constant-vus',
    vus: BIG_VUS,
    duration: DURATION.text,
    exec: 'bigPage',
    gracefulStop: '30s',
  };
}

const thresholds = {
  http_req_failed: ['rate<0.001'],
  checks: ['rate>0.999'],
  page_mismatches: ['count==0'],
  events_read: ['count>0'],
};
if (VUS > 0) thresholds['http_req_duration{name:missed_page}'] = [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`];
if (BIG_VUS > 0) {
  thresholds['http_req_duration{name:missed_page_big}'] = [`p(95)<${BIG_P95_MS}`, `p(99)<${BIG_P99_MS}`];
}

export const options = Object.assign({}, COMMON_OPTIONS, {
  setupTimeout: env('SETUP_TIMEOUT', '300s'),
  scenarios,
  thresholds,
});

const reader = readerToken('k6-missed-reader');

export function setup() {
  const token = publisherToken('k6-missed-seeder');
  const ids = [];
  for (let done = 0; done < SEED; done += SEED_BATCH) {
    const batch = [];
    for (let i = done; i < Math.min(SEED, done + SEED_BATCH); i++) {
      batch.push({ topic: TOPIC, type: 'loadtest:missed', payload: { n: i } });
    }
    const res = publish(token, batch, { name: 'seed' });
    const acked = checkPublished(res, batch);
    if (res.status !== 201 || acked.length !== batch.length) {
      throw new Error(`seeding stopped: POST /events answered ${res.status}: ${String(res.body).slice(0, 300)}`);
    }
    ids.push(...acked);
  }
  if (!strictlyIncreasing(ids)) throw new Error('seeding: the acknowledged ids are not increasing across batches');
  console.log(`seeded ${ids.length} events on ${TOPIC}: ids ${ids[0]}..${ids[ids.length - 1]}`);
  return { topic: TOPIC, ids };
}

/** Reads one page from a random cursor within the seeded range and checks it. */
function readAndCheck(data, limit, name) {
  const { ids, topic } = data;
  // Any cursor from "before the first seeded event" to "the last one".
  const since = randomInt(ids[0] - 1, ids[ids.length - 1]);
  const start = upperBound(ids, since);
  const remaining = ids.length - start;
  const expected = ids.slice(start, start + limit);

  const res = readMissed(reader, { since, topics: topic, limit }, { name });
  let body = null;
  try {
    body = res.json();
  } catch (_) {
    body = null;
  }
  const events = body && Array.isArray(body.events) ? body.events : [];
  const got = events.map((e) => e.id);
  const last = got.length > 0 ? got[got.length - 1] : since;
  const full = got.length === limit;

  const same = got.length === expected.length && got.every((id, i) => id === expected[i]);
  const ok = check(
    res,
    {
      'missed: status 200': (r) => r.status === 200,
      'missed: ids strictly increasing': () => strictlyIncreasing(got) && (got.length === 0 || got[0] > since),
      'missed: count == limit when enough events remain': () =>
        got.length === Math.min(limit, remaining),
      'missed: page is exactly the log after the cursor': () => same,
      'missed: events on the requested topic': () => events.every((e) => e.topic === topic),
      'missed: next_since == last id (full page) / >= last id (partial page)': () =>
        body !== null &&
        (full
          ? body.next_since === last
          : body.next_since >= last && body.next_since <= body.head),
      'missed: has_more false on a partial page': () => body !== null && (full || body.has_more === false),
      'missed: head >= every id': () => body !== null && body.head >= last,
    },
    { page: name },
  );
  if (!same) {
    pageMismatches.add(1);
    warnSome(
      'mismatch',
      `since=${since} limit=${limit}: ${res.status}, got ${got.length} ids ` +
        `(${got[0]}..${got[got.length - 1]}), expected ${expected.length} (${expected[0]}..${expected[expected.length - 1]})`,
    );
  } else if (!ok) {
    warnSome('check', `since=${since} limit=${limit}: ${res.status} ${String(res.body).slice(0, 200)}`);
  }
  eventsRead.add(got.length);
}

export function randomPage(data) {
  readAndCheck(data, LIMIT, 'missed_page');
}

export function bigPage(data) {
  readAndCheck(data, BIG_LIMIT, 'missed_page_big');
}
