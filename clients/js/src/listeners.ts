/**
 * A set of callbacks where one that throws does not keep the others from
 * running; the error goes to `report`.
 */

import type { Unsubscribe } from './state.js';

export class Listeners<Args extends unknown[]> {
  private readonly set = new Set<(...args: Args) => void>();

  constructor(private readonly report: (error: unknown) => void) {}

  add(listener: (...args: Args) => void): Unsubscribe {
    // Wrapped, so adding the same function twice means two calls and two
    // independent unsubscribes, as with `on()`.
    const entry = (...args: Args) => listener(...args);
    this.set.add(entry);
    return () => {
      this.set.delete(entry);
    };
  }

  emit(...args: Args): void {
    for (const listener of [...this.set]) {
      try {
        listener(...args);
      } catch (error) {
        this.report(error);
      }
    }
  }
}

/**
 * For errors nobody can handle (an `onError` listener that throws): surface
 * them the way the platform reports an exception in an event listener.
 */
export function reportUncaught(error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (typeof report === 'function') report(error);
  else
    queueMicrotask(() => {
      throw error;
    });
}
