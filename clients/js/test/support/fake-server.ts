/**
 * The HTTP side of a pushlog server, as far as the client uses it:
 * `GET /events/missed` and `GET /events/changes`, backed by an in-memory
 * log and its entity index. Also the place tests publish events, so every
 * transport's fake can be fed from one log.
 */

import type { PushEvent } from '../../src/event.js';
import type { FetchLike, ResponseLike } from '../../src/platform.js';

export interface MissedRequestSeen {
  /** `/events/missed` or `/events/changes`. */
  readonly path: string;
  readonly since: number;
  readonly types: string | null;
  readonly topics: string | null;
  readonly limit: number | null;
  readonly authorization: string | undefined;
}

type Mode =
  | { readonly kind: 'up' }
  | { readonly kind: 'down' }
  | { readonly kind: 'status'; readonly status: number; readonly body: unknown }
  /** Requests never answer (until aborted). */
  | { readonly kind: 'hang' };

export class FakeServer {
  readonly log: PushEvent[] = [];
  readonly requests: MissedRequestSeen[] = [];
  /** Ids at or below this were pruned by retention. */
  prunedThrough = 0;
  /** Entity index rows at or below this have aged out: older cursors get 410 from `/events/changes`. */
  entitiesPrunedThrough = 0;
  /** `false`: a server from before `/events/changes` (404). */
  servesChanges = true;
  /** Called with each `/events/changes` answer before the client gets it. */
  beforeChangesAnswer: (() => void) | undefined;
  mode: Mode = { kind: 'up' };

  get head(): number {
    return this.log.at(-1)?.id ?? this.prunedThrough;
  }

  publish(topic: string, type = 'entity:updated', extra: Partial<PushEvent> = {}): PushEvent {
    const event: PushEvent = {
      id: this.head + 1,
      topic,
      type,
      timestamp: new Date(Date.UTC(2026, 10, 22, 10, 0, this.head + 1)).toISOString(),
      ...extra,
    };
    this.log.push(event);
    return event;
  }

  /** Publishes `n` events on `topic`. */
  publishMany(n: number, topic = 'alerts'): PushEvent[] {
    return Array.from({ length: n }, () => this.publish(topic));
  }

  readonly fetch: FetchLike = (url, init) => {
    const parsed = new URL(url);
    const params = parsed.searchParams;
    this.requests.push({
      path: parsed.pathname,
      since: Number(params.get('since')),
      types: params.get('types'),
      topics: params.get('topics'),
      limit: params.has('limit') ? Number(params.get('limit')) : null,
      authorization: init.headers['Authorization'],
    });
    const mode = this.mode;
    switch (mode.kind) {
      case 'down':
        return Promise.reject(new TypeError('fetch failed'));
      case 'hang':
        return new Promise((_, reject) => {
          init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
      case 'status':
        return Promise.resolve(response(mode.status, mode.body));
      case 'up':
        if (parsed.pathname.endsWith('/events/changes') && this.servesChanges) {
          const answer = this.changes(params);
          this.beforeChangesAnswer?.();
          return Promise.resolve(answer);
        }
        return Promise.resolve(this.missed(parsed.pathname, params));
    }
  };

  /** Requests to one path. */
  requestsTo(path: '/events/missed' | '/events/changes'): MissedRequestSeen[] {
    return this.requests.filter((r) => r.path.endsWith(path));
  }

  private changes(params: URLSearchParams): ResponseLike {
    const since = Number(params.get('since'));
    const limit = Number(params.get('limit') ?? 500);
    const head = this.head;
    if (since > head) return response(410, { error: 'cursor_unknown', oldest_id: this.prunedThrough + 1, head });
    if (since !== 0 && since < this.entitiesPrunedThrough) {
      return response(410, { error: 'cursor_expired', oldest_id: this.entitiesPrunedThrough + 1, head });
    }
    const latest = new Map<string, PushEvent>();
    for (const event of this.log) {
      if (event.entity) latest.set(JSON.stringify([event.topic, event.entity.kind, event.entity.id]), event);
    }
    const after = [...latest.values()].filter((e) => e.id > since).sort((a, b) => a.id - b.id);
    const events = after.slice(0, limit);
    const hasMore = after.length > limit;
    const nextSince = hasMore ? (events.at(-1)?.id ?? since) : head;
    return response(200, {
      events,
      next_since: nextSince,
      has_more: hasMore,
      head,
      log_complete: since >= this.prunedThrough,
    });
  }

  private missed(path: string, params: URLSearchParams): ResponseLike {
    if (!path.endsWith('/events/missed')) return response(404, { error: 'not_found', message: path });
    const since = Number(params.get('since'));
    const limit = Number(params.get('limit') ?? 500);
    const head = this.head;
    if (since < this.prunedThrough) {
      return response(410, { error: 'cursor_expired', oldest_id: this.prunedThrough + 1, head });
    }
    if (since > head) return response(410, { error: 'cursor_unknown', oldest_id: this.prunedThrough + 1, head });
    const after = this.log.filter((e) => e.id > since);
    const events = after.slice(0, limit);
    const hasMore = after.length > limit;
    const nextSince = hasMore ? (events.at(-1)?.id ?? since) : head;
    return response(200, { events, next_since: nextSince, has_more: hasMore, head });
  }
}

function response(status: number, body: unknown): ResponseLike {
  return { status, json: () => Promise.resolve(body) };
}
