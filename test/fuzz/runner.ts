/**
 * Runs fuzz inputs against a running gateway over real sockets and checks what must hold for
 * every input, whatever it is:
 * - no hang: the connection ends within the deadline (we end each input with "\r\n.\r\nQUIT");
 * - replies are well-formed SMTP lines, never a stack trace, never an internal error (4.3.0);
 * - no recipient outside our domain, or with routing syntax, gets 250, and the backend is
 *   never asked about one;
 * - a forged From of a p=reject domain never gets 2xx at the end of DATA;
 * - every 250 at the end of DATA is exactly one message at the backend, nothing arrives there
 *   without one (messages are tied to sessions by our Received field's id), with no bare CR or
 *   LF left in it (no end-of-data sequence smuggled to Postfix), from the client address the
 *   connection really had (a PROXY header counts only from the trusted peer), and a benign
 *   message arrives byte for byte.
 * The gateway runs in this process (test/harness/gateway.ts), so a crash is a crash here.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { startGateway, type TestGateway } from '../harness/gateway.ts';
import { dkimKey } from '../harness/mail.ts';
import { standardZone } from '../harness/world.ts';
import { sha256, startSoakBackend, type AcceptedMessage, type SoakBackend } from '../soak/backend.ts';
import { mayAccept, type FuzzInput, type MessageChunk, type StepInput } from './arbitraries.ts';

const TRUSTED_PEER = '127.0.0.2';
const UNTRUSTED_PEER = '127.0.0.1';
const LIMIT = { socketTimeoutMs: 10_000, dataTimeoutMs: 20_000 };
/** Far above every gateway timeout: a connection still open then is a hang. */
const DEADLINE_MS = 90_000;

interface Reply {
  readonly code: number;
  readonly lines: readonly string[];
}

export interface FuzzStats {
  inputs: number;
  byMode: Record<string, number>;
  delivered: number;
  forgedRefused: number;
  replyClasses: Record<string, number>;
}

export interface FuzzWorld {
  readonly gw: TestGateway;
  readonly stats: FuzzStats;
  /** Problems seen outside any one input (the backend asked about a foreign recipient). */
  readonly globalProblems: string[];
  run(input: FuzzInput): Promise<string[]>;
  /** After the run: messages at the backend that no session got a 250 for, and a last clean delivery. */
  finish(): Promise<string[]>;
  close(): Promise<void>;
}

export async function startFuzzWorld(): Promise<FuzzWorld> {
  const dns: DnsTestServer = await startDnsServer(standardZone({ rsa: dkimKey('rsa'), ed25519: dkimKey('ed25519') }));
  const backend: SoakBackend = await startSoakBackend();
  const unlimited = { rate: '10000000/min', burst: 10_000_000 };
  const gw = await startGateway({
    dnsPort: dns.port, backendPort: backend.port,
    config: {
      proxyProtocol: { trusted: [`${TRUSTED_PEER}/32`] },
      limits: { maxConnections: 10_000, maxConnectionsPerIp: 5_000, ...LIMIT },
      backend: { connectTimeoutMs: 5_000, commandTimeoutMs: 5_000, dataTimeoutMs: 10_000 },
      rateLimits: Object.fromEntries(['ipConnections', 'netConnections', 'ipMessages', 'netMessages', 'domainMessages', 'ipRecipients', 'netRecipients', 'rcptMessages'].map((k) => [k, unlimited])),
      log: { level: 'warn' },
    },
  });
  const bySid = new Map<string, AcceptedMessage[]>();
  const globalProblems: string[] = [];
  backend.keep = false;
  backend.onAccepted = (m) => {
    const sid = ours(m.header)?.sid ?? '(no Received of ours)';
    bySid.set(sid, [...(bySid.get(sid) ?? []), m]);
  };
  backend.onRcpt = (address) => {
    if (!mayAccept(address)) globalProblems.push(`the backend was asked about RCPT <${address}>`);
    // U+FFFD (EF BF BD): an 8-bit local part decoded as UTF-8 without SMTPUTF8, i.e. another mailbox
    if (address.includes('\xef\xbf\xbd')) globalProblems.push(`the backend was asked about a rewritten mailbox <${address}>`);
  };
  const stats: FuzzStats = { inputs: 0, byMode: {}, delivered: 0, forgedRefused: 0, replyClasses: {} };

  return {
    gw, stats, globalProblems,
    async run(input) {
      stats.inputs++;
      const kind = input.mode === 'raw' ? (input.proxied ? 'proxy-untrusted' : input.early ? 'raw-early' : 'raw') : input.proxy ? `proxy-${input.peer}` : 'session';
      stats.byMode[kind] = (stats.byMode[kind] ?? 0) + 1;
      if (gw.logs.length > 10_000) gw.logs.length = 0; // long runs: keep memory flat
      const problems = await runOne(gw.port, input, bySid, stats);
      return [...problems, ...globalProblems];
    },
    async finish() {
      const problems = [...globalProblems];
      for (const [sid, messages] of bySid) problems.push(`${messages.length} message(s) at the backend from session ${sid} without a 250 to the client`);
      const clean = await runOne(gw.port, {
        mode: 'step', peer: 'untrusted', proxy: null, chunks: [
          { kind: 'cmd', line: 'EHLO last.fuzz.test' }, { kind: 'cmd', line: 'MAIL FROM:<last@plain.example>' }, { kind: 'cmd', line: 'RCPT TO:<user@example.net>', rcpt: 'user@example.net' }, { kind: 'cmd', line: 'DATA' },
          { kind: 'message', expect: 'intact', content: Buffer.from('From: <last@plain.example>\r\nSubject: still alive\r\n\r\nAfter the fuzz.\r\n') },
        ],
      }, bySid, stats, true);
      return [...problems, ...clean];
    },
    async close() {
      await gw.close();
      await backend.close();
      await dns.close();
    },
  };
}

