/**
 * The event as the server sends it, and the checks that turn untrusted JSON
 * into one. Parsing happens here, at the edge; the rest of the client only
 * sees well-formed `PushEvent`s and `ResetInfo`s.
 */

/** The thing whose cached queries a front end should invalidate. */
export interface EntityRef {
  readonly kind: string;
  readonly id: string;
  /** `created`, `updated` or `deleted`. */
  readonly op: string;
}

export interface PushEvent<Payload = unknown> {
  /**
   * Position in the log; commit order equals id order. The server's ids are
   * 64-bit; JSON numbers are exact in JavaScript up to 2⁵³, which a log
   * reaches after ~285 years at a million events a second.
   */
  readonly id: number;
  readonly topic: string;
  readonly type: string;
  readonly entity?: EntityRef;
  readonly payload?: Payload;
  /** RFC 3339 UTC with milliseconds: when the log accepted the event. */
  readonly timestamp: string;
}

/** An event that names an entity: what `/events/changes` returns. */
export type EntityEvent<Payload = unknown> = PushEvent<Payload> & { readonly entity: EntityRef };

/**
 * What `GET /events/changes` answered, all pages together: which entities
 * changed after `since`, each as its latest event. Two reports have this
 * shape: the entities changed while a client was away (its cursor had
 * expired), and a tab's initial state (`since` 0: every entity).
 */
export interface ChangesReport {
  /** How many entities changed: `entities.length`. */
  readonly count: number;
  /**
   * The latest event of each changed entity (one per topic, kind and id), in
   * id order. An entity removed meanwhile is here too, with `op: 'deleted'`.
   */
  readonly entities: readonly EntityEvent[];
  /** The cursor the changes are counted from; 0 for an initial state. */
  readonly since: number;
  /** The client goes on live after this id: every later event is delivered. */
  readonly head: number;
  /**
   * Whether the log still held every event after `since`. When `false`,
   * retention pruned some, so events without an entity (notifications) in
   * `(since, head]` are gone for good. Either way, events without an entity
   * in that range are not delivered: the report replaces them.
   */
  readonly logComplete: boolean;
}

/** Why the server could not continue gap-free from the client's cursor. */
export type ResetReason = 'cursor_expired' | 'cursor_unknown' | 'lagged' | (string & {});

export interface ResetInfo {
  readonly reason: ResetReason;
  /** The newest id in the log; the client continues from here. */
  readonly head: number;
  /** The oldest id the log still holds, when the server says. */
  readonly oldestId?: number;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isEventId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseEntity(value: unknown): EntityRef | undefined | null {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) return null;
  const { kind, id, op } = value;
  if (typeof kind !== 'string' || typeof op !== 'string') return null;
  // The contract shows entity ids as strings; accept numbers too, as strings,
  // so query keys built from them are stable either way.
  if (typeof id !== 'string' && typeof id !== 'number') return null;
  return { kind, id: String(id), op };
}

/** A `PushEvent`, or `null` when the value is not one. */
export function parseEvent(value: unknown): PushEvent | null {
  if (!isObject(value)) return null;
  const { id, topic, type, timestamp, payload } = value;
  if (!isEventId(id) || id === 0) return null;
  if (typeof topic !== 'string' || typeof type !== 'string') return null;
  const entity = parseEntity(value['entity']);
  if (entity === null) return null;
  return {
    id,
    topic,
    type,
    timestamp: typeof timestamp === 'string' ? timestamp : '',
    ...(entity === undefined ? {} : { entity }),
    ...(payload === undefined ? {} : { payload }),
  };
}

/**
 * Reads a reset from any of the server's three shapes: the WebSocket
 * `reset` message and the SSE `reset` data (`reason`), and the 410 body of
 * `/events/missed` (`error`). `null` without a usable `head`: without it the
 * client would not know where to continue.
 */
export function parseReset(value: unknown): ResetInfo | null {
  if (!isObject(value)) return null;
  const reason = value['reason'] ?? value['error'];
  const head = value['head'];
  const oldest = value['oldest_id'];
  if (typeof reason !== 'string' || !isEventId(head)) return null;
  return { reason, head, ...(isEventId(oldest) ? { oldestId: oldest } : {}) };
}

/** Parses a JSON text into a plain object, or `null`. */
export function parseJsonObject(text: unknown): Json | null {
  if (typeof text !== 'string') return null;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Checks a report another tab relayed (tabs may run different versions of
 * the app). `null` unless every entity is a well-formed event with one.
 */
export function parseChangesReport(value: unknown): ChangesReport | null {
  if (!isObject(value)) return null;
  const { entities, since, head, logComplete } = value;
  if (!Array.isArray(entities) || !isEventId(since) || !isEventId(head) || typeof logComplete !== 'boolean') {
    return null;
  }
  const parsed: EntityEvent[] = [];
  for (const raw of entities) {
    const event = parseEvent(raw);
    if (!event || !hasEntity(event)) return null;
    parsed.push(event);
  }
  return { count: parsed.length, entities: parsed, since, head, logComplete };
}

export function hasEntity(event: PushEvent): event is EntityEvent {
  return event.entity !== undefined;
}
