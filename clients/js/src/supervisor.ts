/**
 * The supervisor keeps one session alive: it decides which transport to use,
 * when to retry, when to fall back and when to upgrade again. Transports only
 * speak their wire format; the pipeline only applies what arrives. This is
 * the one place where the client's recovery policy lives.
 *
 * The policy:
 * - Transports form a ladder, preferred first (WebSocket → SSE → polling by
 *   default). A session that fails before it opens, in a way that points at
 *   the transport itself, counts against its rung; after `fallbackAfter` such
 *   failures in a row the client steps down a rung at once.
 * - Every other retry waits a full-jitter backoff delay. The backoff (and the
 *   failure count) resets only after a session stayed up for
 *   `stableAfterMs`, so a connection that opens and drops again at once
 *   still backs off instead of hammering the server.
 * - While below the top rung and live, the client tries the preferred
 *   transport every `upgradeIntervalMs`, in parallel. Only once that probe
 *   is live does it replace the fallback session, so an upgrade never costs
 *   a moment without a connection.
 * - Every session starts from the pipeline's cursor; the transports put it
 *   in `since`.
 * - When the server says the cursor has expired (the log was pruned past
 *   it), the session is closed and the entity index is asked what changed
 *   since the cursor (`/events/changes`). The app gets those entities, the
 *   cursor moves to the head of that answer, and a new session resumes
 *   from there: whatever was committed after the answer is replayed by the
 *   stream, so nothing falls between the two. Only when the index cannot
 *   serve the cursor either does the app get a plain reset.
 */

import type { Backoff } from './backoff.js';
import type { ChangesOutcome } from './changes.js';
import { Timer } from './clock.js';
import type { Clock } from './clock.js';
import { PushlogError } from './errors.js';
import type { ChangesReport, PushEvent, ResetInfo } from './event.js';
import type { NetworkMonitor } from './platform.js';
import type { ConnectionSnapshot, TransportKind } from './state.js';
import type { OpenSession, Session, SessionContext, SessionEnd } from './transports/session.js';

export interface SupervisorOptions {
  /** Transports in order of preference; never empty. */
  readonly ladder: readonly TransportKind[];
  readonly transports: Readonly<Partial<Record<TransportKind, OpenSession>>>;
  readonly fallbackAfter: number;
  readonly backoff: Backoff;
  readonly stableAfterMs: number;
  readonly connectTimeoutMs: number;
  readonly upgradeIntervalMs: number;
  readonly clock: Clock;
  readonly network: NetworkMonitor;
  readonly getToken: () => Promise<string | undefined>;
  /**
   * `/events/changes` after a cursor, all pages; `undefined` where there is
   * no `fetch`, and an expired cursor is then a plain reset.
   */
  readonly changesSince: ChangesSince | undefined;
}

export type ChangesSince = (
  since: number,
  token: string | undefined,
  signal: AbortSignal,
) => Promise<ChangesOutcome>;

export type StatusPatch = Partial<
  Pick<ConnectionSnapshot, 'state' | 'transport' | 'reconnects' | 'missedOnLastReconnect'>
>;

/**
 * Where a supervisor's results go: straight into this tab's delivery, or,
 * in a leader tab, into delivery and out to the other tabs.
 */
export interface Pipeline {
  cursor(): number | null;
  /** First contact without a cursor: treat everything up to `head` as seen. */
  startFrom(head: number): void;
  /** Applies the event unless it is a duplicate; returns whether it was new. */
  deliver(event: PushEvent): boolean;
  /** Moves the cursor forward without an event (polling's `next_since`). */
  skipTo(id: number): void;
  reset(info: ResetInfo): void;
  /** An expired cursor was served by the entity index: move to `report.head`, tell the app. */
  changedWhileAway(report: ChangesReport): void;
  error(error: PushlogError): void;
  status(patch: StatusPatch): void;
}

/** Where a supervisor taking over from another tab starts. */
export interface Resumption {
  /** A connection existed before (in another tab): the first one is a reconnect. */
  readonly resuming: boolean;
  readonly reconnects: number;
}

