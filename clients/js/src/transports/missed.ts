/**
 * One request to `GET /events/missed`, with its outcomes spelled out.
 *
 * Used by polling (every page), by SSE (the head for a client without a
 * cursor, and its liveness check) and by nothing else.
 */

import { isEventId, parseEvent, parseReset } from '../event.js';
import type { PushEvent, ResetInfo } from '../event.js';
import type { TransportKind } from '../state.js';
import { getLog, malformed, unexpectedStatus } from './log-request.js';
import type { LogAnswer, LogRequest } from './log-request.js';

export interface MissedRequest extends LogRequest {
  readonly since: number;
  readonly limit?: number;
  /** Which transport asks, for error reports. */
  readonly transport: TransportKind;
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
  | Extract<LogAnswer, { kind: 'failed' }>;

const PATH = '/events/missed';

export async function fetchMissed(request: MissedRequest): Promise<MissedOutcome> {
  const answer = await getLog(request, PATH, { since: request.since, limit: request.limit });
  if (answer.kind === 'failed') return answer;
  const { status, body } = answer;
  if (status === 410) {
    const reset = parseReset(body);
    if (reset) return { kind: 'gone', reset };
  }
  if (status === 200) return parsePage(body) ?? malformed(PATH, request);
  return unexpectedStatus(PATH, request, status, body);
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
