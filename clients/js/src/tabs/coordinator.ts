/**
 * One connection per browser, not per tab. Tabs of one scope (same server,
 * same topics) elect a leader; the leader runs the only supervisor and
 * relays everything it produces to the others over a BroadcastChannel.
 * Every tab, the leader included, applies events through its own cursor and
 * de-duplication; resets and "changed while you were away" reports are
 * relayed the same way, in order with the events.
 *
 * Why a hand-over loses nothing: a follower's cursor only moves when it has
 * applied an event (or heard the leader's cursor, which is sent after the
 * events below it). When the leader goes, messages it had not sent yet are
 * simply not in the follower's cursor, so the follower, now leading, resumes
 * from an id at or before them and the server replays them. Anything it
 * then receives twice is dropped as a duplicate.
 */

import { PushlogError } from '../errors.js';
import type { ChangesReport, PushEvent, ResetInfo } from '../event.js';
import type { LocalPipeline } from '../local.js';
import type { BroadcastChannelLike } from '../platform.js';
import type { Pipeline, Resumption, StatusPatch } from '../supervisor.js';
import type { LeaderElection } from './election.js';
import { envelope, parseEnvelope } from './messages.js';
import type { RelayMessage } from './messages.js';

/** What the coordinator needs from a supervisor. */
export interface Leadership {
  start(): void;
  reconnect(): void;
  stop(): void;
}

export interface CoordinatorOptions {
  readonly tabId: string;
  /** The relay channel (the election may use one of its own). */
  readonly channel: BroadcastChannelLike;
  readonly election: LeaderElection;
  readonly local: LocalPipeline;
  readonly lead: (pipeline: Pipeline, resumption: Resumption) => Leadership;
}

export class TabCoordinator {
  private leading = false;
  private closed = false;
  private listening = false;
  /** Whether another tab has led before; then this tab's first connection is a reconnect. */
  private sawLeader = false;
  private supervisor: Leadership | undefined;
  private relay: RelayPipeline | undefined;

  constructor(private readonly options: CoordinatorOptions) {}

  start(): void {
    this.listen();
    this.campaign();
  }

  /**
   * Hears the leader's relay without taking part in the election yet: a tab
   * that reads its initial state first applies what it hears once it has it.
   */
  listen(): void {
    if (this.listening) return;
    this.listening = true;
    this.options.channel.onmessage = (message) => this.receive(message.data);
    this.options.local.status({ isLeader: false });
    this.post({ kind: 'hello' });
  }

  /** Joins the election: this tab may now hold the connection. */
  campaign(): void {
    this.listen();
    if (this.closed) return;
    this.options.election.start((leading) => (leading ? this.lead() : this.follow()));
  }

  reconnect(): void {
    if (this.supervisor) this.supervisor.reconnect();
    else this.post({ kind: 'reconnect' });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.leading) {
      this.post({ kind: 'leaving' });
      this.stepDown();
    }
    this.options.election.stop();
    this.options.channel.onmessage = null;
    this.options.channel.close();
    this.options.local.status({ state: 'offline', transport: null, isLeader: false });
  }

  private lead(): void {
    if (this.leading || this.closed) return;
    this.leading = true;
    const { local } = this.options;
    local.status({ isLeader: true });
    this.relay = new RelayPipeline(local, (message) => this.post(message));
    this.supervisor = this.options.lead(this.relay, {
      resuming: this.sawLeader,
      reconnects: local.snapshot().reconnects,
    });
    this.supervisor.start();
  }

  private follow(): void {
    if (!this.leading) return;
    this.stepDown();
    this.options.local.status({ isLeader: false, state: 'reconnecting', transport: null });
    this.post({ kind: 'hello' });
  }

  private stepDown(): void {
    this.leading = false;
    // Detached first: the supervisor reports `offline` as it stops, which is
    // true of it but not of the connection the tabs share.
    this.relay?.detach();
    this.supervisor?.stop();
    this.relay = undefined;
    this.supervisor = undefined;
  }

  private receive(data: unknown): void {
    const received = parseEnvelope(data);
    if (!received || received.from === this.options.tabId || this.closed) return;
    const { local } = this.options;
    const { message } = received;
    switch (message.kind) {
      case 'hello':
        if (this.leading) {
          this.post({ kind: 'status', status: statusOf(local) });
          const cursor = local.cursor();
          if (cursor !== null) this.post({ kind: 'cursor', id: cursor });
        }
        return;
      case 'reconnect':
        this.supervisor?.reconnect();
        return;
      // Events and cursors are applied in any role: if two leaders overlap
      // for a moment (channel election), de-duplication keeps it harmless.
      case 'event':
        this.sawLeader = true;
        local.deliver(message.event);
        return;
      case 'cursor':
        this.sawLeader = true;
        local.skipTo(message.id);
        return;
      case 'reset':
        if (!this.leading) local.reset(message.info);
        return;
      case 'changes':
        if (!this.leading) local.changedWhileAway(message.report);
        return;
      case 'status':
        this.sawLeader = true;
        if (!this.leading) local.status(message.status);
        return;
      case 'error':
        if (!this.leading) local.error(new PushlogError(message.error));
        return;
      case 'leaving':
        if (!this.leading) local.status({ state: 'reconnecting', transport: null });
        return;
    }
  }

  private post(message: RelayMessage): void {
    try {
      this.options.channel.postMessage(envelope(this.options.tabId, message));
    } catch {
      // A closed channel: this tab is going away anyway.
    }
  }
}

function statusOf(local: LocalPipeline): StatusPatch {
  const { state, transport, reconnects, missedOnLastReconnect } = local.snapshot();
  return { state, transport, reconnects, missedOnLastReconnect };
}

/** The leader's pipeline: applies locally, then tells the other tabs. */
class RelayPipeline implements Pipeline {
  private attached = true;

  constructor(
    private readonly local: LocalPipeline,
    private readonly post: (message: RelayMessage) => void,
  ) {}

  detach(): void {
    this.attached = false;
  }

  cursor(): number | null {
    return this.local.cursor();
  }

  startFrom(head: number): void {
    if (!this.attached) return;
    this.local.startFrom(head);
    this.postCursor();
  }

  deliver(event: PushEvent): boolean {
    if (!this.attached) return false;
    const fresh = this.local.deliver(event);
    if (fresh) this.post({ kind: 'event', event });
    return fresh;
  }

  skipTo(id: number): void {
    if (!this.attached) return;
    const before = this.local.cursor();
    this.local.skipTo(id);
    if (this.local.cursor() !== before) this.postCursor();
  }

  reset(info: ResetInfo): void {
    if (!this.attached) return;
    this.local.reset(info);
    this.post({ kind: 'reset', info });
  }

  changedWhileAway(report: ChangesReport): void {
    if (!this.attached) return;
    this.local.changedWhileAway(report);
    this.post({ kind: 'changes', report });
  }

  error(error: PushlogError): void {
    if (!this.attached) return;
    this.local.error(error);
    this.post({ kind: 'error', error: error.toDetails() });
  }

  status(patch: StatusPatch): void {
    if (!this.attached) return;
    this.local.status(patch);
    this.post({ kind: 'status', status: statusOf(this.local) });
  }

  private postCursor(): void {
    const cursor = this.local.cursor();
    if (cursor !== null) this.post({ kind: 'cursor', id: cursor });
  }
}
