/**
 * A WebSocket whose server side the test plays: `accept()` sends `welcome`,
 * `send()` pushes a server message, `drop()` closes with a code. What the
 * client sent is in `sent`, parsed.
 */

import type { WebSocketLike } from '../../src/platform.js';

export class FakeSocket implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  /** Set when the client closed the socket. */
  closedWith: { code: number | undefined; reason: string | undefined } | null = null;

  constructor(readonly url: string) {}

  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  // Client side.
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    if (this.closedWith) return;
    this.closedWith = { code, reason };
    this.onclose?.({ code: code ?? 1005, reason: reason ?? '' });
  }

  // Server side.
  accept(welcome: { head?: number; heartbeat_ms?: number } = {}): void {
    this.onopen?.({});
    this.push({ type: 'welcome', connection_id: 'conn-1', head: welcome.head ?? 0, heartbeat_ms: welcome.heartbeat_ms ?? 30_000 });
  }

  /** Server → client message. */
  push(message: unknown): void {
    this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }

  /** Sends events as the server would, each in an `event` frame. */
  events(...events: unknown[]): void {
    for (const event of events) this.push({ type: 'event', event });
  }

  caughtUp(head = 0): void {
    const request = this.lastSent('subscribe')?.['request_id'];
    this.push({ type: 'caught_up', head, request_id: request });
  }

  /** The connection ends from the server's side (or the network's: 1006). */
  drop(code = 1006, reason = ''): void {
    this.onerror?.({});
    this.onclose?.({ code, reason });
  }

  lastSent(type: string): Record<string, unknown> | undefined {
    return this.sent.filter((m) => m['type'] === type).at(-1);
  }
}

/** A WebSocket constructor recording every socket it made. */
export function fakeWebSocket(): { WebSocket: new (url: string) => FakeSocket; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  class WebSocket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket, sockets };
}
