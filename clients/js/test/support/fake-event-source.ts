/** An EventSource whose server side the test plays. */

import type { EventSourceLike } from '../../src/platform.js';

export class FakeStream implements EventSourceLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closed = false;
  private readonly listeners = new Map<string, ((event: { data: string }) => void)[]>();

  constructor(readonly url: string) {}

  get params(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  addEventListener(type: string, listener: (event: { data: string }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  // Server side.
  open(): void {
    this.onopen?.({});
  }

  events(...events: unknown[]): void {
    for (const event of events) this.onmessage?.({ data: JSON.stringify(event) });
  }

  reset(data: unknown): void {
    for (const listener of this.listeners.get('reset') ?? []) listener({ data: JSON.stringify(data) });
  }

  fail(): void {
    this.onerror?.({});
  }
}

export function fakeEventSource(): { EventSource: new (url: string) => FakeStream; streams: FakeStream[] } {
  const streams: FakeStream[] = [];
  class EventSource extends FakeStream {
    constructor(url: string) {
      super(url);
      streams.push(this);
    }
  }
  return { EventSource, streams };
}
