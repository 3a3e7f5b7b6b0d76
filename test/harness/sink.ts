/**
 * The backend sink: a real SMTP server (smtp-server) on 127.0.0.1:0 standing in for Postfix,
 * scripted per test, recording every message it accepted.
 *
 * What is recorded as `raw` is what smtp-server's data stream yields (smtp-stream.js): the
 * bytes between the 354 and the terminator, un-dot-stuffed, including the CRLF that ends the
 * last line. smtp-server ends DATA only at "\r\n.\r\n" and removes a leading dot after any LF
 * ("\n.." → "\n."); it leaves bare CR and bare LF untouched.
 *
 * A real Postfix differs, and a test must not conclude from the sink alone that bytes are safe:
 * - Postfix reads LF-terminated lines (a CR before the LF is dropped), so it also ends DATA at
 *   "\n.\n", "\n.\r\n" and "\r\n.\n" and runs what follows as commands (for a client in
 *   mynetworks; `smtpd_forbid_bare_newline` exempts it). The sink would keep such bytes as
 *   content. That is why `received()` exposes the wire bytes: assert on them for smuggling.
 * - Postfix stores lines, not bytes: line endings in the queue file are its own and a bare CR
 *   stays as content.
 * - Postfix refuses unknown recipients at RCPT (550 5.1.1), counts errors per connection and
 *   closes idle sessions with 421 4.4.2: script those with `behaviour` and `socketTimeoutMs`.
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerAddressArgs, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

/** An SMTP reply the sink gives instead of its 250; message carries the enhanced code: "5.1.1 User unknown". */
export interface SinkReply {
  readonly code: number;
  readonly message: string;
}

export interface SinkBehaviour {
  /** The greeting of the nth connection (1 = the first): a reply refuses it. */
  connect?: (n: number) => SinkReply | undefined;
  mail?: (from: string) => SinkReply | undefined;
  rcpt?: (address: string) => SinkReply | undefined;
  /** 'hang': never send the final reply; 'drop': destroy the connection instead of replying. */
  data?: (raw: Buffer) => SinkReply | 'hang' | 'drop' | undefined;
}

export interface SinkOptions {
  behaviour?: SinkBehaviour;
  /** Offer XCLIENT (smtp-server's useXClient) to every peer. */
  advertiseXclient?: boolean;
  /** SIZE limit advertised and enforced; 0 advertises no SIZE. Default 10240000 like Postfix. */
  size?: number;
  /** Offer DSN (RET, ENVID, NOTIFY, ORCPT). Default false. */
  dsn?: boolean;
  /** Offer 8BITMIME. Default true. */
  eightBitMime?: boolean;
  /** Offer SMTPUTF8. Default true. */
  smtpUtf8?: boolean;
  /** Offer STARTTLS with smtp-server's built-in self-signed certificate. Default false. */
  starttls?: boolean;
  /** Idle time after which the sink says 421 and hangs up (smtp-server socketTimeout). */
  socketTimeoutMs?: number;
}

export interface SinkMessage {
  readonly mailFrom: string;
  readonly mailParams: SMTPServerAddressArgs;
  readonly rcptTo: readonly string[];
  readonly rcptParams: readonly SMTPServerAddressArgs[];
  /** Exactly the bytes after un-dot-stuffing, final CRLF included. */
  readonly raw: Buffer;
  /** XCLIENT attributes received; smtp-server maps [UNAVAILABLE] to '' for NAME and to false
   * (recorded as '[UNAVAILABLE]') otherwise, and strips "IPV6:" from ADDR. */
  readonly xclient?: Readonly<Record<string, string>>;
  /** Last HELO/EHLO name of the session, lower-cased by smtp-server. */
  readonly helo: string;
  readonly secure: boolean;
}

export interface Sink {
  readonly host: string;
  readonly port: number;
  readonly messages: SinkMessage[];
  behaviour: SinkBehaviour;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Every byte received from clients so far, all connections in order of arrival. */
  received(): Buffer;
  /** Resolves with the messages once at least n were recorded; rejects after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** Destroys every open connection now, without a reply (a crashed or restarted backend). */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startSink(options: SinkOptions = {}): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const wire: Buffer[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let connections = 0;

  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: options.starttls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    useXClient: options.advertiseXclient ?? false,
    size: options.size ?? 10_240_000,
    hideDSN: !(options.dsn ?? false),
    hide8BITMIME: !(options.eightBitMime ?? true),
    hideSMTPUTF8: !(options.smtpUtf8 ?? true),
    ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
    onConnect(_session, callback) {
      connections++;
      callback(asError(sink.behaviour.connect?.(connections)));
    },
    onMailFrom(address, _session, callback) {
      callback(asError(sink.behaviour.mail?.(address.address)));
    },
    onRcptTo(address, _session, callback) {
      callback(asError(sink.behaviour.rcpt?.(address.address)));
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        if (stream.sizeExceeded) {
          callback(asError({ code: 552, message: '5.3.4 Message size exceeds fixed limit' }));
          return;
        }
        const decision = sink.behaviour.data?.(raw);
        if (decision === 'hang') return;
        if (decision === 'drop') {
          for (const connection of server.connections) {
            if (connection.id === session.id) connection._socket.destroy();
          }
          return;
        }
        const error = asError(decision);
        if (!error) record(session, raw);
        const text = typeof decision === 'object' ? decision.message : `2.0.0 Ok: queued as S${messages.length}`;
        callback(error, error ? undefined : text);
      });
    },
  });

  function record(session: SMTPServerSession, raw: Buffer): void {
    const { mailFrom, rcptTo } = session.envelope;
    messages.push({
      mailFrom: mailFrom ? mailFrom.address : '',
      mailParams: (mailFrom && mailFrom.args) || {},
      rcptTo: rcptTo.map((r) => r.address),
      rcptParams: rcptTo.map((r) => r.args || {}),
      raw,
      ...(session.xClient.size > 0 ? { xclient: xclientRecord(session.xClient) } : {}),
      helo: session.hostNameAppearsAs,
      secure: session.secure,
    });
    for (const waiter of [...waiters]) waiter();
  }

  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => wire.push(chunk));
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('error', () => undefined); // a client resetting its connection is not a test failure

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('sink: no TCP address');

  const sink: Sink = {
    host: '127.0.0.1',
    port: address.port,
    messages,
    behaviour: options.behaviour ?? {},
    get connections() {
      return connections;
    },
    received: () => Buffer.concat(wire),
    waitFor(n, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (messages.length < n) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(messages.slice());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink: ${messages.length} message(s) after ${timeoutMs} ms, expected ${n}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return sink;
}

function asError(reply: SinkReply | undefined): (Error & { responseCode: number }) | null {
  if (!reply || reply.code < 400) return null;
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

function xclientRecord(map: ReadonlyMap<string, string | number | false>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of map) {
    if (key.endsWith(':DEFAULT')) continue; // smtp-server's copy of the pre-XCLIENT value
    out[key] = value === false ? '[UNAVAILABLE]' : String(value);
  }
  return out;
}
