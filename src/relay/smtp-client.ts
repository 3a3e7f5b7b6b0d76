/**
 * One SMTP connection to the backend, one command at a time, promise-based. Written here
 * rather than nodemailer's SMTPConnection because Postern mirrors the envelope: each RCPT's
 * reply decides ours, and XCLIENT must be sent before the transaction.
 *
 * Replies (even 4xx/5xx) are returned, never thrown: the caller mirrors them. Timeouts, socket
 * errors, a closed connection and protocol garbage reject with BackendError and destroy the
 * connection; a 421 reply is returned and also destroys it (RFC 5321 §3.8: the server closes).
 */
import net from 'node:net';
import tls from 'node:tls';
import { BackendError } from './backend-error.ts';
import { DotStuffer } from './dot-stuffing.ts';
import {
  HELO_CAPABILITIES, mailParameters, parseCapabilities, rcptParameters, xclientArguments,
  type Capabilities, type SmtpParams, type XclientAttributes,
} from './extensions.ts';
import { formatResponse, isPositive, ReplyReader, type SmtpResponse } from './reply.ts';

export { BackendError, type BackendErrorKind } from './backend-error.ts';
export { dotStuff, DotStuffer } from './dot-stuffing.ts';
export type { Capabilities, SmtpParams, XclientAttributes } from './extensions.ts';
export type { SmtpResponse } from './reply.ts';

export interface SmtpClientOptions {
  readonly host: string;
  readonly port: number;
  /** Our EHLO name. */
  readonly hostname: string;
  readonly tls: 'none' | 'starttls';
  readonly rejectUnauthorized: boolean;
  /** TCP connect, greeting and TLS handshake. */
  readonly connectTimeoutMs: number;
  /** Each command's reply, and each wait for the socket to drain while sending a message. */
  readonly commandTimeoutMs: number;
  /** The final reply after the message (RFC 5321 §4.5.3.2.6 suggests 10 minutes). */
  readonly dataTimeoutMs: number;
}

/** A path goes inside <…> on one command line: no controls, no space, no angle brackets. */
const UNSAFE_PATH = /[\x00-\x20\x7f<>]/;
/** An EHLO argument we are willing to repeat on our own command line. */
const SAFE_HELO = /^[\x21-\x7e]{1,255}$/;

type FailListener = (err: BackendError) => void;

