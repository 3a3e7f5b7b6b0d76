/**
 * A raw SMTP client for tests: sends exactly the bytes given and returns replies as parsed
 * lines, so tests can assert exact reply codes and texts (mox's ts.smtpErr style) and send
 * malformed or hostile input (smuggling, bare LF) that a well-behaved client library won't.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  readonly code: number;
  /** Full lines as received, without CRLF. */
  readonly lines: string[];
  /** Last line after the code (and its separator). */
  readonly text: string;
}

export class SmtpTestClient {
  #socket: net.Socket;
  /** The TCP socket under TLS, for a reset. */
  readonly #tcp: net.Socket;
  #buffer = '';
  #waiters: Array<() => void> = [];
  #closed = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    this.#tcp = socket;
    this.#listen(socket);
  }

  #listen(socket: net.Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  /** Connects and reads the greeting. `preface` (e.g. a PROXY header) is sent first. */
  static async connect(port: number, opts: { host?: string; preface?: Buffer | string } = {}): Promise<{ client: SmtpTestClient; greeting: Reply }> {
    const socket = net.connect({ host: opts.host ?? '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (opts.preface) socket.write(opts.preface);
    const client = new SmtpTestClient(socket);
    const greeting = await client.read();
    return { client, greeting };
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Reads one (possibly multi-line) reply; rejects on close or after timeoutMs. */
  async read(timeoutMs = 30_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.#buffer.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.#buffer.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (/^\d{3}( |$)/.test(line)) {
          this.#buffer = this.#buffer.slice(pos);
          return { code: Number(line.slice(0, 3)), lines, text: line.slice(4) };
        }
      }
      if (this.#closed) throw new Error(`connection closed while waiting for a reply (buffer: ${JSON.stringify(this.#buffer)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a reply (buffer: ${JSON.stringify(this.#buffer)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * STARTTLS (RFC 3207): on 220 the session continues over TLS (any certificate accepted).
   * Returns the reply to STARTTLS; a non-220 leaves the session in plain text.
   */
  async startTls(): Promise<Reply> {
    const reply = await this.cmd('STARTTLS');
    if (reply.code !== 220) return reply;
    const plain = this.#socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'mx.postern.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#listen(secure);
    return reply;
  }

  /** Sends one command line (CRLF appended) and reads the reply. */
  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.#socket.write(line + '\r\n');
    return this.read(timeoutMs);
  }

  /** Sends raw bytes as they are. */
  write(data: Buffer | string): void {
    this.#socket.write(data);
  }

  /**
   * DATA with a well-formed message: CRLF line endings enforced, dot-stuffed, terminated.
   * Returns the final reply (or the DATA refusal).
   */
  async data(message: string | Buffer, timeoutMs?: number): Promise<Reply> {
    const go = await this.cmd('DATA');
    if (go.code !== 354) return go;
    const text = Buffer.isBuffer(message) ? message.toString('latin1') : message;
    const body = text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    this.#socket.write(body + (body.endsWith('\r\n') ? '' : '\r\n') + '.\r\n', 'latin1');
    return this.read(timeoutMs);
  }

  /** SHA-256 fingerprint of the server's certificate once STARTTLS is done, else null. */
  peerFingerprint(): string | null {
    return this.#socket instanceof tls.TLSSocket ? this.#socket.getPeerCertificate().fingerprint256 ?? null : null;
  }

    get closed(): boolean {
    return this.#closed;
  }

  async quit(): Promise<void> {
    if (!this.#closed) {
      this.#socket.write('QUIT\r\n');
      await this.read().catch(() => undefined);
    }
    this.#socket.destroy();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Aborts with a TCP RST, as a crashed client or a middlebox would. */
  reset(): void {
    this.#tcp.resetAndDestroy();
  }
}

/** Opens `n` sessions one after the other (each past its greeting); returns their greetings in order. */
export async function connectMany(port: number, n: number): Promise<Array<{ client: SmtpTestClient; greeting: Reply }>> {
  const out: Array<{ client: SmtpTestClient; greeting: Reply }> = [];
  for (let i = 0; i < n; i++) out.push(await SmtpTestClient.connect(port));
  return out;
}

/** One whole transaction; returns every reply so tests can assert each step. */
export async function sendMail(port: number, opts: {
  from: string; to: string[]; message: string | Buffer; helo?: string; preface?: Buffer | string;
}): Promise<{ greeting: Reply; mail: Reply; rcpt: Reply[]; data: Reply | null }> {
  const { client, greeting } = await SmtpTestClient.connect(port, { preface: opts.preface });
  try {
    await client.cmd(`EHLO ${opts.helo ?? 'client.example'}`);
    const mail = await client.cmd(`MAIL FROM:<${opts.from}>`);
    const rcpt: Reply[] = [];
    if (mail.code === 250) for (const r of opts.to) rcpt.push(await client.cmd(`RCPT TO:<${r}>`));
    const data = rcpt.some((r) => r.code === 250) ? await client.data(opts.message) : null;
    return { greeting, mail, rcpt, data };
  } finally {
    await client.quit();
  }
}
