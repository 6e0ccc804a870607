/**
 * The Server-Sent Events transport (`GET /events/stream`): the first
 * fallback, for networks that block WebSocket upgrades but pass plain HTTP.
 *
 * The client closes the `EventSource` on its first error instead of letting
 * it reconnect by itself, for two reasons: its own reconnects would reuse the
 * URL and with it a token that may have expired, and they would bypass the
 * backoff and the fallback ladder. Each session is one stream opened with
 * `since` = the cursor.
 *
 * Liveness: the server's `: ping` comments keep proxies from closing the
 * stream, but `EventSource` does not surface comments, so a page cannot tell
 * a quiet stream from a dead one by listening. When no event arrived for a
 * check interval, the session asks `/events/missed` whether anything newer
 * than its cursor exists. If something does and the stream still has not
 * delivered it one interval later, the stream is stale and is replaced.
 */

import { Timer } from '../clock.js';
import type { Clock } from '../clock.js';
import { PushlogError } from '../errors.js';
import { parseEvent, parseJsonObject, parseReset } from '../event.js';
import type { EventSourceConstructor, EventSourceLike, FetchLike } from '../platform.js';
import { endpoint } from './endpoints.js';
import { fetchHead, fetchMissed } from './missed.js';
import { guardEvents } from './session.js';
import type { OpenSession, Session, SessionContext, SessionEnd, SessionEvents } from './session.js';

export interface SseTransportOptions {
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  /** Event types to receive (exact or `prefix*`); `undefined` for every type. */
  readonly types: readonly string[] | undefined;
  readonly EventSource: EventSourceConstructor;
  readonly fetch: FetchLike;
  readonly clock: Clock;
  /** How long a silent stream goes before the session checks on it. */
  readonly checkIntervalMs: number;
  readonly requestTimeoutMs: number;
}

export function sseTransport(options: SseTransportOptions): OpenSession {
  return (context) => new SseSession(options, context);
}

class SseSession implements Session {
  private readonly events: SessionEvents;
  private readonly guard: ReturnType<typeof guardEvents>;
  private readonly check: Timer;
  private readonly requests = new AbortController();
  private source: EventSourceLike | undefined;
  private opened = false;
  private sawEvent = false;
  /** An id the server has and the stream has not delivered yet. */
  private owed: number | null = null;

  constructor(
    private readonly options: SseTransportOptions,
    private readonly context: SessionContext,
  ) {
    this.guard = guardEvents(context.events);
    this.events = this.guard.events;
    this.check = new Timer(options.clock);
    void this.start();
  }

  close(): void {
    this.guard.end();
    this.shutdown();
  }

  private async start(): Promise<void> {
    // Without a cursor, "from now" must be a definite id: a stream opened
    // without `since` that drops before its first event would otherwise
    // reconnect with nothing to resume from and lose what came in between.
    if (this.context.cursor() === null) {
      const head = await fetchHead(this.request(this.context.token));
      if (head.kind === 'failed') {
        this.finish({ opened: false, retry: 'backoff', transportFailure: head.transportFailure, error: head.error });
        return;
      }
      this.events.onHead(head.head);
      if (this.guard.ended) return;
    }
    const url = endpoint(this.options.baseUrl, '/events/stream', {
      topics: this.options.topics.join(','),
      types: this.options.types?.join(','),
      since: this.context.cursor() ?? undefined,
      token: this.context.token,
    });
    const source = new this.options.EventSource(url);
    this.source = source;
    source.onopen = () => {
      if (this.opened) return;
      this.opened = true;
      this.events.onOpen();
      this.scheduleCheck();
    };
    source.onmessage = (message) => {
      const event = parseEvent(parseJsonObject(message.data));
      if (!event) {
        this.events.onError(protocolError('the stream sent an unreadable event'));
        return;
      }
      this.sawEvent = true;
      this.events.onEvent(event);
    };
    source.addEventListener('reset', (message) => {
      // The server ends the response after a reset; start a new stream from
      // the head at once rather than waiting for the error that follows.
      const info = parseReset(parseJsonObject(message.data));
      if (info) this.events.onReset(info);
      else this.events.onError(protocolError('the stream sent a reset without a head'));
      this.finish({ opened: true, retry: 'now', transportFailure: false });
    });
    source.onerror = () => {
      this.finish({ opened: this.opened, retry: 'backoff', transportFailure: !this.opened });
    };
  }

  private scheduleCheck(): void {
    this.check.start(this.options.checkIntervalMs, () => void this.runCheck());
  }

  private async runCheck(): Promise<void> {
    const cursor = this.context.cursor();
    if (this.owed !== null && (cursor === null || cursor < this.owed)) {
      this.finish({ opened: true, retry: 'backoff', transportFailure: false });
      return;
    }
    this.owed = null;
    if (this.sawEvent || cursor === null) {
      this.sawEvent = false;
      this.scheduleCheck();
      return;
    }
    let token: string | undefined;
    try {
      token = await this.context.refreshToken();
    } catch {
      // The supervisor reports token failures when it reconnects; a check
      // without a fresh token is still worth trying.
      token = this.context.token;
    }
    if (this.guard.ended) return;
    const outcome = await fetchMissed({ ...this.request(token), since: cursor, limit: 1 });
    if (this.guard.ended) return;
    switch (outcome.kind) {
      case 'page':
        this.owed = outcome.events[0]?.id ?? null;
        this.scheduleCheck();
        return;
      case 'gone':
        // The stream should have sent `reset` for this; a new stream will.
        this.finish({ opened: true, retry: 'now', transportFailure: false });
        return;
      case 'failed':
        if (outcome.transportFailure) {
          // The server is unreachable by plain HTTP: the stream is as dead.
          this.finish({ opened: true, retry: 'backoff', transportFailure: false, error: outcome.error });
        } else {
          this.events.onError(outcome.error);
          this.scheduleCheck();
        }
        return;
    }
  }

  private request(token: string | undefined) {
    return {
      fetch: this.options.fetch,
      clock: this.options.clock,
      baseUrl: this.options.baseUrl,
      topics: this.options.topics,
      types: this.options.types,
      token,
      timeoutMs: this.options.requestTimeoutMs,
      transport: 'sse' as const,
      signal: this.requests.signal,
    };
  }

  private finish(end: SessionEnd): void {
    this.shutdown();
    this.events.onClose(end);
  }

  private shutdown(): void {
    this.check.cancel();
    this.requests.abort();
    if (this.source) {
      this.source.onopen = null;
      this.source.onmessage = null;
      this.source.onerror = null;
      this.source.close();
    }
  }
}

function protocolError(message: string): PushlogError {
  return new PushlogError({ kind: 'protocol', code: 'malformed_message', message, transport: 'sse' });
}
