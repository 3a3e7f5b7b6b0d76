/**
 * The most frequent values of a stream in bounded memory: Space-Saving (Metwally, Agrawal,
 * El Abbadi, 2005) with batched eviction. Exact while fewer than `capacity` distinct values
 * were seen; past that, the least frequent half is dropped in one sort and a value seen again
 * starts from the largest count dropped, so a count is over by at most that floor (reported).
 */
export class TopCounter {
  readonly #counts = new Map<string, number>();
  readonly #capacity: number;
  #floor = 0;

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  add(value: string): void {
    const count = this.#counts.get(value);
    if (count !== undefined) {
      this.#counts.set(value, count + 1);
      return;
    }
    if (this.#counts.size >= this.#capacity * 2) this.#prune();
    this.#counts.set(value, this.#floor + 1);
  }

  #prune(): void {
    const sorted = [...this.#counts].sort((a, b) => b[1] - a[1]);
    for (const [value, count] of sorted.slice(this.#capacity)) {
      this.#floor = Math.max(this.#floor, count);
      this.#counts.delete(value);
    }
  }

  /** The n most frequent values, most frequent first (ties by value, so output is stable). */
  top(n: number): Array<{ value: string; count: number }> {
    return [...this.#counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, n)
      .map(([value, count]) => ({ value, count }));
  }

  /** 0 while counts are exact; else the most any count may be over. */
  get maxError(): number {
    return this.#floor;
  }
}