/** One session and what the supervisor knows about it. */
interface Attempt {
  readonly kind: TransportKind;
  role: 'primary' | 'probe';
  opened: boolean;
  session: Session | undefined;
}

function newAttempt(kind: TransportKind, role: Attempt['role']): Attempt {
  return { kind, role, opened: false, session: undefined };
}

type TokenResult = { readonly ok: true; readonly token: string | undefined } | { readonly ok: false };

export class Supervisor {
  private rung = 0;
  private failuresOnRung = 0;
  private primary: Attempt | undefined;
  private probe: Attempt | undefined;
  private everOpened: boolean;
  private anyEnded = false;
  private reconnects: number;
  private replaying = false;
  private appliedInReplay = 0;
  private running = false;
  private offline = false;
  /** The next session continues the one a catch-up closed: it is no reconnect. */
  private resumingAfterCatchUp = false;
  /** The `/events/changes` request under way, aborted with the sessions. */
  private catchUpRequest: AbortController | undefined;
  /** Bumped whenever sessions are dropped, so stale awaits can tell. */
  private generation = 0;
  private unsubscribeNetwork: (() => void) | undefined;
  private readonly retryTimer: Timer;
  private readonly connectTimer: Timer;
  private readonly stableTimer: Timer;
  private readonly upgradeTimer: Timer;
  private readonly probeTimer: Timer;

  constructor(
    private readonly options: SupervisorOptions,
    private readonly pipeline: Pipeline,
    resumption: Resumption = { resuming: false, reconnects: 0 },
  ) {
    if (options.ladder.length === 0) throw new TypeError('pushlog: no transport available');
    this.everOpened = resumption.resuming;
    this.anyEnded = resumption.resuming;
    this.reconnects = resumption.reconnects;
    const timer = () => new Timer(options.clock);
    this.retryTimer = timer();
    this.connectTimer = timer();
    this.stableTimer = timer();
    this.upgradeTimer = timer();
    this.probeTimer = timer();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribeNetwork = this.options.network.subscribe((online) => this.networkChanged(online));
    if (this.options.network.isOnline()) void this.open();
    else this.goOffline();
  }

  /** Drops the current session and starts over from the preferred transport, now. */
  reconnect(): void {
    if (!this.running) return;
    this.offline = false;
    this.startOver();
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.unsubscribeNetwork?.();
    this.dropAll();
    this.pipeline.status({ state: 'offline', transport: null });
  }

  private startOver(): void {
    this.dropAll();
    this.rung = 0;
    this.failuresOnRung = 0;
    this.options.backoff.reset();
    void this.open();
  }

  private networkChanged(online: boolean): void {
    if (!this.running) return;
    if (!online) this.goOffline();
    else if (this.offline) {
      this.offline = false;
      // Whatever failed before was probably the missing network.
      this.startOver();
    }
  }

  private goOffline(): void {
    this.offline = true;
    this.dropAll();
    this.pipeline.status({ state: 'offline', transport: null });
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    const again = this.everOpened || this.anyEnded;
    this.pipeline.status({ state: again ? 'reconnecting' : 'connecting', transport: null });
    const token = await this.token();
    if (generation !== this.generation) return;
    if (!token.ok) {
      this.retryAfter({ opened: false, retry: 'backoff', transportFailure: false });
      return;
    }
    const attempt = newAttempt(this.options.ladder[this.rung] ?? 'websocket', 'primary');
    this.primary = attempt;
    this.begin(attempt, token.token);
    if (this.primary !== attempt) return;
    this.connectTimer.start(this.options.connectTimeoutMs, () => {
      if (this.primary !== attempt || attempt.opened) return;
      attempt.session?.close();
      this.ended(attempt, { opened: false, retry: 'backoff', transportFailure: true });
    });
  }

