/**
 * What the client reports through `onError`. Nothing here is fatal: the
 * client keeps reconnecting by itself; errors are for logging, and for
 * noticing a token or a subscription that will never work.
 */

import type { TransportKind } from './state.js';

export type PushlogErrorKind =
  /** The server answered a request with an `error` message (e.g. `forbidden_topic`). */
  | 'server'
  /** The server closed the WebSocket on purpose: 4001, 4003 or 1008. */
  | 'rejected'
  /** An HTTP request (polling, SSE health check) failed or got a non-success status. */
  | 'http'
  /** A transport could not even be created (e.g. a Content Security Policy forbids the URL). */
  | 'transport'
  /** `getToken()` threw or rejected. */
  | 'token'
  /** An `on`/`onType`/`subscribe` callback threw; delivery went on. */
  | 'handler'
  /** The server sent something that is not valid protocol. */
  | 'protocol';

export interface PushlogErrorDetails {
  readonly kind: PushlogErrorKind;
  /** The server's machine code when there is one, else a client-side code. */
  readonly code: string;
  readonly message: string;
  readonly transport?: TransportKind;
  readonly status?: number;
  readonly closeCode?: number;
  readonly requestId?: string;
}

export class PushlogError extends Error implements PushlogErrorDetails {
  readonly kind: PushlogErrorKind;
  readonly code: string;
  readonly transport?: TransportKind;
  readonly status?: number;
  readonly closeCode?: number;
  readonly requestId?: string;

  constructor(details: PushlogErrorDetails, options?: { cause?: unknown }) {
    super(details.message, options);
    this.name = 'PushlogError';
    this.kind = details.kind;
    this.code = details.code;
    if (details.transport !== undefined) this.transport = details.transport;
    if (details.status !== undefined) this.status = details.status;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
    if (details.requestId !== undefined) this.requestId = details.requestId;
  }

  /** A structured-clone-safe copy, for relaying to other tabs. */
  toDetails(): PushlogErrorDetails {
    const { kind, code, message, transport, status, closeCode, requestId } = this;
    return {
      kind,
      code,
      message,
      ...(transport === undefined ? {} : { transport }),
      ...(status === undefined ? {} : { status }),
      ...(closeCode === undefined ? {} : { closeCode }),
      ...(requestId === undefined ? {} : { requestId }),
    };
  }
}
