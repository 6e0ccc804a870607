// WebSocket fan-out: VUS subscribers hold one /ws connection each for the
// whole run while a publisher sends RATE events/s on topic TOPIC (default
// `fanout`) with its send time in the payload. Every subscriber:
//
//   connects with ?token=, waits for `welcome`, sends
//   {"type":"subscribe","topics":["fanout"],"request_id":"r1"},
//   and records each `event`:
//     - ids strictly increasing (else ws_out_of_order / ws_duplicates)
//     - ids consecutive from the first event it receives (else ws_gaps; the
//       first id may be anything, as the subscription starts "from now");
//       needs this script to be the only publisher on the server, see
//       STRICT_IDS
//     - publish_to_receive_ms = receive time - payload.sent_ms
//   stays connected until the publisher has finished plus DRAIN, closes, and
//   then (RECONCILE=1) reads the topic back from /events/missed: every event
//   from its first one on that was accepted at least DRAIN before it closed
//   must have arrived (else ws_missed_events). This is the exact gap check;
//   it holds whatever else is published on the server.
//
// Timeline: subscribers connect at 0; the publisher runs from WARMUP for
// DURATION; subscribers close at WARMUP + DURATION + DRAIN.
//
//   PUSHLOG_JWT_SECRET=... k6 run ws-fanout.js
//   PUSHLOG_JWT_SECRET=... VUS=1000 RATE=50 DURATION=60s k6 run ws-fanout.js

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
  warnSome,
} from './lib/config.js';
import { publisherToken, readerToken } from './lib/auth.js';
import { WebSocket, checkPublished, logEvents, publish } from './lib/api.js';
import { IdSequence, countOutcome } from './lib/ids.js';

const VUS = envInt('VUS', 100, 1);
const RATE = envInt('RATE', 10, 1);
const DURATION = envDuration('DURATION', '30s');
const WARMUP = envDuration('WARMUP', '3s');
const DRAIN = envDuration('DRAIN', '3s');
const TOPIC = env('TOPIC', 'fanout');
const STRICT_IDS = envBool('STRICT_IDS', true);
const RECONCILE = envBool('RECONCILE', true);
const PUB_VUS = envInt('PUB_VUS', Math.max(2, Math.ceil(RATE / 20)), 1);
const P95_MS = envFloat('P95_MS', 250);
const P99_MS = envFloat('P99_MS', 500);
const CONNECT_P95_MS = envFloat('CONNECT_P95_MS', 2000);
// Self-test of this script: ignore every Nth event on the client side, as a
// server that lost it would; the run must then fail. 0 = off.
const SIMULATE_LOSS = envInt('SIMULATE_LOSS', 0);

// Subscribers close at this offset from the start of the test.
const CLOSE_AFTER_MS = WARMUP.ms + DURATION.ms + DRAIN.ms;
const TOKEN_TTL = Math.ceil(CLOSE_AFTER_MS / 1000) + 600;

const received = new Counter('ws_events_received');
const gaps = new Counter('ws_gaps');
const duplicates = new Counter('ws_duplicates');
const outOfOrder = new Counter('ws_out_of_order');
const missed = new Counter('ws_missed_events');
const unexpectedCloses = new Counter('ws_unexpected_closes');
const serverErrors = new Counter('ws_error_messages');
const resets = new Counter('ws_resets');
const published = new Counter('events_published');
const latency = new Trend('publish_to_receive_ms', true);
const welcomeTime = new Trend('ws_connect_to_welcome_ms', true);

export const options = Object.assign({}, COMMON_OPTIONS, {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      exec: 'subscriber',
      // Long enough for the hold, the close and the read-back.
      maxDuration: msText(CLOSE_AFTER_MS + 60000),
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
    ws_gaps: ['count==0'],
    ws_duplicates: ['count==0'],
    ws_out_of_order: ['count==0'],
    ws_missed_events: ['count==0'],
    ws_unexpected_closes: ['count==0'],
    ws_error_messages: ['count==0'],
    ws_resets: ['count==0'],
    ws_events_received: ['count>0'],
    publish_to_receive_ms: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    ws_connect_to_welcome_ms: [`p(95)<${CONNECT_P95_MS}`],
    checks: ['rate>0.999'],
    'http_req_failed{name:publish}': ['rate<0.001'],
    dropped_iterations: ['count==0'],
  },
});

// So that every counter shows in the summary (and its threshold is judged)
// even when it stays at zero.
function touchCounters() {
  for (const c of [received, gaps, duplicates, outOfOrder, missed, unexpectedCloses, serverErrors, resets]) {
    c.add(0);
  }
}

