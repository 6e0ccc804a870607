/**
 * The polling transport (`GET /events/missed` in a loop): the last resort,
 * for networks where even a long-lived HTTP response does not get through.
 *
 * A session is a chain of requests from the cursor. A page with `has_more`
 * is followed at once; otherwise the next request waits one poll interval.
 * The cursor follows `next_since`, which can be past the last returned event
 * (events the token may not read were skipped), so the next request does not
 * scan them again.
 */

import { Timer } from '../clock.js';
import type { Clock } from '../clock.js';
import type { PushlogError } from '../errors.js';
import type { FetchLike } from '../platform.js';
import { fetchHead, fetchMissed } from './missed.js';
import { guardEvents } from './session.js';
import type { OpenSession, Session, SessionContext, SessionEvents } from './session.js';

export interface PollingTransportOptions {
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  /** Event types to receive (exact or `prefix*`); `undefined` for every type. */
  readonly types: readonly string[] | undefined;
  readonly fetch: FetchLike;
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly requestTimeoutMs: number;
}

export function pollingTransport(options: PollingTransportOptions): OpenSession {
  return (context) => new PollingSession(options, context);
}

class PollingSession implements Session {
  private readonly events: SessionEvents;
  private readonly guard: ReturnType<typeof guardEvents>;
  private readonly next: Timer;
  private readonly requests = new AbortController();
  private opened = false;
  private caughtUp = false;
  private firstRequest = true;

  constructor(
    private readonly options: PollingTransportOptions,
    private readonly context: SessionContext,
  ) {
    this.guard = guardEvents(context.events);
    this.events = this.guard.events;
    this.next = new Timer(options.clock);
    void this.poll();
  }

  close(): void {
    this.guard.end();
    this.next.cancel();
    this.requests.abort();
  }

  private async poll(): Promise<void> {
    const token = await this.token();
    if (this.guard.ended) return;
    const request = {
      fetch: this.options.fetch,
      clock: this.options.clock,
      baseUrl: this.options.baseUrl,
      topics: this.options.topics,
      types: this.options.types,
      token,
      timeoutMs: this.options.requestTimeoutMs,
      transport: 'polling' as const,
      signal: this.requests.signal,
    };

    let cursor = this.context.cursor();
    if (cursor === null) {
      const head = await fetchHead(request);
      if (this.guard.ended) return;
      if (head.kind === 'failed') return this.fail(head.error, head.transportFailure);
      this.events.onHead(head.head);
      cursor = this.context.cursor() ?? head.head;
    }

    const outcome = await fetchMissed({ ...request, since: cursor });
    if (this.guard.ended) return;
    switch (outcome.kind) {
      case 'page': {
        if (!this.opened) {
          this.opened = true;
          this.events.onOpen();
        }
        for (const event of outcome.events) {
          this.events.onEvent(event);
          if (this.guard.ended) return;
        }
        this.events.onCursor(outcome.nextSince);
        if (!outcome.hasMore && !this.caughtUp) {
          this.caughtUp = true;
          this.events.onCaughtUp();
        }
        this.schedule(outcome.hasMore ? 0 : this.options.intervalMs);
        return;
      }
      case 'gone':
        // The supervisor moves the cursor to the head and this session goes
        // on from there, or (an expired cursor) closes it to catch up first.
        this.events.onReset(outcome.reset);
        if (this.guard.ended) return;
        this.schedule(0);
        return;
      case 'failed':
        return this.fail(outcome.error, outcome.transportFailure);
    }
  }

  /** The session's token first, then a fresh one for every later request. */
  private async token(): Promise<string | undefined> {
    if (this.firstRequest) {
      this.firstRequest = false;
      return this.context.token;
    }
    try {
      return await this.context.refreshToken();
    } catch {
      // Already reported by the supervisor; the old token may still work.
      return this.context.token;
    }
  }

  private schedule(ms: number): void {
    this.next.start(ms, () => void this.poll());
  }

  private fail(error: PushlogError, transportFailure: boolean): void {
    this.events.onClose({ opened: this.opened, retry: 'backoff', transportFailure, error });
  }
}
