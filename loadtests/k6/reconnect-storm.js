// Reconnect storm: VUS clients repeatedly drop their /ws connection and
// resume with `since=<last id>` while a publisher keeps sending RATE
// events/s on topic TOPIC (default `storm`). This is guarantee 3 of
// PROTOCOL.md under churn: every resume must deliver exactly the events
// after its cursor, including those published while the client was away.
//
// Each client:
//   1. connects, takes `welcome.head` as its first cursor and subscribes
//      {"type":"subscribe","topics":[TOPIC],"since":<cursor>,"request_id":"rN"}
//   2. checks every event: above the cursor and never seen before
//      (resume_duplicates, resume_out_of_order), and consecutive
//      (resume_gaps; so the first event after a resume must be cursor + 1;
//      needs this script to be the only publisher, see STRICT_IDS)
//   3. waits for `caught_up` (time_to_caught_up_ms, from sending subscribe;
//      resume_caught_up_missing when it does not come within
//      CAUGHT_UP_TIMEOUT), stays HOLD_MIN..HOLD_MAX ms, closes, pauses
//      PAUSE_MIN..PAUSE_MAX ms and goes back to 1 with its last id. In
//      EARLY_DROP_PCT % of the connections it closes right at the first event
//      instead, in the middle of the replay.
//   4. after the publisher has stopped (+ DRAIN), resumes one last time until
//      `caught_up`, then compares everything it received with the log
//      (/events/missed): each event on the topic after its first cursor, up to
//      the last `caught_up.head`, must have arrived (resume_missed_events).
//      This is the exact gap check, whatever else is published.
//
//   PUSHLOG_JWT_SECRET=... k6 run reconnect-storm.js
//   PUSHLOG_JWT_SECRET=... VUS=200 RATE=100 DURATION=60s k6 run reconnect-storm.js

import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout, clearTimeout } from 'k6/timers';

import {
  COMMON_OPTIONS,
  WS_URL,
  env,
  envBool,
  envDuration,
  envFloat,
  envInt,
  msText,
  randomInt,
  sleepMs,
  warnSome,
} from './lib/config.js';
import { publisherToken, readerToken } from './lib/auth.js';
import { WebSocket, checkPublished, logEvents, publish } from './lib/api.js';
import { IdSequence, countOutcome } from './lib/ids.js';

const VUS = envInt('VUS', 20, 1);
const RATE = envInt('RATE', 20, 1);
const DURATION = envDuration('DURATION', '30s');
const WARMUP = envDuration('WARMUP', '1s');
const DRAIN = envDuration('DRAIN', '2s');
const TOPIC = env('TOPIC', 'storm');
const STRICT_IDS = envBool('STRICT_IDS', true);
const HOLD_MIN = envInt('HOLD_MIN_MS', 100);
const HOLD_MAX = Math.max(HOLD_MIN, envInt('HOLD_MAX_MS', 1500));
const PAUSE_MIN = envInt('PAUSE_MIN_MS', 50);
const PAUSE_MAX = Math.max(PAUSE_MIN, envInt('PAUSE_MAX_MS', 1000));
const EARLY_DROP_PCT = envFloat('EARLY_DROP_PCT', 20);
const CAUGHT_UP_TIMEOUT = envDuration('CAUGHT_UP_TIMEOUT', '10s');
const CAUGHT_UP_P95_MS = envFloat('CAUGHT_UP_P95_MS', 500);
const PUB_VUS = envInt('PUB_VUS', Math.max(2, Math.ceil(RATE / 20)), 1);
// Self-test of this script: ignore every Nth event on the client side, as a
// server that lost it would; the run must then fail. 0 = off.
const SIMULATE_LOSS = envInt('SIMULATE_LOSS', 0);

const CYCLE_UNTIL_MS = WARMUP.ms + DURATION.ms;
const FINAL_AT_MS = CYCLE_UNTIL_MS + DRAIN.ms;
const TOKEN_TTL = Math.ceil((FINAL_AT_MS + CAUGHT_UP_TIMEOUT.ms) / 1000) + 600;

