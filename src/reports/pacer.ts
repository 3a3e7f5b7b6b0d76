/**
 * Pacing of report mail: at most `ratePerMinute` messages leave this process per minute, over
 * all the runs that share one pacer, so that a backlog never goes out as a burst that would
 * harm our own sending reputation (RFC 9990 §5, RFC 9991 §2 rate limits).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class Pacer {
  readonly #interval: number;
  #nextSlot = 0;

  constructor(ratePerMinute: number) {
    this.#interval = 60_000 / ratePerMinute;
  }

  /** Waits for the next slot; false when the run was aborted meanwhile. */
  async pace(signal: AbortSignal | undefined): Promise<boolean> {
    const wait = this.#nextSlot - Date.now();
    this.#nextSlot = Math.max(this.#nextSlot, Date.now()) + this.#interval;
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
    return !signal?.aborted;
  }
}
