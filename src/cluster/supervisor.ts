/**
 * Keeps N worker processes running, one per slot (1…N): a worker that exits while the node is
 * running is started again after a pause that doubles with each quick failure (so a worker
 * that cannot start does not spin the CPU), and resets once a worker has run for a while.
 * Knows nothing of IPC or SMTP: the primary says how to start a worker and is told of exits.
 */

export interface Backoff {
  /** Pause before the first restart. */
  readonly firstMs: number;
  readonly maxMs: number;
  /** A worker that ran this long counts as healthy: the next failure starts from firstMs again. */
  readonly stableMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { firstMs: 250, maxMs: 30_000, stableMs: 60_000 };

export interface SupervisorOptions<W> {
  readonly count: number;
  /** Starts the worker of `slot`; `exited` must be called once when its process ends. */
  start(slot: number, exited: (code: number | null, signal: string | null) => void): W;
  readonly backoff?: Backoff;
  readonly now?: () => number;
  /** A worker ended unexpectedly and will be started again after delayMs. */
  onRestart?(slot: number, delayMs: number, code: number | null, signal: string | null): void;
}

interface Slot<W> {
  worker: W | null;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | null;
}

export class Supervisor<W> {
  readonly #options: SupervisorOptions<W>;
  readonly #slots = new Map<number, Slot<W>>();
  #stopped = false;

  constructor(options: SupervisorOptions<W>) {
    this.#options = options;
  }

  get count(): number {
    return this.#options.count;
  }

  /** Starts every slot's worker. */
  start(): void {
    for (let slot = 1; slot <= this.#options.count; slot++) {
      this.#slots.set(slot, { worker: null, startedAt: 0, failures: 0, timer: null });
      this.#launch(slot);
    }
  }

  /** The slot's running worker, or null while it is being replaced. */
  get(slot: number): W | null {
    return this.#slots.get(slot)?.worker ?? null;
  }

  /** Running workers by slot. */
  running(): Array<{ slot: number; worker: W }> {
    return [...this.#slots].flatMap(([slot, s]) => (s.worker ? [{ slot, worker: s.worker }] : []));
  }

  /** No more restarts (shutting down); pending ones are cancelled. */
  stop(): void {
    this.#stopped = true;
    for (const s of this.#slots.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
    }
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #launch(slot: number): void {
    const s = this.#slots.get(slot)!;
    s.timer = null;
    s.startedAt = this.#now();
    let done = false;
    s.worker = this.#options.start(slot, (code, signal) => {
      if (done) return;
      done = true;
      this.#exited(slot, code, signal);
    });
  }

  #exited(slot: number, code: number | null, signal: string | null): void {
    const s = this.#slots.get(slot)!;
    s.worker = null;
    if (this.#stopped) return;
    const backoff = this.#options.backoff ?? DEFAULT_BACKOFF;
    if (this.#now() - s.startedAt >= backoff.stableMs) s.failures = 0;
    const delayMs = Math.min(backoff.maxMs, backoff.firstMs * 2 ** s.failures);
    s.failures++;
    this.#options.onRestart?.(slot, delayMs, code, signal);
    // Not unref'd: while every worker is down, this timer is what keeps the primary alive.
    s.timer = setTimeout(() => this.#launch(slot), delayMs);
  }
}
