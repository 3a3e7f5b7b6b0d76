/**
 * The soak's backend: a line-level SMTP server standing in for Postfix, whose every step can be
 * told to fail (4xx, 5xx), hang (never answer) or drop the connection, and which can be killed
 * (listener closed, every connection cut: connection refused until restarted) and restarted on
 * the same port. It records each message it accepted: Message-ID, body checksum, header block.
 *
 * Line-level rather than smtp-server so that the greeting, EHLO, the DATA command and the
 * middle of the message can fail too, and so that a message counts as accepted only when the
 * 250 is written on a connection that is still open (what a real store has committed).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

export type Step = 'connect' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'body' | 'dot';
export type Fault = 'ok' | 'tempfail' | 'reject' | 'hang' | 'drop';
/** What the backend does at a step; the soak's fault schedule swaps it. */
export type FaultPlan = (step: Step) => Fault;

export const CALM: FaultPlan = () => 'ok';

export interface AcceptedMessage {
  readonly messageId: string | null;
  /** sha256 (hex) of everything after the header block's blank line. */
  readonly bodySha: string;
  /** The header block as received (our Received and Authentication-Results on top). */
  readonly header: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** Lines of the message holding a bare CR or LF (Postfix would end lines, or DATA, there). */
  readonly bareLineEndings: number;
}

export interface SoakBackend {
  readonly port: number;
  readonly messages: AcceptedMessage[];
  plan: FaultPlan;
  /** Called with every RCPT address the backend is asked about (the fuzzer checks relaying). */
  onRcpt: ((address: string) => void) | null;
  /** Called with every message accepted; `keep: false` leaves `messages` empty (long fuzz runs). */
  onAccepted: ((message: AcceptedMessage) => void) | null;
  keep: boolean;
  /** Faults injected so far, "step:fault" → count. */
  readonly injected: Map<string, number>;
  /** Connections accepted so far and how many are open. */
  connections(): { total: number; open: number };
  /** A crash: stop listening and cut every connection without a word. */
  kill(): Promise<void>;
  /** Listen again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const REPLIES: Record<Exclude<Step, 'body'>, { ok: string; tempfail: string; reject: string }> = {
  connect: { ok: '220 backend.soak ESMTP', tempfail: '421 4.3.2 soak: not now', reject: '554 5.3.2 soak: no service' },
  ehlo: { ok: '250-backend.soak\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 20480000', tempfail: '451 4.3.0 soak: EHLO deferred', reject: '550 5.7.0 soak: EHLO refused' },
  mail: { ok: '250 2.1.0 Ok', tempfail: '451 4.3.0 soak: sender deferred', reject: '550 5.7.1 soak: sender refused' },
  // 5.7.1, not 5.1.1: a mailbox refusal would be cached by the gateway and outlive the fault phase
  rcpt: { ok: '250 2.1.5 Ok', tempfail: '450 4.2.0 soak: mailbox busy', reject: '550 5.7.1 soak: recipient refused' },
  data: { ok: '354 End data with <CR><LF>.<CR><LF>', tempfail: '451 4.3.0 soak: DATA deferred', reject: '554 5.5.0 soak: DATA refused' },
  dot: { ok: '250 2.0.0 Ok: queued', tempfail: '451 4.3.0 soak: not stored', reject: '554 5.7.1 soak: content refused' },
};

interface Session {
  readonly socket: net.Socket;
  buffer: string;
  /** Hung: the backend never says anything on this connection again. */
  hung: boolean;
  mailFrom: string | null;
  rcptTo: string[];
  /** Lines of the message being received (un-dot-stuffed), or null outside DATA. */
  data: string[] | null;
  /** The body step's fault: 'drop' cuts the connection once message bytes arrive. */
  dropInBody: boolean;
}

