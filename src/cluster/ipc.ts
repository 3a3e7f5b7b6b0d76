/**
 * Requests, replies and notes between the cluster primary and a worker over node's IPC channel
 * (process.send / worker.send). Frames written in one turn of the event loop go out together
 * in one message (one write, one JSON parse on the other side): under load a worker asks the
 * primary's rate store many times per turn. Our messages carry a `postern` key, so node's own
 * cluster messages (and anyone else's) pass by untouched.
 */

type Frame =
  | { readonly t: 'req'; readonly id: number; readonly kind: string; readonly body: unknown }
  | { readonly t: 'res'; readonly id: number; readonly body?: unknown; readonly error?: string }
  | { readonly t: 'note'; readonly kind: string; readonly body: unknown };

export interface IpcMessage {
  readonly postern: readonly Frame[];
}

export function isIpcMessage(message: unknown): message is IpcMessage {
  return typeof message === 'object' && message !== null && Array.isArray((message as { postern?: unknown }).postern);
}

export type RequestHandler = (kind: string, body: unknown) => unknown;
export type NoteHandler = (kind: string, body: unknown) => void;

/** The other side answered with an error, did not answer in time, or went away. */
export class IpcError extends Error {}

export interface IpcChannelOptions {
  /**
   * Sends one message (process.send in a worker, worker.send in the primary). Throws when the
   * channel is closed; node queues what it cannot write at once (its false return is backpressure).
   */
  readonly send: (message: IpcMessage) => unknown;
  readonly onRequest?: RequestHandler;
  readonly onNote?: NoteHandler;
}

export class IpcChannel {
  readonly #options: IpcChannelOptions;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #queue: Frame[] = [];
  #flushing = false;
  #nextId = 1;
  #closed = false;

  constructor(options: IpcChannelOptions) {
    this.#options = options;
  }

  /** Asks the other side; rejects with IpcError on its error, after timeoutMs, or when the channel closes. */
  request<T>(kind: string, body: unknown, timeoutMs: number): Promise<T> {
    if (this.#closed) return Promise.reject(new IpcError(`${kind}: the other process is gone`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new IpcError(`${kind}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#push({ t: 'req', id, kind, body });
    });
  }

  /** Tells the other side; no answer. */
  notify(kind: string, body: unknown): void {
    if (!this.#closed) this.#push({ t: 'note', kind, body });
  }

  /** Hands a received message to the channel (ignored unless it is ours). */
  receive(message: unknown): void {
    if (!isIpcMessage(message)) return;
    for (const frame of message.postern) {
      if (frame.t === 'res') this.#settle(frame);
      else if (frame.t === 'note') this.#options.onNote?.(frame.kind, frame.body);
      else this.#answer(frame);
    }
  }

  /** The other process is gone: every waiting request fails now. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new IpcError('the other process is gone'));
      this.#pending.delete(id);
    }
  }

  #answer(frame: Extract<Frame, { t: 'req' }>): void {
    const handler = this.#options.onRequest;
    let result: unknown;
    try {
      if (!handler) throw new Error(`no handler for ${frame.kind}`);
      result = handler(frame.kind, frame.body);
    } catch (err) {
      this.#push({ t: 'res', id: frame.id, error: (err as Error).message });
      return;
    }
    Promise.resolve(result).then(
      (body) => this.#push({ t: 'res', id: frame.id, body }),
      (err: unknown) => this.#push({ t: 'res', id: frame.id, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  #settle(frame: Extract<Frame, { t: 'res' }>): void {
    const p = this.#pending.get(frame.id);
    if (!p) return; // timed out meanwhile
    this.#pending.delete(frame.id);
    clearTimeout(p.timer);
    if (frame.error !== undefined) p.reject(new IpcError(frame.error));
    else p.resolve(frame.body);
  }

  #push(frame: Frame): void {
    if (this.#closed) return;
    this.#queue.push(frame);
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushing = false;
    const frames = this.#queue;
    this.#queue = [];
    if (frames.length === 0 || this.#closed) return;
    try {
      this.#options.send({ postern: frames });
    } catch {
      this.close();
    }
  };
}
