/**
 * Which tab holds the connection. Two implementations of one idea, "exactly
 * one tab per scope leads, and another takes over when it goes":
 *
 * - `lockElection`, on the Web Locks API: the leader is whoever holds an
 *   exclusive lock; the others wait in the lock's queue. The browser releases
 *   the lock when the tab closes or crashes, so hand-over is immediate and
 *   two leaders can never coexist. Preferred whenever `navigator.locks` exists.
 * - `channelElection`, on BroadcastChannel alone, for browsers without Web
 *   Locks: the leader announces itself every heartbeat; a tab that hears no
 *   leader for three heartbeats claims leadership; if two claim at once, the
 *   lower tab id wins and the other steps down (its duplicate events are
 *   dropped by every tab's de-duplication, so the overlap is harmless).
 */

import { Timer } from '../clock.js';
import type { Clock } from '../clock.js';
import type { BroadcastChannelLike, LockManagerLike } from '../platform.js';

export interface LeaderElection {
  /** Starts campaigning; `onChange(true)` when this tab leads, `false` when it must step down. */
  start(onChange: (leading: boolean) => void): void;
  /** Leaves the election, handing leadership on if this tab has it. */
  stop(): void;
}

export function lockElection(locks: LockManagerLike, name: string): LeaderElection {
  const waiting = new AbortController();
  let release: (() => void) | undefined;
  let stopped = false;
  return {
    start(onChange) {
      locks
        .request(name, { signal: waiting.signal }, () => {
          if (stopped) return Promise.resolve();
          onChange(true);
          // Held until `stop()`, or until the browser drops it with the tab.
          return new Promise<void>((resolve) => {
            release = resolve;
          });
        })
        // Rejects with AbortError when stopped while still queued.
        .catch(() => {});
    },
    stop() {
      stopped = true;
      waiting.abort();
      release?.();
    },
  };
}

export interface ChannelElectionOptions {
  /** A channel used for the election only. */
  readonly channel: BroadcastChannelLike;
  readonly clock: Clock;
  /** Unique per tab; the lowest id wins a tie. */
  readonly tabId: string;
  readonly heartbeatMs: number;
}

type ElectionMessage = { readonly type: 'heartbeat' | 'who-leads' | 'resign'; readonly from: string };

/** Heartbeats a leader may miss before another tab takes over. */
const MISSED_HEARTBEATS = 3;

export function channelElection(options: ChannelElectionOptions): LeaderElection {
  const { channel, clock, tabId, heartbeatMs } = options;
  const ticker = new Timer(clock);
  let leading = false;
  let stopped = false;
  let lastLeaderSeen = 0;
  let notify: (leading: boolean) => void = () => {};

  const post = (type: ElectionMessage['type']) => {
    try {
      channel.postMessage({ type, from: tabId } satisfies ElectionMessage);
    } catch {
      // The channel is closed: the tab is going away.
    }
  };

  const lead = () => {
    leading = true;
    post('heartbeat');
    notify(true);
  };

  const tick = () => {
    if (stopped) return;
    if (leading) post('heartbeat');
    else if (clock.now() - lastLeaderSeen >= MISSED_HEARTBEATS * heartbeatMs) lead();
    ticker.start(heartbeatMs, tick);
  };

  const receive = (data: unknown) => {
    if (stopped || !isElectionMessage(data) || data.from === tabId) return;
    switch (data.type) {
      case 'heartbeat':
        if (!leading) {
          lastLeaderSeen = clock.now();
        } else if (data.from < tabId) {
          leading = false;
          lastLeaderSeen = clock.now();
          notify(false);
        } else {
          // Tell the other claimant at once that it lost.
          post('heartbeat');
        }
        return;
      case 'who-leads':
        if (leading) post('heartbeat');
        return;
      case 'resign':
        if (!leading) {
          lastLeaderSeen = -Infinity;
          tick();
        }
        return;
    }
  };

  return {
    start(onChange) {
      notify = onChange;
      channel.onmessage = (message) => receive(message.data);
      // Ask, and claim after one heartbeat if nobody answers: a lone tab
      // should not wait three heartbeats for a connection.
      lastLeaderSeen = clock.now() - (MISSED_HEARTBEATS - 1) * heartbeatMs;
      post('who-leads');
      ticker.start(heartbeatMs, tick);
    },
    stop() {
      if (stopped) return;
      if (leading) post('resign');
      stopped = true;
      leading = false;
      ticker.cancel();
      channel.onmessage = null;
      channel.close();
    },
  };
}

function isElectionMessage(data: unknown): data is ElectionMessage {
  if (typeof data !== 'object' || data === null) return false;
  const { type, from } = data as Record<string, unknown>;
  return (type === 'heartbeat' || type === 'who-leads' || type === 'resign') && typeof from === 'string';
}
