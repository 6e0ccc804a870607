/**
 * TanStack Query adapter: push events invalidate the queries they affect.
 *
 * Deliberately typed structurally (any object with `invalidateQueries`), so
 * the client has no dependency on TanStack and works with any of its
 * framework flavours, or with another cache that has the same method.
 */

import type { ChangesReport, PushEvent } from './event.js';
import type { Unsubscribe } from './state.js';

export type QueryKey = readonly unknown[];

/** The part of TanStack's query filters the adapter uses. */
export interface QueryFilters {
  queryKey: QueryKey;
  predicate?: (query: { readonly queryKey: QueryKey }) => boolean;
}

export interface QueryInvalidator {
  invalidateQueries(filters?: QueryFilters): unknown;
}

/** The part of a client the adapter uses. */
export interface EventSourceForQueries {
  on(pattern: string, handler: (event: PushEvent) => void): Unsubscribe;
  onReset(listener: () => void): Unsubscribe;
  onChangedWhileAway(listener: (report: ChangesReport) => void): Unsubscribe;
}

/**
 * Keys are entity kinds (`event.entity.kind`) or event types (`event.type`);
 * values are the query key under which that data is cached.
 */
export type InvalidationMapping = Readonly<Record<string, QueryKey>>;

/**
 * Invalidates the queries an event affects, and only those. For the key
 * mapped to its entity kind or type, say `['faults']`, the queries under it
 * are read the usual way: `['faults']` and `['faults', {status: 'open'}]`
 * are lists, `['faults', '42', …]` is fault 42 (an id: a string or a
 * number). An event about fault 42 invalidates the lists and fault 42's
 * queries, not those of other faults; an event without an entity
 * invalidates everything under its key.
 *
 * After an expired cursor the client reports which entities changed
 * meanwhile; they are invalidated the same way, all at once (a deleted one
 * too), and nothing else is. A reset invalidates every query: the app's
 * cached state can no longer be brought up to date by events. Returns a
 * function that stops it.
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
  const invalidate = (events: readonly PushEvent[]) => {
    for (const filters of filtersFor(events, mapping)) void queryClient.invalidateQueries(filters);
  };
  const stopEvents = client.on('*', (event) => invalidate([event]));
  const stopChanges = client.onChangedWhileAway((report) => invalidate(report.entities));
  const stopResets = client.onReset(() => void queryClient.invalidateQueries());
  return () => {
    stopEvents();
    stopChanges();
    stopResets();
  };
}

/** What `events` changed under one mapped key. */
interface Affected {
  readonly key: QueryKey;
  /** The entities named, by id. */
  readonly ids: Set<string>;
  /** An event without an entity: everything under the key may have changed. */
  everything: boolean;
}

/**
 * One filter per mapped key that `events` touch (a list shared by a hundred
 * changed entities is one call), in the order first met.
 */
function filtersFor(events: readonly PushEvent[], mapping: InvalidationMapping): QueryFilters[] {
  const affected = new Map<string, Affected>();
  for (const event of events) {
    for (const name of [event.entity?.kind, event.type]) {
      const key = name === undefined ? undefined : lookup(mapping, name);
      if (!key) continue;
      const id = JSON.stringify(key);
      let entry = affected.get(id);
      if (!entry) {
        entry = { key, ids: new Set(), everything: false };
        affected.set(id, entry);
      }
      if (event.entity) entry.ids.add(event.entity.id);
      else entry.everything = true;
    }
  }
  return [...affected.values()].map(({ key, ids, everything }) => ({
    queryKey: [...key],
    // TanStack matches `queryKey` as a prefix before it asks the predicate;
    // the predicate checks it too, so it means the same to any other cache.
    predicate: ({ queryKey }) => {
      if (!startsWith(queryKey, key)) return false;
      if (everything) return true;
      const next = queryKey[key.length];
      // Not an entity's query: the list itself, or a list with filters.
      if (typeof next !== 'string' && typeof next !== 'number') return true;
      return ids.has(String(next));
    },
  }));
}

function startsWith(queryKey: QueryKey, prefix: QueryKey): boolean {
  return prefix.every((part, i) => JSON.stringify(part) === JSON.stringify(queryKey[i]));
}

function lookup(mapping: InvalidationMapping, name: string): QueryKey | undefined {
  return Object.prototype.hasOwnProperty.call(mapping, name) ? mapping[name] : undefined;
}