/** Our Received field (the first one naming us): the session id and the client address literal. */
function ours(header: string): { sid: string; ip: string } | null {
  const fields = header.replace(/\r\n[ \t]+/g, ' ').split('\r\n');
  const field = fields.find((f) => /^Received: .* by mx\.postern\.test \(Postern\)/i.test(f));
  const m = field ? /\(\S* ?\[(?:IPv6:)?([^\]]+)\]\).* id ([0-9a-z]+)/.exec(field) : null;
  return m ? { ip: m[1]!, sid: m[2]! } : null;
}

const sameIp = (a: string, b: string): boolean => ipaddr.isValid(a) && ipaddr.isValid(b) && ipaddr.process(a).toString() === ipaddr.process(b).toString();

/** A client connection that parses replies as they come and knows when the server closed. */
class Conn {
  readonly socket: net.Socket;
  readonly replies: Reply[] = [];
  #buffer = '';
  #lines: string[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(port: number, localAddress: string) {
    this.socket = net.connect({ host: '127.0.0.1', port, localAddress });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.#buffer += d;
      for (let nl = this.#buffer.indexOf('\r\n'); nl >= 0; nl = this.#buffer.indexOf('\r\n')) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 2);
        this.#lines.push(line);
        if (!/^\d{3}-/.test(line)) {
          this.replies.push({ code: Number(line.slice(0, 3)), lines: this.#lines });
          this.#lines = [];
        }
      }
      this.#wake?.();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Waits until `n` replies have come, the connection closed, or the deadline passed. */
  async until(n: number, deadline: number): Promise<Reply | null> {
    while (this.replies.length < n && !this.#closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.replies[n - 1] ?? null;
  }

  /** The trailing bytes every input ends with: close DATA if it is open, then QUIT. */
  async end(deadline: number): Promise<boolean> {
    if (!this.#closed) this.socket.write('\r\n.\r\nQUIT\r\n');
    await this.until(Number.MAX_SAFE_INTEGER, deadline);
    this.socket.destroy();
    return this.#closed;
  }
}

/** RFC 5321 §4.5.2 for the content, and the terminator. */
function dataBytes(m: MessageChunk): Buffer {
  const text = m.content.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(`${text}${text.endsWith('\r\n') ? '' : '\r\n'}.\r\n`, 'latin1');
}

async function runOne(port: number, input: FuzzInput, bySid: Map<string, AcceptedMessage[]>, stats: FuzzStats, mustDeliver = false): Promise<string[]> {
  const problems: string[] = [];
  const deadline = Date.now() + DEADLINE_MS;
  const conn = new Conn(port, input.peer === 'trusted' ? TRUSTED_PEER : UNTRUSTED_PEER);
  /** Message chunks in the order they got a 250 at the end of DATA. */
  const delivered: MessageChunk[] = [];
  if (input.mode === 'raw') {
    if (!input.early) await conn.until(1, deadline); // the greeting: after it, anything goes
    for (const piece of input.pieces) conn.socket.write(piece);
  } else {
    if (input.proxy) conn.socket.write(input.proxy.bytes);
    await step(conn, input, deadline, problems, delivered, stats);
  }
  if (!await conn.end(deadline)) problems.push(`the connection was still open after ${DEADLINE_MS} ms (a hang)`);

  const queued = new Map<string, number>();
  for (const r of conn.replies) {
    const cls = `${String(r.code)[0]}xx`;
    stats.replyClasses[cls] = (stats.replyClasses[cls] ?? 0) + 1;
    for (const line of r.lines) {
      if (!/^[2-5]\d\d([ -]|$)/.test(line)) problems.push(`malformed reply line ${JSON.stringify(line.slice(0, 120))}`);
      if (/4\.3\.0 Temporary local problem|\bat .*\.(ts|js):\d+|node:internal/.test(line)) problems.push(`internal error: ${line.slice(0, 160)}`);
    }
    const sid = /\(([0-9a-z]{10,})\)$/.exec(r.lines.at(-1) ?? '')?.[1];
    if (sid && r.code === 250 && /Ok: queued/.test(r.lines.at(-1) ?? '')) queued.set(sid, (queued.get(sid) ?? 0) + 1);
    else if (sid && !queued.has(sid)) queued.set(sid, 0);
  }
  const expectedIp = input.peer === 'untrusted' ? UNTRUSTED_PEER : input.mode === 'step' && input.proxy ? input.proxy.claims === null ? TRUSTED_PEER : input.proxy.claims : TRUSTED_PEER;
  let nth = 0;
  for (const [sid, count] of queued) {
    const got = bySid.get(sid) ?? [];
    bySid.delete(sid);
    stats.delivered += got.length;
    if (got.length !== count) problems.push(`session ${sid}: ${count} x 250 at the end of DATA, ${got.length} message(s) at the backend`);
    for (const m of got) {
      if (m.bareLineEndings > 0) problems.push(`session ${sid}: ${m.bareLineEndings} line(s) with a bare CR or LF reached the backend`);
      const seen = ours(m.header)?.ip ?? '?';
      if (expectedIp !== undefined && !sameIp(seen, expectedIp)) problems.push(`session ${sid}: relayed as from [${seen}], the connection was from ${expectedIp}`);
      const sent = delivered[nth++];
      if (sent?.expect === 'intact') problems.push(...intact(sid, sent, m));
    }
  }
  if (mustDeliver && delivered.length === 0) problems.push(`a clean message was not delivered: ${conn.replies.map((r) => r.lines.at(-1)).join(' | ')}`);
  return problems;
}

/** Step mode: one command, one reply; the message only after 354. */
async function step(conn: Conn, input: StepInput, deadline: number, problems: string[], delivered: MessageChunk[], stats: FuzzStats): Promise<void> {
  let last = await conn.until(1, deadline); // greeting
  for (const chunk of input.chunks) {
    if (!last || conn.closed || last.code === 421) return;
    if (chunk.kind === 'message' && last.code !== 354) continue;
    if (chunk.kind === 'cmd' && last.code === 354) return; // a message was skipped: the session is out of step
    conn.socket.write(chunk.kind === 'cmd' ? Buffer.from(`${chunk.line}\r\n`, 'latin1') : dataBytes(chunk));
    last = await conn.until(conn.replies.length + 1, deadline);
    if (!last) return;
    if (chunk.kind === 'cmd' && chunk.rcpt !== undefined && last.code === 250 && !mayAccept(chunk.rcpt)) problems.push(`RCPT <${chunk.rcpt}> got 250 (relaying)`);
    if (chunk.kind === 'message') {
      if (last.code === 250) delivered.push(chunk);
      if (chunk.expect === 'refuse' && last.code < 400) problems.push(`${chunk.what ?? 'a message to refuse'} got ${last.lines.at(-1)}`);
      if (chunk.expect === 'refuse' && last.code >= 500) stats.forgedRefused++;
    }
  }
}

function intact(sid: string, sent: MessageChunk, got: AcceptedMessage): string[] {
  const text = sent.content.toString('latin1');
  const cut = text.indexOf('\r\n\r\n');
  const header = cut < 0 ? text : text.slice(0, cut + 2);
  const body = cut < 0 ? '' : text.slice(cut + 4);
  const out: string[] = [];
  if (!got.header.endsWith(header)) out.push(`session ${sid}: the header arrived altered`);
  if (got.bodySha !== sha256(body.endsWith('\r\n') || body === '' ? body : body + '\r\n')) out.push(`session ${sid}: the body arrived altered`);
  return out;
}
