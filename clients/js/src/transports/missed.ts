/**
 * One request to `GET /events/missed`, with its outcomes spelled out.
 *
 * Used by polling (every page), by SSE (the head for a client without a
 * cursor, and its liveness check) and by nothing else. Unlike WebSocket and
 * EventSource, `fetch` can send headers, so the token travels in
 * `Authorization` here and stays out of URLs and access logs.
 */

import type { Clock } from '../clock.js';
import { PushlogError } from '../errors.js';
import { isEventId, parseEvent, parseReset } from '../event.js';
import type { PushEvent, ResetInfo } from '../event.js';
import type { FetchLike } from '../platform.js';
import type { TransportKind } from '../state.js';
import { endpoint } from './endpoints.js';

export interface MissedRequest {
  readonly fetch: FetchLike;
  readonly clock: Clock;
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  readonly since: number;
  readonly limit?: number;
  readonly token: string | undefined;
  readonly timeoutMs: number;
  /** Which transport asks, for error reports. */
  readonly transport: TransportKind;
  /** Aborts the request when the session that made it ends. */
  readonly signal?: AbortSignal;
}

export type MissedOutcome =
  | {
      readonly kind: 'page';
      readonly events: readonly PushEvent[];
      readonly nextSince: number;
      readonly hasMore: boolean;
      readonly head: number;
    }
  /** 410: the cursor is expired or unknown; refetch and continue from `head`. */
  | { readonly kind: 'gone'; readonly reset: ResetInfo }
  | {
      readonly kind: 'failed';
      readonly error: PushlogError;
      /** See `SessionEnd.transportFailure`. */
      readonly transportFailure: boolean;
    };

export async function fetchMissed(request: MissedRequest): Promise<MissedOutcome> {
  const { clock, transport } = request;
  const url = endpoint(request.baseUrl, '/events/missed', {
    since: request.since,
    topics: request.topics.join(','),
    limit: request.limit,
  });
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (request.token !== undefined) headers['Authorization'] = `Bearer ${request.token}`;

  const controller = new AbortController();
  const abort = () => controller.abort();
  if (request.signal?.aborted) abort();
  request.signal?.addEventListener('abort', abort);
  const timeout = clock.setTimeout(abort, request.timeoutMs);
  const fail = (error: PushlogError, transportFailure: boolean): MissedOutcome => ({
    kind: 'failed',
    error,
    transportFailure,
  });

  try {
    let response;
    let body: unknown;
    try {
      response = await request.fetch(url, { headers, signal: controller.signal, cache: 'no-store' });
      body = await response.json().catch(() => undefined);
    } catch (cause) {
      return fail(
        new PushlogError(
          { kind: 'http', code: 'network_error', message: `GET /events/missed failed: ${String(cause)}`, transport },
          { cause },
        ),
        true,
      );
    }
    const { status } = response;
    if (status === 410) {
      const reset = parseReset(body);
      if (reset) return { kind: 'gone', reset };
    }
    if (status === 200) {
      const page = parsePage(body);
      if (page) return page;
      const message = 'GET /events/missed: unreadable body';
      return fail(new PushlogError({ kind: 'protocol', code: 'malformed_page', message, transport }), true);
    }
    const server = body as { error?: unknown; message?: unknown } | undefined;
    const error = new PushlogError({
      kind: 'http',
      code: typeof server?.error === 'string' ? server.error : `http_${status}`,
      message: typeof server?.message === 'string' ? server.message : `GET /events/missed answered ${status}`,
      status,
      transport,
    });
    // 4xx means the server is there and said no: another transport would be
    // told the same. Anything else (5xx, a proxy's 404/502) may be this
    // path being unusable.
    const refused = status >= 400 && status < 500 && status !== 404 && status !== 408 && status !== 429;
    return fail(error, !refused);
  } finally {
    clock.clearTimeout(timeout);
    request.signal?.removeEventListener('abort', abort);
  }
}

function parsePage(body: unknown): MissedOutcome | null {
  if (typeof body !== 'object' || body === null) return null;
  const { events, next_since: nextSince, has_more: hasMore, head } = body as Record<string, unknown>;
  if (!Array.isArray(events) || !isEventId(nextSince) || typeof hasMore !== 'boolean' || !isEventId(head)) {
    return null;
  }
  const parsed: PushEvent[] = [];
  for (const raw of events) {
    const event = parseEvent(raw);
    // Skipping an unreadable event would lose it silently; refuse the page.
    if (!event) return null;
    parsed.push(event);
  }
  return { kind: 'page', events: parsed, nextSince, hasMore, head };
}

/**
 * The log's head, for a client that has no cursor yet and wants to start
 * "from now" without a gap between asking and listening. `since=0&limit=1`
 * is the cheapest request that returns `head`; a 410 (retention has pruned
 * id 1) carries it too, and is not a reset here: there was no state to lose.
 */
export async function fetchHead(request: Omit<MissedRequest, 'since' | 'limit'>): Promise<
  { readonly kind: 'head'; readonly head: number } | Extract<MissedOutcome, { kind: 'failed' }>
> {
  const outcome = await fetchMissed({ ...request, since: 0, limit: 1 });
  switch (outcome.kind) {
    case 'page':
      return { kind: 'head', head: outcome.head };
    case 'gone':
      return { kind: 'head', head: outcome.reset.head };
    case 'failed':
      return outcome;
  }
}
