// Tokens for the load tests: HS256 JWTs minted from the server's shared
// secret (`PUSHLOG_JWT_SECRET`), or tokens handed in ready-made through
// `PUBLISHER_TOKEN` / `READER_TOKEN` (e.g. when the server verifies RS256 or
// ES256 and the scripts cannot sign).
//
// Claims, as PROTOCOL.md defines them: `sub`, `exp`, optional `roles`
// (publishing needs `publisher`), optional `topics`.

import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

import { env, envInt } from './config.js';

/** Default token lifetime: long enough for any bounded run. */
const DEFAULT_TTL_SECS = envInt('TOKEN_TTL_SECS', 3600, 60);

function b64url(text) {
  return encoding.b64encode(text, 'rawurl');
}

/** The HS256 secret, or a message saying how to provide one. */
function secret() {
  const value = env('PUSHLOG_JWT_SECRET', undefined);
  if (value === undefined) {
    throw new Error(
      'no token source: set PUSHLOG_JWT_SECRET to the secret the server was started with ' +
        '(or PUBLISHER_TOKEN / READER_TOKEN to ready-made tokens)',
    );
  }
  if (value.length < 32) {
    console.warn('PUSHLOG_JWT_SECRET is shorter than 32 bytes; the server refuses such secrets');
  }
  return value;
}

/**
 * Signs a JWT with HS256.
 *
 * @param {object} claims  `sub` (required), and optionally `roles`, `topics`
 *                         and any other claim; `exp` defaults to now + ttl.
 * @param {object} [opts]  `ttlSecs` (lifetime), `secret` (overrides the env).
 */
export function mintToken(claims, opts = {}) {
  if (!claims || typeof claims.sub !== 'string' || claims.sub === '') {
    throw new Error('mintToken: `sub` is required');
  }
  const ttl = opts.ttlSecs || DEFAULT_TTL_SECS;
  const body = Object.assign({}, claims);
  if (body.exp === undefined) body.exp = Math.floor(Date.now() / 1000) + ttl;
  if (body.roles === undefined) delete body.roles;
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(body));
  const signingInput = `${header}.${payload}`;
  const mac = crypto.hmac('sha256', opts.secret || secret(), signingInput, 'binary');
  return `${signingInput}.${encoding.b64encode(mac, 'rawurl')}`;
}

/** A token that may publish: `PUBLISHER_TOKEN`, or one minted with role `publisher`. */
export function publisherToken(sub = 'k6-publisher', ttlSecs) {
  const given = env('PUBLISHER_TOKEN', undefined);
  if (given !== undefined) return given;
  return mintToken({ sub, roles: ['publisher'] }, { ttlSecs });
}

/** A plain reader token: `READER_TOKEN`, or one minted without roles. */
export function readerToken(sub = 'k6-reader', ttlSecs) {
  const given = env('READER_TOKEN', undefined);
  if (given !== undefined) return given;
  return mintToken({ sub }, { ttlSecs });
}

/** `Authorization` and content headers for JSON requests. */
export function authHeaders(token) {
  return {
    Authorization: `Bearer ${token}`,
    'Content-Type': 'application/json',
    Accept: 'application/json',
  };
}
