// The pushlog HTTP API as the scripts use it: publish, read a replay page,
// list what the log holds on a topic (to check a subscriber against), and
// the WebSocket class of whichever k6 module this k6 has.

import http from 'k6/http';
import { check } from 'k6';

import { BASE_URL, warnSome } from './config.js';
import { authHeaders } from './auth.js';
import { strictlyIncreasing } from './ids.js';

// k6 v1.1 has `k6/experimental/websockets`; later releases name the same
// module `k6/websockets` (and drop the experimental one). Take whichever
// exists, so the scripts run on both.
let websockets;
try {
  websockets = require('k6/websockets');
} catch (_) {
  websockets = require('k6/experimental/websockets');
}
export const WebSocket = websockets.WebSocket;

/** The id assigned to an event must be a positive integer JS holds exactly. */
function validId(id) {
  return Number.isSafeInteger(id) && id > 0;
}

/**
 * `POST /events` with one event (object) or a batch (array). `tags` are added
 * to the request's metrics (`name` defaults to `publish`).
 */
export function publish(token, events, tags = {}) {
  return http.post(`${BASE_URL}/events`, JSON.stringify(events), {
    headers: authHeaders(token),
    tags: Object.assign({ name: 'publish' }, tags),
  });
}

/** The `events` array of a publish answer, or null when it has none. */
export function ackedEvents(res) {
  try {
    const body = res.json();
    return body && Array.isArray(body.events) ? body.events : null;
  } catch (_) {
    return null;
  }
}

/**
 * Checks a publish answer against what was sent: `201`, one acknowledgement
 * per event, in order, each with a positive id, the sent topic and type and a
 * timestamp; ids strictly increasing within a batch. Returns the acked ids
 * ([] when the answer is unusable).
 */
export function checkPublished(res, sent, tags) {
  const list = Array.isArray(sent) ? sent : [sent];
  const acked = ackedEvents(res);
  const ids = acked ? acked.map((e) => e && e.id) : [];
  const ok = check(
    res,
    {
      'publish: status 201': (r) => r.status === 201,
      'publish: one ack per event': () => acked !== null && acked.length === list.length,
      'publish: ids are positive integers': () => ids.length > 0 && ids.every(validId),
      'publish: ids strictly increasing': () => strictlyIncreasing(ids),
      'publish: topic, type and timestamp echoed': () =>
        acked !== null &&
        acked.length === list.length &&
        acked.every(
          (e, i) =>
            e.topic === list[i].topic &&
            e.type === list[i].type &&
            typeof e.timestamp === 'string' &&
            !Number.isNaN(Date.parse(e.timestamp)),
        ),
    },
    tags,
  );
  if (!ok && res.status !== 201) {
    warnSome('publish', `publish answered ${res.status}: ${String(res.body).slice(0, 300)}`);
  }
  return ok ? ids : ids.filter(validId);
}

/** `GET /events/missed`; `topics` a string or an array of patterns. */
export function readMissed(token, { since, topics, limit }, tags = {}) {
  const query = [`since=${encodeURIComponent(since)}`];
  if (topics !== undefined) {
    const list = Array.isArray(topics) ? topics.join(',') : topics;
    query.push(`topics=${encodeURIComponent(list)}`);
  }
  if (limit !== undefined) query.push(`limit=${limit}`);
  return http.get(`${BASE_URL}/events/missed?${query.join('&')}`, {
    headers: authHeaders(token),
    tags: Object.assign({ name: 'missed' }, tags),
  });
}

/**
 * Every event the log holds on `topic` with an id above `after` (and at most
 * `until`, when given), read page by page with the largest page. Returns
 * `{ events, head }`, or throws when the log answers anything but 200: the
 * caller is checking someone else's results against this, so it must be
 * complete.
 */
export function logEvents(token, topic, after, until) {
  const events = [];
  let since = after;
  let head = 0;
  for (let page = 0; page < 100000; page++) {
    const res = readMissed(token, { since, topics: topic, limit: 10000 }, { name: 'reconcile' });
    if (res.status !== 200) {
      throw new Error(`reading the log back: /events/missed answered ${res.status}: ${String(res.body).slice(0, 300)}`);
    }
    const body = res.json();
    head = body.head;
    for (const event of body.events) {
      if (until !== undefined && event.id > until) return { events, head };
      events.push(event);
    }
    if (!body.has_more || body.next_since <= since) break;
    if (until !== undefined && body.next_since >= until) break;
    since = body.next_since;
  }
  return { events, head };
}

/** The log's newest id (`head`), as `/events/missed` reports it. */
export function logHead(token) {
  const res = readMissed(token, { since: 0, limit: 1 }, { name: 'head' });
  try {
    const body = res.json();
    // 410 (retention has pruned the start of the log) carries `head` too.
    if ((res.status === 200 || res.status === 410) && Number.isSafeInteger(body.head)) return body.head;
  } catch (_) {
    // fall through
  }
  throw new Error(`could not read the log's head: ${res.status} ${String(res.body).slice(0, 300)}`);
}
