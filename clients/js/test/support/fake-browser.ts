/**
 * The cross-tab parts of a browser: a Web Locks manager and BroadcastChannel,
 * shared by named tabs. `closeTab` does what the browser does when a tab is
 * closed or crashes: releases its locks, drops its queued lock requests,
 * closes its channels, and drops the messages it had posted but not yet
 * delivered, all without running any more of that tab's code.
 */

import type { BroadcastChannelLike, LockManagerLike } from '../../src/platform.js';

interface LockRequest {
  readonly tab: string;
  readonly name: string;
  readonly grant: () => void;
  readonly abort: () => void;
}

interface Channel {
  readonly tab: string;
  readonly name: string;
  closed: boolean;
  onmessage: ((event: { data: unknown }) => void) | null;
}

export class FakeBrowser {
  private readonly holders = new Map<string, { tab: string; release: () => void }>();
  private readonly queue: LockRequest[] = [];
  private readonly channels: Channel[] = [];
  private readonly closedTabs = new Set<string>();
  private held: (() => void)[] | null = null;

  /** `navigator.locks` as seen from `tab`. */
  locks(tab: string): LockManagerLike {
    return {
      request: (name, options, callback) =>
        new Promise((resolve, reject) => {
          const request: LockRequest = {
            tab,
            name,
            grant: () => {
              let released = false;
              const release = () => {
                if (released) return;
                released = true;
                if (this.holders.get(name)?.tab === tab) this.holders.delete(name);
                this.grantNext(name);
              };
              this.holders.set(name, { tab, release });
              Promise.resolve(callback({ name, mode: 'exclusive' })).then(
                (value) => {
                  release();
                  resolve(value);
                },
                (error: unknown) => {
                  release();
                  reject(error);
                },
              );
            },
            abort: () => reject(new DOMException('aborted', 'AbortError')),
          };
          options.signal?.addEventListener('abort', () => {
            const index = this.queue.indexOf(request);
            if (index >= 0) {
              this.queue.splice(index, 1);
              request.abort();
            }
          });
          this.queue.push(request);
          this.grantNext(name);
        }),
    };
  }

  /** The `BroadcastChannel` constructor of `tab`. */
  BroadcastChannel(tab: string): new (name: string) => BroadcastChannelLike {
    const browser = this;
    return class implements BroadcastChannelLike {
      private readonly channel: Channel;
      constructor(name: string) {
        this.channel = { tab, name, closed: false, onmessage: null };
        browser.channels.push(this.channel);
      }
      get onmessage() {
        return this.channel.onmessage;
      }
      set onmessage(listener) {
        this.channel.onmessage = listener;
      }
      postMessage(message: unknown): void {
        if (this.channel.closed) throw new DOMException('closed', 'InvalidStateError');
        const data = structuredClone(message);
        const targets = browser.channels.filter((c) => c !== this.channel && c.name === this.channel.name);
        // Delivered later, like the real thing; lost if the sender's tab is
        // gone by then.
        const deliver = () => {
          if (browser.closedTabs.has(tab)) return;
          for (const target of targets) if (!target.closed) target.onmessage?.({ data });
        };
        if (browser.held) browser.held.push(deliver);
        else queueMicrotask(deliver);
      }
      close(): void {
        this.channel.closed = true;
      }
    };
  }

  /** Messages posted from now on wait until `deliverHeld()`: tabs that cannot hear each other. */
  holdMessages(): void {
    this.held = [];
  }

  deliverHeld(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const deliver of held) deliver();
  }

  closeTab(tab: string): void {
    this.closedTabs.add(tab);
    for (const channel of this.channels) if (channel.tab === tab) channel.closed = true;
    for (let i = this.queue.length - 1; i >= 0; i -= 1) if (this.queue[i]?.tab === tab) this.queue.splice(i, 1);
    for (const [, holder] of [...this.holders]) if (holder.tab === tab) holder.release();
  }

  lockHolder(name: string): string | undefined {
    return this.holders.get(name)?.tab;
  }

  private grantNext(name: string): void {
    if (this.holders.has(name)) return;
    const index = this.queue.findIndex((r) => r.name === name);
    if (index < 0) return;
    const [request] = this.queue.splice(index, 1);
    request?.grant();
  }
}
