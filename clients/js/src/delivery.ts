/**
 * Hands events to the app's handlers: each event once, in id order.
 *
 * The server already sends each connection's events in increasing id order,
 * but across reconnects, transport switches and tab hand-overs the same
 * event can arrive twice (a replay overlapping what was already received).
 * Since ids only grow, "drop every id at or below the cursor" is all the
 * de-duplication needed.
 */

import type { Cursor } from './cursor.js';
import type { PushEvent } from './event.js';
import type { Unsubscribe } from './state.js';
import { topicMatches } from './topics.js';

export type EventHandler = (event: PushEvent) => void;

interface Route {
  readonly matches: (event: PushEvent) => boolean;
  readonly handler: EventHandler;
}

export class Delivery {
  private routes: readonly Route[] = [];

  constructor(
    private readonly cursor: Cursor,
    /** Where a throwing handler is reported; it must not stop delivery. */
    private readonly report: (error: unknown) => void,
  ) {}

  /** Events whose topic matches `pattern`: exact, `prefix*` or `*`. */
  on(pattern: string, handler: EventHandler): Unsubscribe {
    return this.add({ matches: (event) => topicMatches(pattern, event.topic), handler });
  }

  /** Events of one `type`, e.g. `entity:updated`. */
  onType(type: string, handler: EventHandler): Unsubscribe {
    return this.add({ matches: (event) => event.type === type, handler });
  }

  /**
   * Delivers `event` unless it was already seen. The cursor moves before the
   * handlers run, so an event whose handler throws is still consumed: a
   * handler bug must not make the client replay (and re-fail) forever.
   */
  deliver(event: PushEvent): boolean {
    if (!this.cursor.advance(event.id)) return false;
    // A snapshot, so handlers may subscribe or unsubscribe while running.
    for (const route of this.routes) {
      if (!route.matches(event)) continue;
      try {
        route.handler(event);
      } catch (error) {
        this.report(error);
      }
    }
    return true;
  }

  private add(route: Route): Unsubscribe {
    this.routes = [...this.routes, route];
    return () => {
      this.routes = this.routes.filter((r) => r !== route);
    };
  }
}
