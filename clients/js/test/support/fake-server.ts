/**
 * The HTTP side of a pushlog server, as far as the client uses it:
 * `GET /events/missed`, backed by an in-memory log. Also the place tests
 * publish events, so every transport's fake can be fed from one log.
 */

import type { PushEvent } from '../../src/event.js';
import type { FetchLike, ResponseLike } from '../../src/platform.js';

export interface MissedRequestSeen {
  readonly since: number;
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
      since: Number(params.get('since')),
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
        return Promise.resolve(this.missed(parsed.pathname, params));
    }
  };

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
