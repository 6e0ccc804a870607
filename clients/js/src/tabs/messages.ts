/**
 * What tabs tell each other over the relay channel. The leader sends
 * everything its supervisor produces; followers send `hello` when they join
 * and `reconnect` when their app asks for one.
 */

import type { PushlogErrorDetails } from '../errors.js';
import { parseChangesReport, parseEvent, parseReset } from '../event.js';
import type { ChangesReport, PushEvent, ResetInfo } from '../event.js';
import type { StatusPatch } from '../supervisor.js';

export type RelayMessage =
  /** Follower → leader: "I am new here; send me the status and cursor". */
  | { readonly kind: 'hello' }
  /** Follower → leader: the app called `reconnect()`. */
  | { readonly kind: 'reconnect' }
  | { readonly kind: 'event'; readonly event: PushEvent }
  /** The leader's cursor moved without an event (start, `next_since`), or a follower joined. */
  | { readonly kind: 'cursor'; readonly id: number }
  | { readonly kind: 'reset'; readonly info: ResetInfo }
  /** The leader caught up on an expired cursor: which entities changed meanwhile. */
  | { readonly kind: 'changes'; readonly report: ChangesReport }
  | { readonly kind: 'status'; readonly status: StatusPatch }
  | { readonly kind: 'error'; readonly error: PushlogErrorDetails }
  /** Leader → followers: closing; a follower will take over. */
  | { readonly kind: 'leaving' };

/** Every message is wrapped so unrelated traffic on the channel is ignored. */
export interface Envelope {
  readonly pushlog: 1;
  readonly from: string;
  readonly message: RelayMessage;
}

export function envelope(from: string, message: RelayMessage): Envelope {
  return { pushlog: 1, from, message };
}

/**
 * Checks what another tab sent. Tabs of one origin may run different
 * versions of the app (one tab not reloaded after a deploy), so the shape is
 * verified rather than trusted.
 */
export function parseEnvelope(data: unknown): Envelope | null {
  if (typeof data !== 'object' || data === null) return null;
  const { pushlog, from, message } = data as Record<string, unknown>;
  if (pushlog !== 1 || typeof from !== 'string' || typeof message !== 'object' || message === null) return null;
  const m = message as Record<string, unknown>;
  switch (m['kind']) {
    case 'hello':
    case 'reconnect':
    case 'leaving':
      return { pushlog, from, message: { kind: m['kind'] } };
    case 'event': {
      const event = parseEvent(m['event']);
      return event ? { pushlog, from, message: { kind: 'event', event } } : null;
    }
    case 'cursor':
      return typeof m['id'] === 'number' ? { pushlog, from, message: { kind: 'cursor', id: m['id'] } } : null;
    case 'reset': {
      const raw = m['info'] as { reason?: unknown; head?: unknown; oldestId?: unknown } | undefined;
      const info = parseReset({ reason: raw?.reason, head: raw?.head, oldest_id: raw?.oldestId });
      return info ? { pushlog, from, message: { kind: 'reset', info } } : null;
    }
    case 'changes': {
      const report = parseChangesReport(m['report']);
      return report ? { pushlog, from, message: { kind: 'changes', report } } : null;
    }
    case 'status':
      return { pushlog, from, message: { kind: 'status', status: parseStatus(m['status']) } };
    case 'error': {
      const error = m['error'] as Partial<PushlogErrorDetails> | undefined;
      return typeof error?.code === 'string' && typeof error.message === 'string' && typeof error.kind === 'string'
        ? { pushlog, from, message: { kind: 'error', error: error as PushlogErrorDetails } }
        : null;
    }
    default:
      return null;
  }
}

const STATES: readonly unknown[] = ['connecting', 'connected', 'reconnecting', 'fallback', 'offline'];
const TRANSPORTS: readonly unknown[] = ['websocket', 'sse', 'polling', null];

/** Keeps only the fields a follower mirrors, and only well-typed ones. */
function parseStatus(value: unknown): StatusPatch {
  if (typeof value !== 'object' || value === null) return {};
  const { state, transport, reconnects, missedOnLastReconnect: missed } = value as Record<string, unknown>;
  return {
    ...(STATES.includes(state) ? { state: state as StatusPatch['state'] & string } : {}),
    ...(TRANSPORTS.includes(transport) ? { transport: transport as NonNullable<StatusPatch['transport']> | null } : {}),
    ...(typeof reconnects === 'number' ? { reconnects } : {}),
    ...(typeof missed === 'number' || missed === null ? { missedOnLastReconnect: missed } : {}),
  };
}
