/**
 * TCP listeners in front of smtp-server: connection limits (total and per client IP), PROXY
 * v1/v2 from trusted CIDRs only, the choice of the session flavour (XCLIENT allowed or not,
 * by CIDR, which smtp-server cannot do), and the 421 answer while draining.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/load.ts';
import { listenError } from '../core/listen-error.ts';
import type { CidrSet } from '../core/ip.ts';
import { clientKey, normaliseIp } from '../core/ip.ts';
import { REPLIES, wireLine, type TempReply } from '../core/reply.ts';
import { shutdownReply } from '../pipeline/replies.ts';
import type { PosternSmtpServer } from './connection.ts';
import { readProxyHeader } from './proxy.ts';

export interface ListenerOptions {
  readonly listen: readonly string[];
  readonly proxyTrusted: CidrSet;
  readonly xclientTrusted: CidrSet;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** IPv6 clients count against maxConnectionsPerIp by their network of this length (default 64). */
  readonly ipv6PrefixLength?: number;
  readonly proxyHeaderTimeoutMs: number;
  /** Sessions without XCLIENT, and the one that allows it (for xclientTrusted peers). */
  readonly servers: { readonly plain: PosternSmtpServer; readonly xclient: PosternSmtpServer };
  readonly logger: Logger;
  readonly onRefused?: (reason: 'too-many-connections' | 'shutting-down' | 'proxy-error') => void;
  /** Connection slots held, after every change (the open-connections gauge). */
  readonly onConnectionCount?: (open: number) => void;
  /**
   * A session's socket closed (told at once; smtp-server's own close handler runs a turn
   * later): a stage still waiting on the backend must know there is nobody to answer.
   */
  readonly onSocketClosed?: (sessionId: string) => void;
  /**
   * With workers: a node-wide slot for the client (src/cluster/slots.ts), asked after this
   * process's own limits passed; released with the connection. Absent: this process is the node.
   */
  readonly admit?: (ip: string) => Promise<{ readonly ok: boolean; release(): void }>;
}

export interface Listener {
  /** Binds every address; resolves with the bound addresses (port 0 → the ephemeral port). */
  start(): Promise<Array<{ host: string; port: number }>>;
  /** From now on new connections get 421. */
  drain(): void;
  /** Stops listening. */
  stop(): Promise<void>;
  connectionCount(): number;
  /** Writes a final reply line (wireLine) to a session's socket and closes it (bypassing the SMTP state machine). */
  dropSession(sessionId: string, line: string): void;
  /**
   * The session now talks over `socket` (STARTTLS): replies written by dropSession go there,
   * and its close gives the slots back too.
   */
  adoptSocket(sessionId: string, socket: net.Socket): void;
  /** The SMTP session ended (smtp-server's close): its connection slots are given back. */
  sessionClosed(sessionId: string): void;
}

/** Same alphabet and length as smtp-server's own ids, so logs look alike. */
function sessionId(): string {
  return BigInt('0x' + crypto.randomBytes(10).toString('hex')).toString(32).padStart(16, '0');
}

export function createListener(opts: ListenerOptions): Listener {
  return new SmtpListener(opts);
}

type Refusal = 'too-many-connections' | 'shutting-down';

class SmtpListener implements Listener {
  readonly #opts: ListenerOptions;
  readonly #servers: net.Server[] = [];
  readonly #perIp = new Map<string, number>();
  /** Live sessions: the socket replies go to (TLS after STARTTLS) and how to give their slots back. */
  readonly #live = new Map<string, { socket: net.Socket; release: () => void }>();
  #total = 0;
  #draining = false;

  constructor(opts: ListenerOptions) {
    this.#opts = opts;
  }

