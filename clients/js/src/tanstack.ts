/**
 * TanStack Query adapter: push events invalidate the queries they affect.
 *
 * Deliberately typed structurally (any object with `invalidateQueries`), so
 * the client has no dependency on TanStack and works with any of its
 * framework flavours, or with another cache that has the same method.
 */

import type { PushEvent } from './event.js';
import type { Unsubscribe } from './state.js';

export type QueryKey = readonly unknown[];

export interface QueryInvalidator {
  invalidateQueries(filters?: { queryKey: QueryKey }): unknown;
}

/** The part of a client the adapter uses. */
export interface EventSourceForQueries {
  on(pattern: string, handler: (event: PushEvent) => void): Unsubscribe;
  onReset(listener: () => void): Unsubscribe;
}

/**
 * Keys are entity kinds (`event.entity.kind`) or event types (`event.type`);
 * values are the query key under which that data is cached.
 */
export type InvalidationMapping = Readonly<Record<string, QueryKey>>;

/**
 * For each event, invalidates `[...key]` and, when the event names an
 * entity, `[...key, entity.id]`, for the key of its entity kind and the key
 * of its type. A reset invalidates every query: the app's cached state can no
 * longer be brought up to date by events. Returns a function that stops it.
 *
 * ```ts
 * invalidateOnEvents(client, queryClient, { fault: ['faults'], announcement: ['announcements'] });
 * ```
 */
export function invalidateOnEvents(
  client: EventSourceForQueries,
  queryClient: QueryInvalidator,
  mapping: InvalidationMapping,
): Unsubscribe {
  const invalidate = (event: PushEvent) => {
    const seen = new Set<string>();
    const keys: QueryKey[] = [];
    const add = (key: QueryKey) => {
      // The same key twice (kind and type both mapped to it) is one call.
      const id = JSON.stringify(key);
      if (!seen.has(id)) {
        seen.add(id);
        keys.push(key);
      }
    };
    for (const name of [event.entity?.kind, event.type]) {
      const key = name === undefined ? undefined : lookup(mapping, name);
      if (!key) continue;
      add([...key]);
      if (event.entity) add([...key, event.entity.id]);
    }
    for (const queryKey of keys) void queryClient.invalidateQueries({ queryKey });
  };
  const stopEvents = client.on('*', invalidate);
  const stopResets = client.onReset(() => void queryClient.invalidateQueries());
  return () => {
    stopEvents();
    stopResets();
  };
}

function lookup(mapping: InvalidationMapping, name: string): QueryKey | undefined {
  return Object.prototype.hasOwnProperty.call(mapping, name) ? mapping[name] : undefined;
}