  /** Opens the attempt's session; the attempt is registered first, so callbacks find it. */
  private begin(attempt: Attempt, token: string | undefined): void {
    const open = this.options.transports[attempt.kind];
    try {
      if (!open) throw new TypeError(`no ${attempt.kind} transport configured`);
      attempt.session = open(this.context(attempt, token));
    } catch (cause) {
      // `new WebSocket()` throws synchronously when, say, a Content Security
      // Policy forbids the URL: a failure of this transport like any other.
      const { kind } = attempt;
      const message = `could not open ${kind}: ${String(cause)}`;
      const error = new PushlogError(
        { kind: 'transport', code: 'transport_unavailable', message, transport: kind },
        { cause },
      );
      this.ended(attempt, { opened: false, retry: 'backoff', transportFailure: true, error });
    }
  }

  private context(attempt: Attempt, token: string | undefined): SessionContext {
    const live = () => this.primary === attempt;
    const { pipeline } = this;
    return {
      token,
      refreshToken: async () => {
        const result = await this.token();
        if (!result.ok) throw new Error('token unavailable');
        return result.token;
      },
      cursor: () => pipeline.cursor(),
      events: {
        onHead: (head) => {
          if (pipeline.cursor() === null) pipeline.startFrom(head);
        },
        onOpen: () => this.opened(attempt),
        onEvent: (event) => {
          if (live() && pipeline.deliver(event) && this.replaying) this.appliedInReplay += 1;
        },
        onCaughtUp: () => {
          if (!live() || !this.replaying) return;
          this.replaying = false;
          pipeline.status({ missedOnLastReconnect: this.appliedInReplay });
        },
        onCursor: (id) => {
          if (live()) pipeline.skipTo(id);
        },
        onReset: (info) => {
          if (!live()) return;
          if (info.reason === 'cursor_expired') void this.catchUp(info);
          else pipeline.reset(info);
        },
        // A failing upgrade probe is routine; only the live session's
        // errors are worth the app's attention.
        onError: (error) => {
          if (attempt.role === 'primary') pipeline.error(error);
        },
        onClose: (end) => this.ended(attempt, end),
      },
    };
  }

  private opened(attempt: Attempt): void {
    let upgraded = false;
    if (attempt.role === 'probe') {
      if (this.probe !== attempt) return;
      // The preferred transport is back: it replaces the fallback session.
      // It subscribes from the cursor right after this returns, and anything
      // both sessions deliver is dropped as a duplicate.
      this.probe = undefined;
      this.probeTimer.cancel();
      this.primary?.session?.close();
      this.primary = attempt;
      attempt.role = 'primary';
      this.rung = 0;
      this.failuresOnRung = 0;
      upgraded = true;
    }
    if (this.primary !== attempt) return;
    attempt.opened = true;
    this.connectTimer.cancel();
    if (this.everOpened && !upgraded && !this.resumingAfterCatchUp) this.reconnects += 1;
    this.resumingAfterCatchUp = false;
    this.everOpened = true;
    this.replaying = true;
    this.appliedInReplay = 0;
    this.pipeline.status({
      state: this.rung === 0 ? 'connected' : 'fallback',
      transport: attempt.kind,
      reconnects: this.reconnects,
      // Unknown until this session's replay is done (and for good on SSE,
      // which has no "caught up" mark). Cleared here so that every catch-up
      // shows as a change, even one that brings the same count as the last.
      missedOnLastReconnect: null,
    });
    this.stableTimer.start(this.options.stableAfterMs, () => {
      this.options.backoff.reset();
      this.failuresOnRung = 0;
    });
    this.scheduleUpgrade();
  }

  private ended(attempt: Attempt, end: SessionEnd): void {
    if (attempt.role === 'probe') {
      if (this.probe !== attempt) return;
      this.probe = undefined;
      this.probeTimer.cancel();
      this.scheduleUpgrade();
      return;
    }
    if (this.primary !== attempt) return;
    this.dropAll();
    this.resumingAfterCatchUp = false;
    if (end.error) this.pipeline.error(end.error);
    if (!this.running || this.offline) return;
    this.retryAfter(end);
  }