const gaps = new Counter('resume_gaps');
const duplicates = new Counter('resume_duplicates');
const outOfOrder = new Counter('resume_out_of_order');
const missed = new Counter('resume_missed_events');
const caughtUpMissing = new Counter('resume_caught_up_missing');
const unexpectedCloses = new Counter('ws_unexpected_closes');
const serverErrors = new Counter('ws_error_messages');
const resets = new Counter('ws_resets');
const resumes = new Counter('resumes');
const received = new Counter('ws_events_received');
const published = new Counter('events_published');
const caughtUpTime = new Trend('time_to_caught_up_ms', true);

export const options = Object.assign({}, COMMON_OPTIONS, {
  scenarios: {
    storm: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      exec: 'storm',
      maxDuration: msText(FINAL_AT_MS + CAUGHT_UP_TIMEOUT.ms + 60000),
      gracefulStop: '10s',
    },
    publisher: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION.text,
      startTime: WARMUP.text,
      preAllocatedVUs: PUB_VUS,
      maxVUs: PUB_VUS * 4,
      exec: 'publisher',
      gracefulStop: msText(DRAIN.ms),
    },
  },
  thresholds: {
    resume_gaps: ['count==0'],
    resume_duplicates: ['count==0'],
    resume_out_of_order: ['count==0'],
    resume_missed_events: ['count==0'],
    resume_caught_up_missing: ['count==0'],
    ws_unexpected_closes: ['count==0'],
    ws_error_messages: ['count==0'],
    ws_resets: ['count==0'],
    resumes: ['count>0'],
    ws_events_received: ['count>0'],
    time_to_caught_up_ms: [`p(95)<${CAUGHT_UP_P95_MS}`],
    checks: ['rate>0.999'],
    'http_req_failed{name:publish}': ['rate<0.001'],
    dropped_iterations: ['count==0'],
  },
});

const pubToken = publisherToken('k6-storm-publisher', TOKEN_TTL);

export function publisher() {
  const event = { topic: TOPIC, type: 'loadtest:storm', payload: { sent_ms: Date.now() } };
  const res = publish(pubToken, event);
  if (checkPublished(res, event).length === 1) published.add(1);
}

/**
 * One connection: subscribe from the client's cursor, take events, close
 * after the hold (or at once for `final`). Resolves when the socket is
 * closed, with what happened on it.
 */