  async start(): Promise<Array<{ host: string; port: number }>> {
    const bound: Array<{ host: string; port: number }> = [];
    for (const entry of this.#opts.listen) bound.push(await this.#bind(entry));
    return bound;
  }

  drain(): void {
    this.#draining = true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.#servers.length = 0;
  }

  connectionCount(): number {
    return this.#total;
  }

  dropSession(sessionId: string, line: string): void {
    const session = this.#live.get(sessionId);
    if (!session) return;
    const { socket } = session;
    socket.end(line.endsWith('\r\n') ? line : line + '\r\n');
    setTimeout(() => socket.destroy(), 1_000).unref();
  }

  adoptSocket(sessionId: string, socket: net.Socket): void {
    const session = this.#live.get(sessionId);
    if (!session) return;
    session.socket = socket;
    socket.once('close', session.release);
  }

  sessionClosed(sessionId: string): void {
    this.#live.get(sessionId)?.release();
  }

  async #bind(entry: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseHostPort(entry);
    const server = net.createServer({ noDelay: true }, (socket) => {
      this.#handle(socket).catch((err: unknown) => {
        this.#opts.logger.error({ err }, 'connection setup failed');
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError('listen', entry, err)));
      // An IPv6 address listens for IPv6 only, so "0.0.0.0:25" and "[::]:25" can both be listed.
      server.listen({ host, port, ipv6Only: host.includes(':') }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#opts.logger.error({ err }, 'listener error'));
    const addr = server.address() as net.AddressInfo;
    this.#servers.push(server);
    return { host: addr.address, port: addr.port };
  }

  /**
   * A connection holds one total slot and one per-IP slot from accept until it ends. The end is
   * seen from several places, whichever comes first, and counted once: the raw socket's close
   * (smtp-server's STARTTLS upgrade removes every listener from the raw socket, so that one
   * alone would leak the slots of TLS sessions: STYLE.md §2.9), the TLS socket's close, and
   * smtp-server's own session close.
   */
  async #handle(socket: net.Socket): Promise<void> {
    const opts = this.#opts;
    this.#total++;
    opts.onConnectionCount?.(this.#total);
    let counted: string | null = null;
    let id: string | null = null;
    let released = false;
    let nodeSlot: { release(): void } | null = null;
    const release = (): void => {
      if (released) return;
      released = true;
      nodeSlot?.release();
      this.#total--;
      opts.onConnectionCount?.(this.#total);
      if (counted !== null) this.#uncount(counted);
      if (id !== null) {
        this.#live.delete(id);
        opts.onSocketClosed?.(id);
      }
    };
    socket.once('close', release);
    if (this.#draining) return this.#refuse(socket, shutdownReply(), 'shutting-down');
    if (this.#total > opts.maxConnections) return this.#refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');

    const client = await this.#clientOf(socket);
    if (client === null) return; // a PROXY header refused: the socket is gone
    if (released) return; // the client left while we read its PROXY header
    // by network for IPv6: one subscriber's /64 is one client, not 2^64 of them
    counted = clientKey(client.remoteAddress, opts.ipv6PrefixLength ?? 64);
    if (this.#count(counted) > opts.maxConnectionsPerIp) return this.#refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');
    if (opts.admit) {
      const slot = await opts.admit(client.remoteAddress);
      if (released) return slot.release(); // the client left meanwhile
      if (!slot.ok) return this.#refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');
      nodeSlot = slot;
    }

    const server = opts.xclientTrusted.has(client.remoteAddress) ? opts.servers.xclient : opts.servers.plain;
    id = sessionId();
    this.#live.set(id, { socket, release });
    server.connect(socket, { id, remoteAddress: client.remoteAddress, remotePort: client.remotePort });
  }

  /** The client's address: the peer's, or from its PROXY header when the peer is trusted; null when that header was refused. */
  async #clientOf(socket: net.Socket): Promise<{ remoteAddress: string; remotePort: number } | null> {
    const peer = normaliseIp(socket.remoteAddress ?? '') ?? '0.0.0.0';
    const direct = { remoteAddress: peer, remotePort: socket.remotePort ?? 0 };
    if (!this.#opts.proxyTrusted.has(peer)) return direct;
    try {
      const proxied = await readProxyHeader(socket, this.#opts.proxyHeaderTimeoutMs);
      return proxied.remoteAddress ? { remoteAddress: proxied.remoteAddress, remotePort: proxied.remotePort ?? 0 } : direct;
    } catch (err) {
      this.#opts.onRefused?.('proxy-error');
      this.#opts.logger.warn({ peer, err: (err as Error).message }, 'PROXY header refused');
      socket.destroy();
      return null;
    }
  }

  /** One more connection of this client; returns its count. */
  #count(key: string): number {
    const n = (this.#perIp.get(key) ?? 0) + 1;
    this.#perIp.set(key, n);
    return n;
  }

  #uncount(key: string): void {
    const n = (this.#perIp.get(key) ?? 1) - 1;
    if (n <= 0) this.#perIp.delete(key);
    else this.#perIp.set(key, n);
  }

  #refuse(socket: net.Socket, reply: TempReply, reason: Refusal): void {
    this.#opts.onRefused?.(reason);
    socket.on('error', () => undefined);
    socket.end(`${wireLine(reply)}\r\n`);
    setTimeout(() => socket.destroy(), 2_000).unref();
  }
}