  private retryAfter(end: SessionEnd): void {
    this.anyEnded = true;
    if (!end.opened && end.transportFailure) {
      this.failuresOnRung += 1;
      if (this.failuresOnRung >= this.options.fallbackAfter && this.rung < this.options.ladder.length - 1) {
        this.rung += 1;
        this.failuresOnRung = 0;
        // A fresh transport deserves quick first tries of its own.
        this.options.backoff.reset();
        void this.open();
        return;
      }
    }
    this.pipeline.status({ state: 'reconnecting', transport: null });
    // `now` only for a session that worked: a server that keeps refusing
    // before the session opens must not be retried in a tight loop.
    const delay = end.retry === 'now' && end.opened ? 0 : this.options.backoff.next();
    if (delay === 0) void this.open();
    else this.retryTimer.start(delay, () => void this.open());
  }

  /**
   * The log has pruned past the cursor. The session is closed first: it
   * would go on from the reset's head, skipping what changed before it.
   */
  private async catchUp(reset: ResetInfo): Promise<void> {
    const since = this.pipeline.cursor();
    const { changesSince } = this.options;
    if (since === null || !changesSince) {
      this.pipeline.reset(reset);
      return;
    }
    this.dropAll();
    const generation = this.generation;
    this.pipeline.status({ state: 'reconnecting', transport: null });
    const token = await this.token();
    if (generation !== this.generation) return;
    if (!token.ok) {
      this.retryAfter({ opened: false, retry: 'backoff', transportFailure: false });
      return;
    }
    const request = new AbortController();
    this.catchUpRequest = request;
    const outcome = await changesSince(since, token.token, request.signal);
    if (generation !== this.generation) return;
    this.catchUpRequest = undefined;
    switch (outcome.kind) {
      case 'changes':
        this.pipeline.changedWhileAway(outcome.report);
        break;
      case 'gone':
        this.pipeline.reset(outcome.reset);
        break;
      case 'failed':
        this.pipeline.error(outcome.error);
        if (outcome.retryable) {
          // The next session meets the same expired cursor and tries again.
          this.retryAfter({ opened: false, retry: 'backoff', transportFailure: false });
          return;
        }
        // A server without the endpoint, or one that refuses it: the old way.
        this.pipeline.reset(reset);
        break;
    }
    this.resumingAfterCatchUp = true;
    void this.open();
  }

  private scheduleUpgrade(): void {
    if (this.rung === 0 || !this.primary?.opened) return;
    this.upgradeTimer.start(this.options.upgradeIntervalMs, () => void this.tryUpgrade());
  }

  private async tryUpgrade(): Promise<void> {
    if (this.probe || this.rung === 0 || !this.primary?.opened) return;
    const generation = this.generation;
    const token = await this.token();
    if (generation !== this.generation || this.probe) return;
    if (!token.ok) {
      this.scheduleUpgrade();
      return;
    }
    const probe = newAttempt(this.options.ladder[0] ?? 'websocket', 'probe');
    this.probe = probe;
    this.begin(probe, token.token);
    if (this.probe !== probe) return;
    this.probeTimer.start(this.options.connectTimeoutMs, () => {
      if (this.probe !== probe) return;
      this.probe = undefined;
      probe.session?.close();
      this.scheduleUpgrade();
    });
  }

  /** Closes every session and cancels every timer; stale callbacks are ignored. */
  private dropAll(): void {
    this.generation += 1;
    const { primary, probe } = this;
    this.primary = undefined;
    this.probe = undefined;
    this.catchUpRequest?.abort();
    this.catchUpRequest = undefined;
    primary?.session?.close();
    probe?.session?.close();
    this.retryTimer.cancel();
    this.connectTimer.cancel();
    this.stableTimer.cancel();
    this.upgradeTimer.cancel();
    this.probeTimer.cancel();
  }

  private async token(): Promise<TokenResult> {
    try {
      return { ok: true, token: await this.options.getToken() };
    } catch (cause) {
      this.pipeline.error(
        new PushlogError(
          { kind: 'token', code: 'token_unavailable', message: `getToken() failed: ${String(cause)}` },
          { cause },
        ),
      );
      return { ok: false };
    }
  }
}