function connection(client, { holdMs, early, final }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${WS_URL}/ws?token=${encodeURIComponent(client.token)}`);
    const conn = { closedByUs: false, caughtUp: false, cursor: null, firstEvent: null, requestId: null };
    let holdTimer = null;
    const finish = () => {
      if (conn.closedByUs) return;
      conn.closedByUs = true;
      ws.close();
    };
    const deadline = setTimeout(() => {
      if (!conn.caughtUp) {
        caughtUpMissing.add(1);
        warnSome('caught-up', `${client.name}: no caught_up within ${CAUGHT_UP_TIMEOUT.text} (since=${conn.cursor})`);
      }
      finish();
    }, CAUGHT_UP_TIMEOUT.ms);

    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch (_) {
        serverErrors.add(1, { error: 'unparsable' });
        return;
      }
      switch (msg.type) {
        case 'welcome': {
          if (client.cursor === null) {
            // First connection: everything after the head we were told.
            client.cursor = msg.head;
            client.firstCursor = msg.head;
            client.seq.startAfter(msg.head);
          } else {
            resumes.add(1);
          }
          client.requests += 1;
          conn.requestId = `r${client.requests}`;
          conn.cursor = client.cursor;
          conn.subscribeAt = Date.now();
          ws.send(
            JSON.stringify({ type: 'subscribe', topics: [TOPIC], since: client.cursor, request_id: conn.requestId }),
          );
          break;
        }
        case 'caught_up': {
          if (msg.request_id !== conn.requestId || conn.caughtUp) break;
          conn.caughtUp = true;
          caughtUpTime.add(Date.now() - conn.subscribeAt);
          clearTimeout(deadline);
          client.head = Math.max(client.head, msg.head);
          check(msg, { 'resume: caught_up.head >= every id delivered': (m) => m.head >= (client.seq.last || 0) });
          if (final || early) finish();
          else holdTimer = setTimeout(finish, holdMs);
          break;
        }
        case 'event': {
          const id = msg.event && msg.event.id;
          client.seen += 1;
          if (SIMULATE_LOSS > 0 && client.seen % SIMULATE_LOSS === 0) break;
          received.add(1);
          const outcome = client.seq.observe(id);
          if (!countOutcome(outcome, client.counters)) {
            warnSome('order', `${client.name}: event ${id} after ${outcome.last} (since=${conn.cursor}): ${outcome.kind}`);
          }
          if (conn.firstEvent === null) {
            conn.firstEvent = id;
            if (STRICT_IDS) check(id, { 'resume: first event == cursor + 1': (v) => v === conn.cursor + 1 });
          }
          if (client.seq.last !== null && client.seq.last > client.cursor) client.cursor = client.seq.last;
          if (early && !conn.caughtUp) finish(); // drop in the middle of the replay
          break;
        }
        case 'subscribed':
          break;
        case 'reset':
          resets.add(1);
          warnSome('reset', `${client.name}: ${e.data}`);
          break;
        case 'error':
          serverErrors.add(1, { error: String(msg.error) });
          warnSome('error', `${client.name}: ${e.data}`);
          break;
        default:
          break;
      }
    };
    ws.onerror = (e) => {
      if (!conn.closedByUs) warnSome('ws-error', `${client.name}: ${e.error}`);
    };
    ws.onclose = () => {
      clearTimeout(deadline);
      if (holdTimer !== null) clearTimeout(holdTimer);
      if (!conn.closedByUs) unexpectedCloses.add(1);
      resolve(conn);
    };
  });
}

export async function storm() {
  for (const c of [gaps, duplicates, outOfOrder, missed, caughtUpMissing, unexpectedCloses, serverErrors, resets]) {
    c.add(0);
  }
  const name = `k6-storm-${exec.vu.idInTest}`;
  const client = {
    name,
    token: readerToken(name, TOKEN_TTL),
    seq: new IdSequence({ consecutive: STRICT_IDS }),
    counters: { gaps, duplicates, outOfOrder },
    cursor: null,
    firstCursor: null,
    head: 0,
    requests: 0,
    seen: 0,
  };
  const start = exec.scenario.startTime;

  while (Date.now() < start + CYCLE_UNTIL_MS) {
    await connection(client, {
      holdMs: randomInt(HOLD_MIN, HOLD_MAX),
      early: client.cursor !== null && Math.random() * 100 < EARLY_DROP_PCT,
      final: false,
    });
    await sleepMs(randomInt(PAUSE_MIN, PAUSE_MAX));
  }

  // The publisher has stopped: one last resume collects the rest.
  await sleepMs(start + FINAL_AT_MS - Date.now());
  const last = await connection(client, { holdMs: 0, early: false, final: true });
  check(last, { 'resume: final caught_up received': (c) => c.caughtUp });
  if (client.firstCursor === null || !last.caughtUp) return;

  let events;
  try {
    events = logEvents(client.token, TOPIC, client.firstCursor, client.head).events;
  } catch (e) {
    serverErrors.add(1, { error: 'reconcile' });
    warnSome('reconcile', `${name}: ${e.message}`);
    return;
  }
  const lost = events.filter((ev) => !client.seq.has(ev.id));
  missed.add(lost.length);
  if (lost.length > 0) {
    warnSome('lost', `${name}: ${lost.length} of ${events.length} events never arrived, e.g. ${lost.slice(0, 5).map((ev) => ev.id)}`);
  }
  check(events, { 'resume: log read back': (evs) => evs.length > 0 });
}
