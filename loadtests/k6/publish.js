// Publish throughput: VUS virtual users POST /events back to back for
// DURATION, each request one event (BATCH=1) or an array of BATCH events.
// Every answer is checked (201, one ack per event, ids valid and increasing,
// topic/type echoed) and the acknowledged events are counted, so the summary
// shows events/s as `events_acked ... N/s`.
//
//   PUSHLOG_JWT_SECRET=... k6 run publish.js
//   PUSHLOG_JWT_SECRET=... VUS=16 DURATION=30s BATCH=100 k6 run publish.js

import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

import { COMMON_OPTIONS, RUN_TAG, env, envDuration, envFloat, envInt } from './lib/config.js';
import { publisherToken } from './lib/auth.js';
import { checkPublished, publish } from './lib/api.js';

const VUS = envInt('VUS', 64, 1);
const DURATION = envDuration('DURATION', '30s');
const BATCH = envInt('BATCH', 1, 1); // 1..1000, the server's batch limit
const PAYLOAD_BYTES = envInt('PAYLOAD_BYTES', 64);
const TOPIC = env('TOPIC', 'loadtest.publish');
const P99_MS = envFloat('P99_MS', 500);
const P95_MS = envFloat('P95_MS', 250);

if (BATCH > 1000) throw new Error(`BATCH=${BATCH}: the server accepts at most 1000 events per request`);

const eventsAcked = new Counter('events_acked');
const eventsRejected = new Counter('events_rejected');

export const options = Object.assign({}, COMMON_OPTIONS, {
  scenarios: {
    publish: {
      executor: 'constant-vus',
      vus: VUS,
      duration: DURATION.text,
      gracefulStop: '10s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    'http_req_duration{name:publish}': [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    events_acked: ['count>0'],
    events_rejected: ['count==0'],
  },
});

const token = publisherToken();
const pad = 'x'.repeat(PAYLOAD_BYTES);

function makeEvent(i) {
  return {
    topic: TOPIC,
    type: 'loadtest:publish',
    entity: { kind: 'loadtest', id: `vu-${exec.vu.idInTest}`, op: 'updated' },
    payload: {
      run: RUN_TAG,
      vu: exec.vu.idInTest,
      iteration: exec.vu.iterationInScenario,
      i,
      sent_ms: Date.now(),
      pad,
    },
  };
}

export default function () {
  const events = [];
  for (let i = 0; i < BATCH; i++) events.push(makeEvent(i));
  const body = BATCH === 1 ? events[0] : events;
  const res = publish(token, body);
  const ids = checkPublished(res, events);
  if (res.status === 201 && ids.length === events.length) {
    eventsAcked.add(events.length);
  } else {
    eventsRejected.add(events.length);
  }
}
