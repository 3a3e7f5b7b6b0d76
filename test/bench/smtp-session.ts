/**
 * A lean SMTP client for load generation: one command at a time (no PIPELINING), replies parsed
 * just enough to know the code. Lighter than the test harness client so that the load
 * generator, which shares the machine with the gateway, spends little CPU per message.
 */
import net from 'node:net';

export interface Reply {
  readonly code: number;
  /** The last line, without CRLF. */
  readonly line: string;
}

/** A failure at the socket level, named for the error table ("ECONNRESET", "timeout", "closed"). */
export class SessionError extends Error {
  readonly kind: string;
  constructor(kind: string) {
    super(kind);
    this.kind = kind;
  }
}

/** RFC 5321 §4.2.1: the last line of a reply has a space (or nothing) after the code. */
const LAST_LINE = /^(\d{3})(?: .*)?$/;

export class SmtpSession {
  readonly #socket: net.Socket;
  readonly #timeoutMs: number;
  #buffer = '';
  #failure: SessionError | null = null;
  #pending: { resolve: (r: Reply) => void; reject: (e: SessionError) => void; timer: NodeJS.Timeout } | null = null;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      this.#deliver();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.#fail(new SessionError(err.code ?? err.message)));
    socket.on('close', () => this.#fail(new SessionError('closed')));
  }

  /**
   * Connects to 127.0.0.1:port and reads the greeting. `preface` (a PROXY header, for a gateway
   * that trusts loopback as its balancer) is sent first.
   */
  static async open(port: number, timeoutMs: number, preface?: string | Buffer): Promise<{ session: SmtpSession; greeting: Reply }> {
    const socket = net.connect({ host: '127.0.0.1', port });
    if (preface !== undefined) socket.write(preface);
    const session = new SmtpSession(socket, timeoutMs);
    const greeting = await session.#read();
    return { session, greeting };
  }

  command(line: string): Promise<Reply> {
    const reply = this.#read();
    this.#socket.write(line + '\r\n');
    return reply;
  }

  /** Sends the message (already dot-stuffed, ending in CRLF) and the terminating ".". */
  data(wire: Buffer): Promise<Reply> {
    const reply = this.#read();
    this.#socket.write(wire);
    this.#socket.write('.\r\n');
    return reply;
  }

  /** QUIT, then waits (bounded) for the server to answer or close, and closes our side. */
  async quit(): Promise<void> {
    if (this.#failure) return;
    await this.command('QUIT').catch(() => undefined);
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Writes bytes as they are, reading nothing; resolves once they are handed to the kernel. */
  write(data: Buffer): Promise<void> {
    return new Promise((resolve) => this.#socket.write(data, () => resolve()));
  }

  /**
   * Sends the message and its final ".", then resets the connection once the bytes are out,
   * without reading the reply: a client that dies right after the dot (RFC 1047's window).
   */
  sendAndReset(wire: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.#socket.write(wire);
      this.#socket.write('.\r\n', () => {
        if (!this.#socket.destroyed) this.#socket.resetAndDestroy();
        resolve();
      });
    });
  }

  #read(): Promise<Reply> {
    if (this.#pending) return Promise.reject(new SessionError('client-bug: overlapping reads'));
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new SessionError('timeout')), this.#timeoutMs);
      this.#pending = { resolve, reject, timer };
      this.#deliver();
    });
  }

  #deliver(): void {
    const pending = this.#pending;
    if (!pending) return;
    if (this.#failure) {
      this.#settle();
      pending.reject(this.#failure);
      return;
    }
    for (let start = 0, end = this.#buffer.indexOf('\r\n'); end >= 0; start = end + 2, end = this.#buffer.indexOf('\r\n', start)) {
      const line = this.#buffer.slice(start, end);
      const match = LAST_LINE.exec(line);
      if (!match) continue; // a continuation line "250-…"
      this.#buffer = this.#buffer.slice(end + 2);
      this.#settle();
      pending.resolve({ code: Number(match[1]), line });
      return;
    }
  }

  #settle(): void {
    if (this.#pending) clearTimeout(this.#pending.timer);
    this.#pending = null;
  }

  #fail(error: SessionError): void {
    if (!this.#failure) this.#failure = error;
    if (error.kind === 'timeout') this.#socket.destroy();
    this.#deliver();
  }
}
