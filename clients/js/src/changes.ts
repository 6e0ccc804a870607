/**
 * `GET /events/changes`, every page of it, as one `ChangesReport`: which
 * entities changed after a cursor, each as its latest event.
 *
 * Used where events can no longer say what changed: a cursor the log has
 * pruned past (the supervisor's catch-up), and a tab's initial state
 * (`since` 0). The entity index outlives the log, so the first usually
 * still works when `/events/missed` answers `410 cursor_expired`.
 */

import { systemClock } from './clock.js';
import { PushlogError } from './errors.js';
import { hasEntity, isEventId, parseEvent, parseReset } from './event.js';
import type { ChangesReport, EntityEvent, ResetInfo } from './event.js';
import { globalPlatform } from './platform.js';
import type { FetchLike } from './platform.js';
import { parseBaseUrl } from './transports/endpoints.js';
import { getLog, malformed, unexpectedStatus } from './transports/log-request.js';
import type { LogRequest } from './transports/log-request.js';

export type ChangesOutcome =
  | { readonly kind: 'changes'; readonly report: ChangesReport }
  /** 410: the entity index cannot serve the cursor either (or it is ahead of the log). */
  | { readonly kind: 'gone'; readonly reset: ResetInfo }
  | {
      readonly kind: 'failed';
      readonly error: PushlogError;
      /**
       * A network error, a 5xx, 408 or 429: asking again later may work.
       * Otherwise (a 404 from a server without the endpoint, a refusal, an
       * unreadable page) asking again would get the same answer.
       */
      readonly retryable: boolean;
    };

/**
 * Entities per page: fewer round trips than the server's default of 500,
 * while a page of full events stays a few hundred KiB.
 */
export const CHANGES_PAGE = 1_000;

const PATH = '/events/changes';

interface ChangesPage {
  readonly events: readonly EntityEvent[];
  readonly nextSince: number;
  readonly hasMore: boolean;
  readonly head: number;
  readonly logComplete: boolean;
}

/** Reads every page after `since` and merges them into one report. */
export async function fetchChanges(request: LogRequest, since: number): Promise<ChangesOutcome> {
  // An entity changed again while the pages are read shows up once more,
  // on a later page, with its newer event, which replaces the older one.
  const latest = new Map<string, EntityEvent>();
  let cursor = since;
  let logComplete = true;
  for (;;) {
    const answer = await getLog(request, PATH, { since: cursor, limit: CHANGES_PAGE });
    if (answer.kind === 'failed') return { kind: 'failed', error: answer.error, retryable: true };
    const { status, body } = answer;
    if (status === 410) {
      const reset = parseReset(body);
      if (reset) return { kind: 'gone', reset };
    }
    if (status !== 200) {
      const { error } = unexpectedStatus(PATH, request, status, body);
      return { kind: 'failed', error, retryable: status >= 500 || status === 408 || status === 429 };
    }
    const page = parsePage(body);
    // A page that claims more but does not move on would be asked for forever.
    if (!page || (page.hasMore && page.nextSince <= cursor)) {
      return { kind: 'failed', error: malformed(PATH, request).error, retryable: false };
    }
    // Each page says whether the log holds everything after *its* cursor;
    // the report is about `since`, the first and oldest of them.
    logComplete &&= page.logComplete;
    for (const event of page.events) latest.set(entityKey(event), event);
    if (!page.hasMore) {
      const entities = [...latest.values()].sort((a, b) => a.id - b.id);
      // `head`, not the last entity's id: everything up to the head is
      // accounted for, so the live stream resumes after it with no gap.
      return { kind: 'changes', report: { count: entities.length, entities, since, head: page.head, logComplete } };
    }
    cursor = page.nextSince;
  }
}

/** One entity: the server's key, (topic, kind, id). */
function entityKey(event: EntityEvent): string {
  return JSON.stringify([event.topic, event.entity.kind, event.entity.id]);
}

function parsePage(body: unknown): ChangesPage | null {
  if (typeof body !== 'object' || body === null) return null;
  const fields = body as Record<string, unknown>;
  const { events, next_since: nextSince, has_more: hasMore, head, log_complete: logComplete } = fields;
  if (
    !Array.isArray(events) ||
    !isEventId(nextSince) ||
    typeof hasMore !== 'boolean' ||
    !isEventId(head) ||
    typeof logComplete !== 'boolean'
  ) {
    return null;
  }
  const parsed: EntityEvent[] = [];
  for (const raw of events) {
    const event = parseEvent(raw);
    // Skipping one would leave an entity's cached state stale, silently.
    if (!event || !hasEntity(event)) return null;
    parsed.push(event);
  }
  return { events: parsed, nextSince, hasMore, head, logComplete };
}

export interface ReadChangesOptions {
  /** The server's base URL, as for `connect()`. */
  readonly url: string | URL;
  readonly topics?: readonly string[] | undefined;
  readonly types?: readonly string[] | undefined;
  /** Omit for the `pushlog_token` cookie. */
  readonly token?: string | undefined;
  /** After this event id; 0 (the default) for the current state of every entity. */
  readonly since?: number | undefined;
  readonly fetch?: FetchLike | undefined;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * `GET /events/changes`, every page, on its own: the current state of every
 * entity (`since` 0), or what changed after a cursor, whenever an app wants
 * it, e.g. to (re)load a view while a client is live. Merging it with live
 * events by keeping each entity's highest id gives the same result in any
 * order. Rejects with a `PushlogError` (`code` `cursor_expired` when the
 * index no longer reaches back to `since`).
 */
export async function readChanges(options: ReadChangesOptions): Promise<ChangesReport> {
  const fetch = options.fetch ?? globalPlatform().fetch;
  if (!fetch) throw new TypeError('pushlog: readChanges needs fetch; pass an implementation in the options');
  const request: LogRequest = {
    fetch,
    clock: systemClock,
    baseUrl: parseBaseUrl(options.url),
    topics: [...(options.topics ?? ['*'])],
    types: options.types === undefined ? undefined : [...options.types],
    token: options.token,
    timeoutMs: options.timeoutMs ?? 15_000,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const outcome = await fetchChanges(request, options.since ?? 0);
  switch (outcome.kind) {
    case 'changes':
      return outcome.report;
    case 'gone': {
      const { reason, head } = outcome.reset;
      const message = `GET ${PATH} answered 410 ${reason} (head ${head})`;
      throw new PushlogError({ kind: 'http', code: reason, message, status: 410 });
    }
    case 'failed':
      throw outcome.error;
  }
}