export async function startSoakBackend(): Promise<SoakBackend> {
  const messages: AcceptedMessage[] = [];
  const injected = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let total = 0;
  let port = 0;
  let server: net.Server | null = null;

  const backend: SoakBackend = {
    get port() {
      return port;
    },
    messages,
    plan: CALM,
    onRcpt: null,
    onAccepted: null,
    keep: true,
    injected,
    connections: () => ({ total, open: sockets.size }),
    async kill() {
      const s = server;
      server = null;
      for (const socket of sockets) socket.destroy();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async restart() {
      if (!server) server = await listen(port);
    },
    async close() {
      await backend.kill();
    },
  };

  const fault = (step: Step): Fault => {
    const planned = backend.plan(step);
    // in the middle of the message there is nothing to answer: only a drop is a fault there
    const f = step === 'body' && planned !== 'drop' ? 'ok' : planned;
    if (f !== 'ok') injected.set(`${step}:${f}`, (injected.get(`${step}:${f}`) ?? 0) + 1);
    return f;
  };

  /** Answers a step per its fault; false when the connection is over (hung, dropped, closed). */
  const answer = (s: Session, step: Exclude<Step, 'body'>, okReply?: string): boolean => {
    const f = fault(step);
    if (f === 'hang') {
      s.hung = true;
      return false;
    }
    if (f === 'drop') {
      s.socket.destroy();
      return false;
    }
    const reply = f === 'ok' ? okReply ?? REPLIES[step].ok : REPLIES[step][f];
    s.socket.write(reply + '\r\n');
    if (reply.startsWith('421') || (step === 'connect' && f !== 'ok')) {
      s.socket.end();
      return false;
    }
    return f === 'ok';
  };

  const endOfData = (s: Session): void => {
    const lines = s.data ?? [];
    s.data = null;
    const f = fault('dot');
    if (f === 'hang') {
      s.hung = true;
      return;
    }
    if (f === 'drop' || s.socket.destroyed || !s.socket.writable) {
      s.socket.destroy();
      return;
    }
    if (f === 'ok') {
      const accepted = record(lines, s.mailFrom ?? '', s.rcptTo);
      if (backend.keep) messages.push(accepted);
      backend.onAccepted?.(accepted);
    }
    s.socket.write(REPLIES.dot[f] + '\r\n');
    s.mailFrom = null;
    s.rcptTo = [];
  };

  const command = (s: Session, line: string): void => {
    const verb = line.split(/[ :]/, 1)[0]!.toUpperCase();
    switch (verb) {
      case 'EHLO': case 'HELO':
        s.mailFrom = null;
        s.rcptTo = [];
        answer(s, 'ehlo', verb === 'HELO' ? '250 backend.soak' : undefined);
        return;
      case 'MAIL':
        if (answer(s, 'mail')) s.mailFrom = /<([^>]*)>/.exec(line)?.[1] ?? '';
        return;
      case 'RCPT':
        if (s.mailFrom === null) return void s.socket.write('503 5.5.1 soak: MAIL first\r\n');
        backend.onRcpt?.(/<([^>]*)>/.exec(line)?.[1] ?? line);
        if (answer(s, 'rcpt')) s.rcptTo.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
        return;
      case 'DATA':
        if (s.rcptTo.length === 0) return void s.socket.write('554 5.5.1 soak: no valid recipients\r\n');
        s.dropInBody = fault('body') === 'drop';
        if (answer(s, 'data')) s.data = [];
        return;
      case 'RSET':
        s.mailFrom = null;
        s.rcptTo = [];
        return void s.socket.write('250 2.0.0 Ok\r\n');
      case 'NOOP':
        return void s.socket.write('250 2.0.0 Ok\r\n');
      case 'QUIT':
        s.socket.end('221 2.0.0 Bye\r\n');
        return;
      default:
        s.socket.write('502 5.5.2 soak: command not recognized\r\n');
    }
  };

  const onData = (s: Session, chunk: string): void => {
    if (s.hung) return;
    if (s.data !== null && s.dropInBody) {
      s.socket.destroy(); // the backend dies in the middle of the message
      return;
    }
    s.buffer += chunk;
    for (let nl = s.buffer.indexOf('\r\n'); nl >= 0 && !s.hung && !s.socket.destroyed; nl = s.buffer.indexOf('\r\n')) {
      const line = s.buffer.slice(0, nl);
      s.buffer = s.buffer.slice(nl + 2);
      if (s.data === null) command(s, line);
      else if (line === '.') endOfData(s);
      else s.data.push(line.startsWith('.') ? line.slice(1) : line); // RFC 5321 §4.5.2
    }
  };

  async function listen(onPort: number): Promise<net.Server> {
    const srv = net.createServer((socket) => {
      total++;
      sockets.add(socket);
      socket.setEncoding('latin1');
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      const s: Session = { socket, buffer: '', hung: false, mailFrom: null, rcptTo: [], data: null, dropInBody: false };
      socket.on('data', (chunk: string) => onData(s, chunk));
      answer(s, 'connect');
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(onPort, '127.0.0.1', () => {
        srv.off('error', reject);
        resolve();
      });
    });
    port = (srv.address() as net.AddressInfo).port;
    return srv;
  }

  server = await listen(0);
  return backend;
}

function record(lines: readonly string[], mailFrom: string, rcptTo: readonly string[]): AcceptedMessage {
  const blank = lines.indexOf('');
  const headerLines = blank < 0 ? lines : lines.slice(0, blank);
  const body = blank < 0 ? '' : lines.slice(blank + 1).map((l) => l + '\r\n').join('');
  const header = headerLines.map((l) => l + '\r\n').join('');
  const bareLineEndings = lines.filter((l) => /[\r\n]/.test(l)).length;
  return { messageId: messageIdOf(header), bodySha: sha256(body), header, mailFrom, rcptTo: [...rcptTo], bareLineEndings };
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'latin1').digest('hex');
}

/** The Message-ID field's value (unfolded, first one), as the accounting keys messages. */
export function messageIdOf(header: string): string | null {
  const unfolded = header.replace(/\r\n[ \t]+/g, ' ');
  return /^message-id:[ \t]*(<[^>\r\n]*>)/im.exec(unfolded)?.[1] ?? null;
}
