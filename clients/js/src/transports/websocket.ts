/**
 * The WebSocket transport (`GET /ws`): the preferred one.
 *
 * One socket per session. After the server's `welcome` the session
 * subscribes to every topic at once with `since` = the cursor, so the
 * server replays what was missed and then continues live on the same
 * stream, gap-free; `caught_up` marks the handover.
 *
 * Liveness: the server pings at the protocol level, but browsers answer
 * those pings without telling the page, so a page cannot see them. The
 * session therefore sends an app-level `{"type":"ping"}` every heartbeat
 * interval (from `welcome.heartbeat_ms`) and gives the socket up when no
 * frame at all (pong, event, anything) arrived for two intervals: a socket
 * can stay "open" for minutes after its network path died.
 */

import { Timer } from '../clock.js';
import type { Clock } from '../clock.js';
import { PushlogError } from '../errors.js';
import { parseEvent, parseJsonObject, parseReset } from '../event.js';
import type { WebSocketConstructor, WebSocketLike } from '../platform.js';
import { endpoint } from './endpoints.js';
import { guardEvents } from './session.js';
import type { OpenSession, Session, SessionContext, SessionEnd, SessionEvents } from './session.js';

export interface WebSocketTransportOptions {
  readonly baseUrl: URL;
  readonly topics: readonly string[];
  /** Event types to receive (exact or `prefix*`); `undefined` for every type. */
  readonly types: readonly string[] | undefined;
  readonly WebSocket: WebSocketConstructor;
  readonly clock: Clock;
  /** Used when `welcome` carries no `heartbeat_ms`. */
  readonly defaultHeartbeatMs: number;
}

/** Close codes the contract gives a meaning; see `sessionEnd`. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  PolicyViolation: 1008,
  Unauthorized: 4001,
  Forbidden: 4003,
  TooFarBehind: 4008,
  /** Ours: the client gave up on a silent socket. */
  HeartbeatTimeout: 4000,
} as const;

export function webSocketTransport(options: WebSocketTransportOptions): OpenSession {
  return (context) => new WebSocketSession(options, context);
}

class WebSocketSession implements Session {
  private readonly socket: WebSocketLike;
  private readonly events: SessionEvents;
  private readonly guard: ReturnType<typeof guardEvents>;
  private readonly heartbeat: Timer;
  private opened = false;
  private heartbeatMs: number;
  private lastFrameAt: number;
  private requests = 0;
  /** The `request_id` of the live subscription; older ones' answers are stale. */
  private subscription: string | undefined;

  constructor(
    private readonly options: WebSocketTransportOptions,
    private readonly context: SessionContext,
  ) {
    this.guard = guardEvents(context.events);
    this.events = this.guard.events;
    this.heartbeat = new Timer(options.clock);
    this.heartbeatMs = options.defaultHeartbeatMs;
    this.lastFrameAt = options.clock.now();
    this.socket = new options.WebSocket(endpoint(options.baseUrl, '/ws', { token: context.token }));
    this.socket.onmessage = (message) => this.receive(message.data);
    this.socket.onclose = (close) => this.finish(sessionEnd(close.code, close.reason, this.opened));
    // `error` is always followed by `close`, which carries the code.
    this.socket.onerror = () => {};
  }

  close(): void {
    this.guard.end();
    this.heartbeat.cancel();
    this.detach();
    this.socket.close(CloseCode.Normal);
  }

  private receive(data: unknown): void {
    this.lastFrameAt = this.options.clock.now();
    const message = parseJsonObject(data);
    if (!message) {
      this.events.onError(protocolError('the server sent a frame that is not a JSON object'));
      return;
    }
    switch (message['type']) {
      case 'welcome':
        return this.welcome(message);
      case 'event': {
        const event = parseEvent(message['event']);
        if (event) this.events.onEvent(event);
        else this.events.onError(protocolError('the server sent an unreadable event'));
        return;
      }
      case 'caught_up':
        if (message['request_id'] === this.subscription) this.events.onCaughtUp();
        return;
      case 'reset':
        return this.reset(message);
      case 'error':
        this.events.onError(
          new PushlogError({
            kind: 'server',
            code: typeof message['error'] === 'string' ? message['error'] : 'error',
            message: typeof message['message'] === 'string' ? message['message'] : 'the server reported an error',
            transport: 'websocket',
            ...(typeof message['request_id'] === 'string' ? { requestId: message['request_id'] } : {}),
          }),
        );
        return;
      default:
        // `subscribed`, `unsubscribed`, `pong`, and types added later: the
        // frame already counted as a sign of life.
        return;
    }
  }

