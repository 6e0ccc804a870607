/**
 * The browser APIs the client drives, as the smallest interfaces it needs.
 *
 * Every one of them can be passed in through the options. That is how the
 * tests run the whole client in Node with fakes, and how an app can supply
 * a polyfill or a wrapped implementation. The defaults are looked up on
 * `globalThis` when `connect()` is called.
 */

/**
 * Callback properties are declared through a method signature so that the
 * DOM's own classes (whose callbacks take richer event types) are assignable
 * to these interfaces; see the compile-time checks at the end of the file.
 */
type Callback<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

export interface WebSocketLike {
  onopen: Callback<unknown> | null;
  onmessage: Callback<{ readonly data: unknown }> | null;
  onclose: Callback<{ readonly code: number; readonly reason: string }> | null;
  onerror: Callback<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface EventSourceLike {
  onopen: Callback<unknown> | null;
  onmessage: Callback<{ readonly data: string }> | null;
  onerror: Callback<unknown> | null;
  addEventListener(type: string, listener: Callback<{ readonly data: string }>): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface ResponseLike {
  readonly status: number;
  json(): Promise<unknown>;
}

export type FetchLike = (
  url: string,
  init: { headers: Record<string, string>; signal: AbortSignal; cache: 'no-store' },
) => Promise<ResponseLike>;

/** `localStorage`, `sessionStorage`, or anything with the same two methods. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** `navigator.locks` (the Web Locks API). */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

export interface BroadcastChannelLike {
  onmessage: Callback<{ readonly data: unknown }> | null;
  postMessage(message: unknown): void;
  close(): void;
}

export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike;

/** Whether the device has a network, and when that changes. */
export interface NetworkMonitor {
  isOnline(): boolean;
  subscribe(listener: (online: boolean) => void): () => void;
}

export const alwaysOnline: NetworkMonitor = {
  isOnline: () => true,
  subscribe: () => () => {},
};

/**
 * `navigator.onLine` plus the `online`/`offline` window events. `onLine ===
 * false` is reliable (no network at all); `true` only means "maybe", which
 * is why the client still treats failures as failures while "online".
 */
export function browserNetwork(): NetworkMonitor | undefined {
  const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
  const target = globalThis as {
    addEventListener?: (type: string, listener: () => void) => void;
    removeEventListener?: (type: string, listener: () => void) => void;
  };
  if (typeof nav?.onLine !== 'boolean' || typeof target.addEventListener !== 'function') {
    return undefined;
  }
  return {
    isOnline: () => nav.onLine !== false,
    subscribe(listener) {
      const online = () => listener(true);
      const offline = () => listener(false);
      target.addEventListener?.('online', online);
      target.addEventListener?.('offline', offline);
      return () => {
        target.removeEventListener?.('online', online);
        target.removeEventListener?.('offline', offline);
      };
    },
  };
}

/** What `globalThis` provides, each `undefined` where it is missing. */
export function globalPlatform() {
  const g = globalThis as Record<string, unknown> & { navigator?: { locks?: unknown } };
  const fetchFn = typeof g['fetch'] === 'function' ? (g['fetch'] as FetchLike) : undefined;
  return {
    WebSocket: g['WebSocket'] as WebSocketConstructor | undefined,
    EventSource: g['EventSource'] as EventSourceConstructor | undefined,
    // Bound: browsers throw "Illegal invocation" for a detached `fetch`.
    fetch: fetchFn?.bind(globalThis),
    BroadcastChannel: g['BroadcastChannel'] as BroadcastChannelConstructor | undefined,
    locks: g.navigator?.locks as LockManagerLike | undefined,
    isDocument: typeof g['document'] === 'object' && g['document'] !== null,
  };
}

// Compile-time proof that the real browser classes fit the interfaces above,
// so an app can pass `WebSocket`, `EventSource`, `fetch`, `localStorage`,
// `navigator.locks` or `BroadcastChannel` without a cast.
type Fits<A, B> = A extends B ? true : false;
type Assert<T extends true> = T;
export type DomClassesFit = [
  Assert<Fits<typeof WebSocket, WebSocketConstructor>>,
  Assert<Fits<typeof EventSource, EventSourceConstructor>>,
  Assert<Fits<typeof fetch, FetchLike>>,
  Assert<Fits<Storage, StorageLike>>,
  Assert<Fits<LockManager, LockManagerLike>>,
  Assert<Fits<typeof BroadcastChannel, BroadcastChannelConstructor>>,
];
