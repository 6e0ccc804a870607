// The real pushlog binary as a child process, and what tests need around it:
// tokens, publishing, metrics, and waiting for things without sleeping.
//
// Node built-ins only, so the dashboard's browser test (dashboard/test/) can
// import this file too without installing anything from clients/js.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';

/**
 * Polls `predicate` every 20 ms until it returns something truthy, and
 * returns that; throws after `timeoutMs` naming `what`.
 */
export async function waitFor(predicate, timeoutMs = 5_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((done) => setTimeout(done, 20));
  }
}

/** A port nobody listens on right now. */
export async function freePort() {
  const server = createServer();
  await new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

const base64url = (value) => Buffer.from(value).toString('base64url');

/** An HS256 JWT signed with `secret`, as the server expects. */
export function mintToken(secret, { sub = 'tester', roles = [], topics, ttlSecs = 3600 } = {}) {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttlSecs };
  if (roles.length > 0) claims.roles = roles;
  if (topics !== undefined) claims.topics = topics;
  const body = base64url(JSON.stringify(claims));
  const signature = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
  return `${header}.${body}.${signature}`;
}

/**
 * The binary under test: `PUSHLOG_BIN`, else the debug build, resolved from
 * `fromDir` (both clients/js and dashboard/test sit two levels below the
 * repository root).
 */
export function binaryPath(fromDir = process.cwd()) {
  const path = resolve(fromDir, process.env.PUSHLOG_BIN ?? '../../target/debug/pushlog');
  if (!existsSync(path)) {
    throw new Error(`pushlog binary not found at ${path}: run \`cargo build\` first, or set PUSHLOG_BIN`);
  }
  return path;
}

/**
 * One pushlog deployment: a database file, a port and a secret that stay the
 * same across `start()`/`kill()` cycles, like a server restarted in place.
 */
export class PushlogServer {
  constructor({ bin = binaryPath(), port, dir, secret, env = {} }) {
    this.bin = bin;
    this.port = port;
    this.dir = dir;
    this.secret = secret;
    this.extraEnv = env;
    this.url = `http://127.0.0.1:${port}`;
    this.logPath = join(dir, 'server.log');
    this.child = undefined;
    this.starts = 0;
  }

  /** A new deployment on a free port with an empty log in a fresh temp dir. */
  static async create(options = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'pushlog-it-'));
    const port = await freePort();
    const secret = randomBytes(32).toString('hex');
    return new PushlogServer({ ...options, port, dir, secret });
  }

  token(claims) {
    return mintToken(this.secret, claims);
  }

  /** Starts the binary and resolves once `GET /readyz` answers 200. */
  async start({ readyTimeoutMs = 15_000 } = {}) {
    if (this.child) throw new Error('pushlog is already running');
    this.starts += 1;
    const log = openSync(this.logPath, 'a');
    const child = spawn(this.bin, [], {
      env: {
        ...process.env,
        RUST_LOG: process.env.RUST_LOG ?? 'info',
        ...this.extraEnv,
        PUSHLOG_ADDR: `127.0.0.1:${this.port}`,
        PUSHLOG_DATABASE_URL: `sqlite://${join(this.dir, 'pushlog.db')}`,
        PUSHLOG_JWT_SECRET: this.secret,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.child = child;
    const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
    this.exited = exited;
    let exit;
    exited.then((value) => (exit = value));
    const started = Date.now();
    await waitFor(
      async () => {
        if (exit) throw new Error(`pushlog exited during startup (${JSON.stringify(exit)}):\n${this.logTail()}`);
        const response = await fetch(`${this.url}/readyz`).catch(() => undefined);
        return response?.status === 200;
      },
      readyTimeoutMs,
      `pushlog to answer GET /readyz on port ${this.port}`,
    ).catch((error) => {
      if (exit) throw new Error(`pushlog exited during startup (${JSON.stringify(exit)}):\n${this.logTail()}`);
      throw error;
    });
    this.readyAfterMs = Date.now() - started;
  }

  /** `kill -9`: no shutdown, no flushing, connections cut as in a crash. */
  async kill() {
    const { child } = this;
    if (!child) return;
    this.child = undefined;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the server if running and removes its files. */
  async destroy({ keepFiles = false } = {}) {
    await this.kill();
    if (!keepFiles) rmSync(this.dir, { recursive: true, force: true });
  }

  logTail(lines = 40) {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  /**
   * `POST /events` with a publisher token; resolves to the response's
   * events ({id, topic, type, timestamp}) and throws on any non-2xx status.
   */
  async publish(events, token = this.token({ sub: 'publisher', roles: ['publisher'] })) {
    const response = await fetch(`${this.url}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(events),
    });
    const body = await response.json();
    if (response.status !== 201 && response.status !== 200) {
      throw new Error(`POST /events answered ${response.status}: ${JSON.stringify(body)}`);
    }
    return body.events;
  }

  /** `GET path` (with its query) as a reader: `{status, body}`. */
  async read(path, token = this.token({ sub: 'reader' })) {
    const response = await fetch(`${this.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json().catch(() => null) };
  }

  /** Whether the log has pruned past `since`: `/events/missed` answers 410 `cursor_expired`. */
  async prunedPast(since) {
    const { status, body } = await this.read(`/events/missed?since=${since}&limit=1`);
    return status === 410 && body?.error === 'cursor_expired';
  }

  /**
   * The samples of `GET /metrics`, keyed as exposed without the `pushlog_`
   * prefix, labels included: `connections{transport="ws"}`.
   */
  async metrics() {
    const response = await fetch(`${this.url}/metrics`);
    const text = await response.text();
    const values = {};
    for (const [, key, value] of text.matchAll(/^pushlog_(\w+(?:\{[^}]*\})?) (-?[0-9.e+]+)$/gm)) {
      values[key] = Number(value);
    }
    return values;
  }

  /** Open streams of both kinds: what a browser costs the server. */
  async connections() {
    const m = await this.metrics();
    return (m['connections{transport="ws"}'] ?? 0) + (m['connections{transport="sse"}'] ?? 0);
  }
}

/** Events to publish: `count` of them on `topic`, each numbered in its payload. */
export function batch(topic, count, type = 'message:new', from = 0) {
  return Array.from({ length: count }, (_, i) => ({ topic, type, payload: { n: from + i } }));
}
