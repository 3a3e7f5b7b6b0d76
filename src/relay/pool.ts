/**
 * Idle backend connections kept for reuse. Most recently used first (the others age out), each
 * with an unref'd timer that discards it after idleTimeoutMs: Postfix closes idle sessions
 * after 300 s (10 s under load) with 421 4.4.2, so we must always give up first.
 */
import type { Clock } from '../core/clock.ts';

export interface IdlePoolOptions<T> {
  readonly maxIdle: number;
  readonly idleTimeoutMs: number;
  readonly clock: Clock;
  /** Told about every item the pool drops on its own (expired or over the limit). */
  readonly discard: (item: T) => void;
}

interface Entry<T> {
  readonly item: T;
  readonly since: number;
  readonly timer: NodeJS.Timeout;
}

export class IdlePool<T> {
  readonly #options: IdlePoolOptions<T>;
  #entries: Array<Entry<T>> = [];

  constructor(options: IdlePoolOptions<T>) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Keeps the item; false (and nothing kept) when the pool is full. */
  put(item: T): boolean {
    if (this.#entries.length >= this.#options.maxIdle) return false;
    const timer = setTimeout(() => {
      if (this.remove(item)) this.#options.discard(item);
    }, this.#options.idleTimeoutMs);
    timer.unref();
    this.#entries.push({ item, since: this.#options.clock.now(), timer });
    return true;
  }

  /** The most recently used item that is still usable and not idle too long; others are discarded. */
  take(usable: (item: T) => boolean): T | undefined {
    for (let entry = this.#entries.pop(); entry; entry = this.#entries.pop()) {
      clearTimeout(entry.timer);
      const idle = this.#options.clock.now() - entry.since;
      if (idle < this.#options.idleTimeoutMs && usable(entry.item)) return entry.item;
      this.#options.discard(entry.item);
    }
    return undefined;
  }

  /** Forgets the item (it closed while idle); true if it was there. */
  remove(item: T): boolean {
    const index = this.#entries.findIndex((entry) => entry.item === item);
    if (index < 0) return false;
    const [entry] = this.#entries.splice(index, 1);
    if (entry) clearTimeout(entry.timer);
    return true;
  }

  /** Empties the pool and hands back every item (shutdown). */
  drain(): T[] {
    const entries = this.#entries;
    this.#entries = [];
    for (const entry of entries) clearTimeout(entry.timer);
    return entries.map((entry) => entry.item);
  }
}
