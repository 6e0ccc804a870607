/**
 * A tab's initial state (`initialState: true`): the latest event of every
 * entity on its topics, read before the tab goes live.
 *
 * Per tab, not per connection: a tab that joins another tab's connection
 * hours later needs the state as it is now, not as the leader read it. The
 * tab listens to the relay before it reads (its `LocalPipeline` holds what
 * arrives), so the state's head is at or past anything the leader had
 * relayed before, and what comes after it is applied in order once it is in.
 */

import type { Backoff } from './backoff.js';
import { Timer } from './clock.js';
import type { Clock } from './clock.js';
import type { ChangesOutcome } from './changes.js';
import { PushlogError } from './errors.js';
import type { ChangesReport } from './event.js';

export interface InitialStateOptions {
  /** `/events/changes?since=0`, every page. */
  readonly read: (token: string | undefined, signal: AbortSignal) => Promise<ChangesOutcome>;
  readonly getToken: () => Promise<string | undefined>;
  readonly backoff: Backoff;
  readonly clock: Clock;
  readonly onError: (error: PushlogError) => void;
}

/**
 * How the read ended: with the state, or `unavailable` when the server
 * cannot give it (no such endpoint, a refusal), which asking again would not
 * change; the tab then goes live without it, from now.
 */
export type InitialStateResult =
  | { readonly kind: 'state'; readonly report: ChangesReport }
  | { readonly kind: 'unavailable' };

/** Reads until it has an answer, retrying transient failures with backoff. */
export function loadInitialState(
  options: InitialStateOptions,
  done: (result: InitialStateResult) => void,
): { cancel(): void } {
  const retry = new Timer(options.clock);
  const request = new AbortController();
  let cancelled = false;

  const attempt = async () => {
    let outcome: ChangesOutcome;
    try {
      outcome = await options.read(await options.getToken(), request.signal);
    } catch (cause) {
      const message = `getToken() failed: ${String(cause)}`;
      outcome = {
        kind: 'failed',
        error: new PushlogError({ kind: 'token', code: 'token_unavailable', message }, { cause }),
        retryable: true,
      };
    }
    if (cancelled) return;
    switch (outcome.kind) {
      case 'changes':
        done({ kind: 'state', report: outcome.report });
        return;
      case 'gone': {
        // `since=0` is never older than the index; a server that says so
        // anyway is one to try again later.
        const message = `GET /events/changes?since=0 answered 410 ${outcome.reset.reason}`;
        options.onError(new PushlogError({ kind: 'http', code: outcome.reset.reason, message, status: 410 }));
        break;
      }
      case 'failed':
        options.onError(outcome.error);
        if (!outcome.retryable) {
          done({ kind: 'unavailable' });
          return;
        }
        break;
    }
    retry.start(options.backoff.next(), () => void attempt());
  };

  void attempt();
  return {
    cancel() {
      cancelled = true;
      retry.cancel();
      request.abort();
    },
  };
}
