/**
 * One `GET` of a paged log read (`/events/missed`, `/events/changes`): the
 * URL with the subscription's filters, the token, the timeout, and what a
 * failure means. Callers parse the body; this module never looks inside it.
 *
 * Unlike WebSocket and EventSource, `fetch` can send headers, so the token
 * travels in `Authorization` here and stays out of URLs and access logs.
 */

import type { Clock } from '../clock.js';
import { PushlogError } from '../errors.js';
import type { FetchLike } from '../platform.js';
import type { TransportKind } from '../state.js';
import { endpoint } from './endpoints.js';

/** What every log read needs: where, as whom, for which subscription. */
export interface LogRequest {
  readonly fetch: FetchLike;
  readonly clock: Clock;
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  /** Event types to read (exact or `prefix*`); `undefined` reads every type. */
  readonly types: readonly string[] | undefined;
  readonly token: string | undefined;
  readonly timeoutMs: number;
  /** Which transport asks, for error reports; none for the client's own reads. */
  readonly transport?: TransportKind;
  /** Aborts the request when whoever made it is done. */
  readonly signal?: AbortSignal;
}

export type LogAnswer =
  | { readonly kind: 'answer'; readonly status: number; readonly body: unknown }
  | {
      readonly kind: 'failed';
      readonly error: PushlogError;
      /** See `SessionEnd.transportFailure`: the path itself looks unusable. */
      readonly transportFailure: boolean;
    };

export async function getLog(
  request: LogRequest,
  path: '/events/missed' | '/events/changes',
  query: { readonly since: number; readonly limit?: number | undefined },
): Promise<LogAnswer> {
  const { clock, transport } = request;
  const url = endpoint(request.baseUrl, path, {
    since: query.since,
    topics: request.topics.join(','),
    types: request.types?.join(','),
    limit: query.limit,
  });
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (request.token !== undefined) headers['Authorization'] = `Bearer ${request.token}`;

  const controller = new AbortController();
  const abort = () => controller.abort();
  if (request.signal?.aborted) abort();
  request.signal?.addEventListener('abort', abort);
  const timeout = clock.setTimeout(abort, request.timeoutMs);
  try {
    try {
      const response = await request.fetch(url, { headers, signal: controller.signal, cache: 'no-store' });
      const body = await response.json().catch(() => undefined);
      return { kind: 'answer', status: response.status, body };
    } catch (cause) {
      const message = `GET ${path} failed: ${String(cause)}`;
      return {
        kind: 'failed',
        error: new PushlogError(
          { kind: 'http', code: 'network_error', message, ...(transport ? { transport } : {}) },
          { cause },
        ),
        transportFailure: true,
      };
    }
  } finally {
    clock.clearTimeout(timeout);
    request.signal?.removeEventListener('abort', abort);
  }
}

/** A body the caller could not read as the page it asked for. */
export function malformed(path: string, request: LogRequest): Extract<LogAnswer, { kind: 'failed' }> {
  const { transport } = request;
  const message = `GET ${path}: unreadable body`;
  return {
    kind: 'failed',
    error: new PushlogError({ kind: 'protocol', code: 'malformed_page', message, ...(transport ? { transport } : {}) }),
    transportFailure: true,
  };
}

/** Any status the caller has no meaning for, as an error. */
export function unexpectedStatus(
  path: string,
  request: LogRequest,
  status: number,
  body: unknown,
): Extract<LogAnswer, { kind: 'failed' }> {
  const { transport } = request;
  const server = body as { error?: unknown; message?: unknown } | undefined;
  const error = new PushlogError({
    kind: 'http',
    code: typeof server?.error === 'string' ? server.error : `http_${status}`,
    message: typeof server?.message === 'string' ? server.message : `GET ${path} answered ${status}`,
    status,
    ...(transport ? { transport } : {}),
  });
  // 4xx means the server is there and said no: another transport would be
  // told the same. Anything else (5xx, a proxy's 404/502) may be this
  // path being unusable.
  const refused = status >= 400 && status < 500 && status !== 404 && status !== 408 && status !== 429;
  return { kind: 'failed', error, transportFailure: !refused };
}
