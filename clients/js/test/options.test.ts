import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { connect } from '../src/connect.js';
import type { ConnectOptions } from '../src/options.js';
import { fakeWebSocket } from './support/fake-websocket.js';

const base: ConnectOptions = { url: 'https://push.example.com', shareAcrossTabs: false };

describe('options', () => {
  it('refuses what cannot work, at connect() rather than later', () => {
    const { WebSocket } = fakeWebSocket();
    const cases: [string, Partial<ConnectOptions>, RegExp][] = [
      ['an unusable url scheme', { url: 'ftp://push.example.com' }, /http\(s\) or ws\(s\)/],
      ['an empty topic list', { topics: [] }, /topics/],
      ['a token and getToken both', { token: 't', getToken: () => 't' }, /either token or getToken/],
      ['a negative interval', { pollIntervalMs: -5 }, /pollIntervalMs/],
      ['a cursor that is not an id', { since: 1.5 }, /since/],
      ['an unknown transport', { transport: 'carrier-pigeon' as never }, /unknown transport/],
      ['an empty type list', { types: [] }, /types/],
      ['an initial state and a start cursor both', { initialState: true, since: 5 }, /initialState/],
      ['an initial state without fetch', { initialState: true, fetch: undefined }, /initialState needs fetch/],
      ['tab sharing without BroadcastChannel', { shareAcrossTabs: true, BroadcastChannel: undefined }, /BroadcastChannel/],
    ];
    for (const [what, options, message] of cases) {
      const saved = globalThis.BroadcastChannel;
      const savedFetch = globalThis.fetch;
      try {
        if (options.shareAcrossTabs) (globalThis as { BroadcastChannel?: unknown }).BroadcastChannel = undefined;
        if ('fetch' in options) (globalThis as { fetch?: unknown }).fetch = undefined;
        assert.throws(() => connect({ ...base, WebSocket, ...options }), message, what);
      } finally {
        (globalThis as { BroadcastChannel?: unknown }).BroadcastChannel = saved;
        (globalThis as { fetch?: unknown }).fetch = savedFetch;
      }
    }
  });

  it('builds the WebSocket URL from the base, keeping a path prefix', async () => {
    const { WebSocket, sockets } = fakeWebSocket();
    const client = connect({ ...base, url: 'http://example.com/pushlog/', WebSocket, token: 'a b' });
    await new Promise((resolve) => setImmediate(resolve));
    client.close();
    assert.equal(sockets[0]?.url, 'ws://example.com/pushlog/ws?token=a+b');
  });
});