const pubToken = publisherToken('k6-fanout-publisher', TOKEN_TTL);

export function publisher() {
  const event = {
    topic: TOPIC,
    type: 'loadtest:fanout',
    payload: { sent_ms: Date.now(), seq: exec.scenario.iterationInTest },
  };
  const res = publish(pubToken, event);
  if (checkPublished(res, event).length === 1) published.add(1);
}

export async function subscriber() {
  touchCounters();
  const me = `k6-fanout-${exec.vu.idInTest}`;
  const token = readerToken(me, TOKEN_TTL);
  const closeAt = exec.scenario.startTime + CLOSE_AFTER_MS;
  const seq = new IdSequence({ consecutive: STRICT_IDS });
  const counters = { gaps, duplicates, outOfOrder };
  const state = { welcome: false, subscribed: false, firstId: null, events: 0, closedByUs: false };

  await new Promise((resolve) => {
    const openedAt = Date.now();
    const ws = new WebSocket(`${WS_URL}/ws?token=${encodeURIComponent(token)}`);
    const hold = setTimeout(() => {
      state.closedByUs = true;
      state.closedAt = Date.now();
      ws.close();
    }, Math.max(0, closeAt - Date.now()));

    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch (_) {
        serverErrors.add(1, { error: 'unparsable' });
        warnSome('unparsable', `${me}: not JSON: ${String(e.data).slice(0, 200)}`);
        return;
      }
      switch (msg.type) {
        case 'welcome':
          state.welcome = true;
          welcomeTime.add(Date.now() - openedAt);
          ws.send(JSON.stringify({ type: 'subscribe', topics: [TOPIC], request_id: 'r1' }));
          break;
        case 'subscribed':
          state.subscribed = msg.request_id === 'r1';
          break;
        case 'caught_up':
          break;
        case 'event': {
          const id = msg.event && msg.event.id;
          state.delivered = (state.delivered || 0) + 1;
          if (SIMULATE_LOSS > 0 && state.delivered % SIMULATE_LOSS === 0) break;
          const outcome = seq.observe(id);
          if (!countOutcome(outcome, counters)) {
            warnSome('order', `${me}: event ${id} after ${outcome.last}: ${outcome.kind}`);
          }
          if (state.firstId === null) state.firstId = id;
          state.events += 1;
          received.add(1);
          const sent = msg.event.payload && msg.event.payload.sent_ms;
          if (typeof sent === 'number') latency.add(Date.now() - sent);
          break;
        }
        case 'reset':
          resets.add(1);
          warnSome('reset', `${me}: reset ${e.data}`);
          break;
        case 'error':
          serverErrors.add(1, { error: String(msg.error) });
          warnSome('error', `${me}: error ${e.data}`);
          break;
        default:
          break; // pong and anything newer: not this test's business
      }
    };
    ws.onerror = (e) => {
      // After our own close, k6 may report the server's way of ending the
      // connection; before it, any end is a failure of the test.
      if (!state.closedByUs) {
        state.error = String(e.error);
        warnSome('ws-error', `${me}: ${e.error}`);
      }
    };
    ws.onclose = () => {
      clearTimeout(hold);
      if (!state.closedByUs) unexpectedCloses.add(1);
      resolve();
    };
  });

  check(state, {
    'ws: welcome received': (s) => s.welcome,
    'ws: subscribed (request_id r1)': (s) => s.subscribed,
    'ws: stayed connected until the end': (s) => s.closedByUs,
    'ws: received events': (s) => s.events > 0,
  });

  if (RECONCILE && state.firstId !== null) reconcile(token, seq, state, me);
}

/** Every event on the topic from the first one received on must have arrived. */
function reconcile(token, seq, state, me) {
  const deadline = state.closedAt - DRAIN.ms;
  let events;
  try {
    events = logEvents(token, TOPIC, state.firstId - 1).events;
  } catch (e) {
    serverErrors.add(1, { error: 'reconcile' });
    warnSome('reconcile', `${me}: ${e.message}`);
    return;
  }
  const lost = events.filter(
    (ev) => !seq.has(ev.id) && (ev.id <= seq.last || Date.parse(ev.timestamp) <= deadline),
  );
  missed.add(lost.length);
  if (lost.length > 0) {
    warnSome('lost', `${me}: ${lost.length} events in the log never arrived, e.g. ids ${lost.slice(0, 5).map((e) => e.id)}`);
  }
}
