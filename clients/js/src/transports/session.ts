/**
 * What every transport implements: open a session, report what happens on
 * it, close it on request. The supervisor decides everything else (when to
 * retry, which transport, what counts as a failure); transports only speak
 * their wire format.
 */

import type { PushlogError } from '../errors.js';
import type { PushEvent, ResetInfo } from '../event.js';

/** How a session ended, and what the supervisor should do about it. */
export interface SessionEnd {
  /** Whether the session got as far as `onOpen`. */
  readonly opened: boolean;
  /** `now`: reconnect at once (e.g. after a reset); `backoff`: wait first. */
  readonly retry: 'now' | 'backoff';
  /**
   * Whether this looks like the transport itself being unusable (blocked
   * by a proxy, endpoint missing), which is what moves the client to the
   * next transport. A rejected token is not: SSE would be rejected too.
   */
  readonly transportFailure: boolean;
  readonly error?: PushlogError;
}

export interface SessionEvents {
  /** The server's newest id, for a client that has no cursor yet. */
  onHead(head: number): void;
  /** The session is live: it will deliver events from the cursor on. */
  onOpen(): void;
  onEvent(event: PushEvent): void;
  /** The replay after the cursor is done; events from now on are live. */
  onCaughtUp(): void;
  /** The server vouches there is nothing readable up to `id` (polling's `next_since`). */
  onCursor(id: number): void;
  /** The server cannot continue from the cursor; continue from `info.head`. */
  onReset(info: ResetInfo): void;
  /** Something worth reporting that does not end the session. */
  onError(error: PushlogError): void;
  /** The session is over. Called at most once, never after `close()`. */
  onClose(end: SessionEnd): void;
}

export interface SessionContext {
  /** Fresh from `getToken()` for this session (`undefined`: cookie auth). */
  readonly token: string | undefined;
  /** For requests later in a long session (polling, SSE checks). */
  refreshToken(): Promise<string | undefined>;
  /** The cursor as it is now; read it when needed, it moves. */
  cursor(): number | null;
  readonly events: SessionEvents;
}

export interface Session {
  /** Ends the session. No callbacks follow, even ones already under way. */
  close(): void;
}

export type OpenSession = (context: SessionContext) => Session;

/**
 * Wraps a transport's callbacks so none fires after the session ended,
 * whether by `close()` or by `onClose`. Transports then need no "am I still
 * wanted?" checks after each await, and the supervisor can rely on the
 * `Session` contract.
 */
export function guardEvents(events: SessionEvents): { events: SessionEvents; end(): void; readonly ended: boolean } {
  let ended = false;
  const guard =
    <A extends unknown[]>(f: (...args: A) => void) =>
    (...args: A) => {
      if (!ended) f(...args);
    };
  return {
    events: {
      onHead: guard((head) => events.onHead(head)),
      onOpen: guard(() => events.onOpen()),
      onEvent: guard((event) => events.onEvent(event)),
      onCaughtUp: guard(() => events.onCaughtUp()),
      onCursor: guard((id) => events.onCursor(id)),
      onReset: guard((info) => events.onReset(info)),
      onError: guard((error) => events.onError(error)),
      onClose: guard((end) => {
        ended = true;
        events.onClose(end);
      }),
    },
    end() {
      ended = true;
    },
    get ended() {
      return ended;
    },
  };
}
