// Shared configuration for the pushlog k6 scripts: where the server is, and
// typed readers for the environment variables every script uses.
//
// Every knob is an environment variable (`k6 run -e NAME=value` or a shell
// export). A value that does not parse stops the script at start-up with a
// message; nothing falls back silently.

import { setTimeout } from 'k6/timers';

/** Reads an environment variable, or `fallback` when unset or empty. */
export function env(name, fallback) {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

/** A whole number from the environment, at least `min`. */
export function envInt(name, fallback, min = 0) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(String(raw).trim())) {
    throw new Error(`${name}=${raw}: expected a whole number`);
  }
  const value = parseInt(raw, 10);
  if (value < min) throw new Error(`${name}=${raw}: must be at least ${min}`);
  return value;
}

/** A number (integer or decimal) from the environment. */
export function envFloat(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}=${raw}: expected a number`);
  return value;
}

/** `1`, `true`, `yes`, `on` are true; `0`, `false`, `no`, `off` are false. */
export function envBool(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  const value = String(raw).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new Error(`${name}=${raw}: expected true or false`);
}

/**
 * Parses a k6-style duration (`500ms`, `30s`, `2m`, `1m30s`, `1h`) into
 * milliseconds.
 */
export function parseDurationMs(text) {
  const raw = String(text).trim();
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  let match;
  while ((match = part.exec(raw)) !== null) {
    if (match.index !== consumed) break;
    total += parseFloat(match[1]) * units[match[2]];
    consumed = part.lastIndex;
  }
  if (consumed === 0 || consumed !== raw.length) {
    throw new Error(`${JSON.stringify(raw)}: expected a duration such as 500ms, 30s, 2m or 1m30s`);
  }
  return Math.round(total);
}

/** A duration from the environment: `{ text, ms }`, `text` as k6 wants it. */
export function envDuration(name, fallback) {
  const text = env(name, fallback);
  try {
    return { text: String(text), ms: parseDurationMs(text) };
  } catch (e) {
    throw new Error(`${name}: ${e.message}`);
  }
}

/** Formats milliseconds as a k6 duration string (`12500ms`). */
export function msText(ms) {
  return `${Math.max(0, Math.ceil(ms))}ms`;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/i;

function hostOf(url) {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(\[[^\]]*\]|[^/:?#]*)/i.exec(url);
  return match ? match[1] : '';
}

/**
 * The server under test, without a trailing slash. Load is only ever sent to
 * loopback unless `PUSHLOG_ALLOW_REMOTE=1` says a non-loopback target is
 * meant: a mistyped URL must not load-test someone else's machine.
 */
export const BASE_URL = String(env('PUSHLOG_URL', 'http://127.0.0.1:8080')).replace(/\/+$/, '');

if (!/^https?:\/\//i.test(BASE_URL)) {
  throw new Error(`PUSHLOG_URL=${BASE_URL}: expected http://host:port or https://host:port`);
}
if (!LOOPBACK.test(hostOf(BASE_URL)) && !envBool('PUSHLOG_ALLOW_REMOTE', false)) {
  throw new Error(
    `PUSHLOG_URL=${BASE_URL} is not a loopback address (127.0.0.0/8, localhost, [::1]); ` +
      'set PUSHLOG_ALLOW_REMOTE=1 if you really mean to load-test another host',
  );
}

/** The same server over WebSocket (`ws://` or `wss://`). */
export const WS_URL = BASE_URL.replace(/^http/i, 'ws');

/** A tag that is unique to this run, for topic names. */
export const RUN_TAG = env('RUN_TAG', String(Date.now()));

/** Options every script shares. */
// (k6's anonymous usage report is not a script option: run k6 with
// K6_NO_USAGE_REPORT=true or --no-usage-report, as README.md and smoke.sh do,
// so that a run talks to the server under test only.)
export const COMMON_OPTIONS = {
  // Percentiles the thresholds use, shown in the end-of-test summary.
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

/** A uniformly random integer in [min, max]. */
export function randomInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** A promise that resolves after `ms` milliseconds (async scripts). */
export function sleepMs(ms) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

const warned = {};

/**
 * `console.warn`, at most `max` times per VU for one `key`, so a failing run
 * shows what went wrong without flooding the output.
 */
export function warnSome(key, message, max = 3) {
  const n = (warned[key] = (warned[key] || 0) + 1);
  if (n <= max) console.warn(n === max ? `${message} (further "${key}" warnings from this VU suppressed)` : message);
}