  private welcome(message: Record<string, unknown>): void {
    if (this.opened) return;
    this.opened = true;
    const heartbeat = message['heartbeat_ms'];
    if (typeof heartbeat === 'number' && heartbeat > 0) this.heartbeatMs = heartbeat;
    const head = message['head'];
    if (typeof head === 'number') this.events.onHead(head);
    this.events.onOpen();
    this.subscribe();
    this.scheduleHeartbeat();
  }

  /**
   * The server could not continue from our cursor. The supervisor has moved
   * the cursor to the head; subscribing afresh from there works whether the
   * server ended the old subscription or kept it going (the unsubscribe makes
   * both cases the same, and any overlap is dropped as duplicates).
   */
  private reset(message: Record<string, unknown>): void {
    const info = parseReset(message);
    if (!info) {
      this.events.onError(protocolError('the server sent a reset without a head'));
      return;
    }
    this.events.onReset(info);
    if (this.guard.ended) return;
    this.send({ type: 'unsubscribe', topics: this.options.topics, request_id: this.nextRequestId() });
    this.subscribe();
  }

  private subscribe(): void {
    if (this.guard.ended) return;
    this.subscription = this.nextRequestId();
    const since = this.context.cursor();
    this.send({
      type: 'subscribe',
      topics: this.options.topics,
      ...(this.options.types === undefined ? {} : { types: this.options.types }),
      ...(since === null ? {} : { since }),
      request_id: this.subscription,
    });
  }

  private scheduleHeartbeat(): void {
    this.heartbeat.start(this.heartbeatMs, () => {
      const silentFor = this.options.clock.now() - this.lastFrameAt;
      if (silentFor >= 2 * this.heartbeatMs) {
        this.detach();
        this.socket.close(CloseCode.HeartbeatTimeout, 'heartbeat timeout');
        this.finish({ opened: true, retry: 'backoff', transportFailure: false });
        return;
      }
      this.send({ type: 'ping' });
      this.scheduleHeartbeat();
    });
  }

  private send(message: object): void {
    try {
      this.socket.send(JSON.stringify(message));
    } catch {
      // Closing already; `onclose` will report it.
    }
  }

  private nextRequestId(): string {
    this.requests += 1;
    return `r${this.requests}`;
  }

  private finish(end: SessionEnd): void {
    this.heartbeat.cancel();
    this.events.onClose(end);
  }

  private detach(): void {
    this.socket.onmessage = null;
    this.socket.onclose = null;
    this.socket.onerror = null;
  }
}

/** What a close code means for the client; see the contract's close codes. */
export function sessionEnd(code: number, reason: string, opened: boolean): SessionEnd {
  const rejected = (errorCode: string, what: string, retry: SessionEnd['retry'] = 'backoff'): SessionEnd => ({
    opened,
    retry,
    // The server is reachable and said no; SSE would hear the same.
    transportFailure: false,
    error: new PushlogError({
      kind: 'rejected',
      code: errorCode,
      message: reason || what,
      closeCode: code,
      transport: 'websocket',
    }),
  });
  switch (code) {
    case CloseCode.Unauthorized:
      // On a live connection this is the token expiring: reconnect at once
      // with a fresh one from `getToken()`. (The supervisor only honours
      // `now` for sessions that had opened, so a token rejected up front is
      // retried with backoff, never in a loop.)
      return rejected('unauthorized', 'the server rejected the token', 'now');
    case CloseCode.Forbidden:
      return rejected('forbidden', 'the server refused an action and closed the connection');
    case CloseCode.PolicyViolation:
      return rejected('policy_violation', 'the server closed the connection for a policy violation');
    case CloseCode.TooFarBehind:
      // The contract: reconnect with the cursor. Waiting would only put the
      // client further behind.
      return { opened, retry: 'now', transportFailure: false };
    case CloseCode.GoingAway:
      // Server shutdown: another node is likely up, but every client of this
      // one is reconnecting too, so let the jittered backoff spread them.
      return { opened, retry: 'backoff', transportFailure: false };
    default:
      // A socket that never got to `welcome` (1006 from a proxy that drops
      // upgrades, a missing endpoint) is what fallback is for.
      return { opened, retry: 'backoff', transportFailure: !opened };
  }
}

function protocolError(message: string): PushlogError {
  return new PushlogError({ kind: 'protocol', code: 'malformed_message', message, transport: 'websocket' });
}