/** Connects, reads the 220 greeting, EHLO (HELO fallback), and STARTTLS + EHLO when configured. */
export function connectSmtp(options: SmtpClientOptions): Promise<SmtpClient> {
  const where = `${options.host}:${options.port}`;
  return new Promise<SmtpClient>((resolve, reject) => {
    const socket = net.connect({ host: options.host, port: options.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BackendError('timeout', `backend ${where}: no connection within ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new BackendError('connect', `backend ${where}: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.setNoDelay(true); // one short command per round trip: do not wait for Nagle
      const client = new SmtpClient(socket, options);
      client.handshake().then(() => resolve(client), reject);
    });
  });
}

export class SmtpClient {
  readonly #options: SmtpClientOptions;
  #socket: net.Socket;
  readonly #reader = new ReplyReader();
  #waiter: ((reply: SmtpResponse) => void) | null = null;
  readonly #failListeners = new Set<FailListener>();
  readonly #closeListeners: Array<() => void> = [];
  #failure: BackendError | null = null;
  /** What a socket error means right now: a TLS handshake failure, or a broken connection. */
  #errorKind: 'closed' | 'tls' = 'closed';
  #capabilities: Capabilities = HELO_CAPABILITIES;
  #inTransaction = false;
  #busy = false;

  constructor(socket: net.Socket, options: SmtpClientOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#attach(socket);
  }

  get capabilities(): Capabilities {
    return this.#capabilities;
  }

  /** False once the connection failed, was destroyed, said 421 or was quit. */
  get usable(): boolean {
    return this.#failure === null;
  }

  /** MAIL was accepted and no final DATA reply or RSET has ended the transaction since. */
  get inTransaction(): boolean {
    return this.#inTransaction;
  }

  /** Called once, when the connection becomes unusable for whatever reason. */
  onClose(listener: () => void): void {
    if (this.#failure) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  destroy(): void {
    this.#fail(new BackendError('closed', 'backend connection closed by us'));
  }

  /** Greeting and EHLO (then STARTTLS and EHLO again); on failure the connection is destroyed. */
  async handshake(): Promise<void> {
    try {
      await this.#handshake();
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  async #handshake(): Promise<void> {
    await this.#exclusive(async () => {
      const greeting = await this.#expectReply('greeting', this.#options.connectTimeoutMs);
      if (greeting.code !== 220) {
        throw this.#fail(new BackendError('connect', `backend refused the connection: ${formatResponse(greeting)}`));
      }
      await this.#hello(this.#options.hostname);
      if (this.#options.tls === 'starttls') {
        await this.#startTls();
        await this.#hello(this.#options.hostname); // RFC 3207 §4.2: forget what was learnt before TLS
      }
    });
  }

  /**
   * XCLIENT with the attributes the backend offered. Postfix answers 220 and wants a new EHLO,
   * whose name becomes the client's HELO: we send the client's own (ours if unusable).
   * A refusal is returned as is; the caller decides.
   */
  async xclient(attrs: XclientAttributes): Promise<SmtpResponse> {
    return this.#exclusive(async () => {
      const offered = this.#capabilities.xclient;
      const args = offered ? xclientArguments(attrs, offered) : [];
      if (args.length === 0) throw new BackendError('protocol', 'backend does not offer the XCLIENT attributes we send');
      const reply = await this.#command(`XCLIENT ${args.join(' ')}`);
      if (reply.code !== 220) return reply;
      this.#inTransaction = false;
      const helo = attrs.helo !== undefined && SAFE_HELO.test(attrs.helo) ? attrs.helo : this.#options.hostname;
      await this.#hello(helo);
      return reply;
    });
  }

  async mail(sender: string, params: SmtpParams = {}): Promise<SmtpResponse> {
    assertPath(sender, true);
    return this.#exclusive(async () => {
      const line = [`MAIL FROM:<${sender}>`, ...mailParameters(params, this.#capabilities)].join(' ');
      const reply = await this.#command(line);
      if (isPositive(reply)) this.#inTransaction = true;
      return reply;
    });
  }

  async rcpt(address: string, params: SmtpParams = {}): Promise<SmtpResponse> {
    assertPath(address, false);
    return this.#exclusive(() =>
      this.#command([`RCPT TO:<${address}>`, ...rcptParameters(params, this.#capabilities)].join(' ')));
  }

  /**
   * DATA, then the message CRLF-normalised and dot-stuffed, then ".". Returns the DATA reply
   * itself when it is not 354 (the transaction stays open), else the final reply.
   *
   * The message may come in pieces (header fields, body: see BackendTransaction.data); they
   * are written as they are, without being joined, in one corked batch (one writev).
   * `beforeEnd` runs after the last message byte and before the final "." (a sender that must
   * record "maybe delivered" first, such as DMARC reports); if it throws, the "." is never
   * sent and the connection is closed, so the message cannot be accepted.
   */
  async data(message: Uint8Array | readonly Uint8Array[], beforeEnd?: () => Promise<void>): Promise<SmtpResponse> {
    return this.#exclusive(async () => {
      const go = await this.#command('DATA');
      // A success reply to DATA itself is not an acceptance of a message we never sent: treat
      // it as a broken backend (451 upstream), never as a delivery (no 250 without the bytes).
      if (go.code < 400 && go.code !== 354) {
        throw this.#fail(new BackendError('protocol', `unexpected reply to DATA: ${formatResponse(go)}`));
      }
      if (go.code !== 354) return go;
      const socket = this.#socket;
      const stuffer = new DotStuffer();
      let flowing = true;
      socket.cork();
      try {
        for (const piece of isPieces(message) ? message : [message]) {
          for (const bytes of stuffer.push(piece)) flowing = this.#write(bytes) && flowing;
        }
        if (!beforeEnd) flowing = this.#write(stuffer.end()) && flowing;
      } finally {
        socket.uncork();
      }
      if (beforeEnd) {
        try {
          await beforeEnd();
        } catch (err) {
          throw this.#fail(new BackendError('closed', `message abandoned before its end: ${(err as Error).message}`, { cause: err }));
        }
        flowing = this.#write(stuffer.end()) && flowing;
      }
      // Registered in the same tick as the last write: any reply before it was unsolicited.
      const final = this.#expectReply('end of data', this.#options.dataTimeoutMs);
      // The message is in memory already, so the socket may buffer it; but a backend that
      // stops reading fails within commandTimeoutMs, not only after dataTimeoutMs.
      if (!flowing) this.#drain().catch(() => undefined);
      const reply = await final;
      this.#inTransaction = false; // RFC 5321 §4.1.1.4: the final reply ends the transaction either way
      this.#closeOn421(reply);
      return reply;
    });
  }

  async rset(): Promise<SmtpResponse> {
    return this.#exclusive(async () => {
      const reply = await this.#command('RSET');
      if (isPositive(reply)) this.#inTransaction = false;
      return reply;
    });
  }

  async noop(): Promise<SmtpResponse> {
    return this.#exclusive(() => this.#command('NOOP'));
  }

  /** QUIT, wait for 221, close. The connection is unusable afterwards. */
  async quit(): Promise<SmtpResponse> {
    return this.#exclusive(async () => {
      const reply = await this.#command('QUIT');
      this.#fail(new BackendError('closed', 'backend connection quit'));
      return reply;
    });
  }

  async #hello(name: string): Promise<void> {
    this.#inTransaction = false; // EHLO resets any transaction (RFC 5321 §4.1.4)
    const ehlo = await this.#command(`EHLO ${name}`);
    if (ehlo.code === 250) {
      this.#capabilities = parseCapabilities(ehlo);
      return;
    }
    if (ehlo.code >= 500) { // RFC 5321 §3.2: fall back to HELO
      const helo = await this.#command(`HELO ${name}`);
      if (helo.code === 250) {
        this.#capabilities = HELO_CAPABILITIES;
        return;
      }
      throw this.#fail(new BackendError('protocol', `backend refused HELO: ${formatResponse(helo)}`));
    }
    throw this.#fail(new BackendError('protocol', `backend refused EHLO: ${formatResponse(ehlo)}`));
  }

  async #startTls(): Promise<void> {
    if (!this.#capabilities.starttls) throw this.#fail(new BackendError('tls', 'backend does not offer STARTTLS'));
    const reply = await this.#command('STARTTLS');
    if (reply.code !== 220) throw this.#fail(new BackendError('tls', `backend refused STARTTLS: ${formatResponse(reply)}`));
    // RFC 3207 §4.2 / CVE-2011-0411: bytes after the 220 would be read as if protected by TLS.
    if (this.#reader.pending) throw this.#fail(new BackendError('protocol', 'backend sent data after its STARTTLS reply'));
    const plain = this.#socket;
    this.#detach(plain);
    plain.on('error', () => undefined); // reported by the TLS socket on top of it
    const { host } = this.#options;
    const secure = tls.connect({
      socket: plain,
      servername: net.isIP(host) ? undefined : host, // RFC 6066 §3: SNI carries names only
      rejectUnauthorized: this.#options.rejectUnauthorized,
    });
    this.#socket = secure;
    this.#errorKind = 'tls';
    this.#attach(secure);
    await this.#wait('TLS handshake', this.#options.connectTimeoutMs, (done) => secure.once('secureConnect', done));
    this.#errorKind = 'closed';
  }

  async #command(line: string): Promise<SmtpResponse> {
    if (this.#failure) throw this.#failure; // it may have failed between two steps of one operation
    const verb = line.split(' ', 1)[0] ?? line;
    const reply = this.#expectReply(verb, this.#options.commandTimeoutMs);
    this.#socket.write(`${line}\r\n`, 'utf8');
    const result = await reply;
    this.#closeOn421(result);
    return result;
  }

  #closeOn421(reply: SmtpResponse): void {
    if (reply.code === 421) this.#fail(new BackendError('closed', `backend is closing the connection: ${formatResponse(reply)}`));
  }

  #expectReply(what: string, timeoutMs: number): Promise<SmtpResponse> {
    return this.#wait<SmtpResponse>(what, timeoutMs, (done) => {
      this.#waiter = done;
    });
  }

  /** Waits for `arm`'s callback, rejecting on failure or after timeoutMs (which fails the connection). */
  #wait<T = void>(what: string, timeoutMs: number, arm: (done: (value: T) => void) => void): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<T>((resolve, reject) => {
      const onFail: FailListener = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        this.#fail(new BackendError('timeout', `backend: no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#failListeners.add(onFail);
      arm((value) => {
        clearTimeout(timer);
        this.#failListeners.delete(onFail);
        resolve(value);
      });
    });
  }

  #write(bytes: Buffer): boolean {
    if (this.#failure) throw this.#failure;
    return this.#socket.write(bytes);
  }

  #drain(): Promise<void> {
    const socket = this.#socket;
    return this.#wait('message bytes (socket not draining)', this.#options.commandTimeoutMs, (done) => {
      socket.once('drain', () => done());
    });
  }

  /** One command (or handshake, or DATA exchange) at a time: SMTP replies are matched by order. */
  async #exclusive<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#failure) throw this.#failure;
    if (this.#busy) throw new Error('SmtpClient: a command is already in progress on this connection');
    this.#busy = true;
    try {
      return await operation();
    } finally {
      this.#busy = false;
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    let replies: SmtpResponse[];
    try {
      replies = this.#reader.push(chunk);
    } catch (err) {
      this.#fail(err instanceof BackendError ? err : new BackendError('protocol', String(err)));
      return;
    }
    for (const reply of replies) {
      const waiter = this.#waiter;
      if (!waiter) {
        // Nothing was asked: Postfix's idle "421 4.4.2 … timeout exceeded", or garbage.
        const kind = reply.code === 421 ? 'closed' : 'protocol';
        this.#fail(new BackendError(kind, `unexpected reply from backend: ${formatResponse(reply)}`));
        return;
      }
      this.#waiter = null;
      waiter(reply);
    }
  };

  readonly #onError = (err: Error): void => {
    this.#fail(new BackendError(this.#errorKind, `backend connection error: ${err.message}`, { cause: err }));
  };

  readonly #onClose = (): void => {
    this.#fail(new BackendError('closed', 'backend closed the connection'));
  };

  #attach(socket: net.Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #detach(socket: net.Socket): void {
    socket.off('data', this.#onData);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
  }

  /** Marks the connection dead (first cause wins), destroys the socket, rejects every wait. */
  #fail(err: BackendError): BackendError {
    if (this.#failure) return this.#failure;
    this.#failure = err;
    this.#waiter = null;
    this.#inTransaction = false;
    this.#socket.destroy();
    const listeners = [...this.#failListeners];
    this.#failListeners.clear();
    for (const listener of listeners) listener(err);
    for (const listener of this.#closeListeners.splice(0)) listener();
    return err;
  }
}

function isPieces(message: Uint8Array | readonly Uint8Array[]): message is readonly Uint8Array[] {
  return Array.isArray(message);
}

function assertPath(address: string, nullAllowed: boolean): void {
  if ((address === '' && !nullAllowed) || UNSAFE_PATH.test(address)) {
    throw new TypeError(`unsafe SMTP path ${JSON.stringify(address)}`);
  }
}
