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
import { formatReply, REPLIES, type TempReply } from '../core/reply.ts';
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
  /** Writes a final reply line to a session's socket and closes it (bypassing the SMTP state machine). */
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
  const servers: net.Server[] = [];
  const perIp = new Map<string, number>();
  let total = 0;
  let draining = false;

  const refuse = (socket: net.Socket, reply: TempReply, reason: 'too-many-connections' | 'shutting-down'): void => {
    opts.onRefused?.(reason);
    socket.on('error', () => undefined);
    socket.end(`${reply.code} ${formatReply(reply)}\r\n`);
    setTimeout(() => socket.destroy(), 2_000).unref();
  };

  /** Live sessions: the socket replies go to (TLS after STARTTLS) and how to give their slots back. */
  const live = new Map<string, { socket: net.Socket; release: () => void }>();

  /**
   * A connection holds one total slot and one per-IP slot from accept until it ends. The end is
   * seen from several places, whichever comes first, and counted once: the raw socket's close
   * (smtp-server's STARTTLS upgrade removes every listener from the raw socket, so that one
   * alone would leak the slots of TLS sessions: STYLE.md §2.9), the TLS socket's close, and
   * smtp-server's own session close.
   */
  const handle = async (socket: net.Socket): Promise<void> => {
    total++;
    opts.onConnectionCount?.(total);
    let counted: string | null = null;
    let id: string | null = null;
    let released = false;
    let nodeSlot: { release(): void } | null = null;
    const release = (): void => {
      if (released) return;
      released = true;
      nodeSlot?.release();
      total--;
      opts.onConnectionCount?.(total);
      if (counted !== null) {
        const n = (perIp.get(counted) ?? 1) - 1;
        if (n <= 0) perIp.delete(counted);
        else perIp.set(counted, n);
      }
      if (id !== null) live.delete(id);
    };
    socket.once('close', release);
    if (draining) return refuse(socket, REPLIES.shuttingDown(), 'shutting-down');
    if (total > opts.maxConnections) return refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');

    const peer = normaliseIp(socket.remoteAddress ?? '') ?? '0.0.0.0';
    let remoteAddress = peer;
    let remotePort = socket.remotePort ?? 0;
    if (opts.proxyTrusted.has(peer)) {
      try {
        const proxied = await readProxyHeader(socket, opts.proxyHeaderTimeoutMs);
        if (proxied.remoteAddress) {
          remoteAddress = proxied.remoteAddress;
          remotePort = proxied.remotePort ?? 0;
        }
      } catch (err) {
        opts.onRefused?.('proxy-error');
        opts.logger.warn({ peer, err: (err as Error).message }, 'PROXY header refused');
        socket.destroy();
        return;
      }
    }
    if (released) return; // the client left while we read its PROXY header
    // by network for IPv6: one subscriber's /64 is one client, not 2^64 of them
    const key = clientKey(remoteAddress, opts.ipv6PrefixLength ?? 64);
    const n = (perIp.get(key) ?? 0) + 1;
    perIp.set(key, n);
    counted = key;
    if (n > opts.maxConnectionsPerIp) return refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');
    if (opts.admit) {
      const slot = await opts.admit(remoteAddress);
      if (released) return slot.release(); // the client left meanwhile
      if (!slot.ok) return refuse(socket, REPLIES.tooManyConnections(), 'too-many-connections');
      nodeSlot = slot;
    }

    const server = opts.xclientTrusted.has(remoteAddress) ? opts.servers.xclient : opts.servers.plain;
    id = sessionId();
    live.set(id, { socket, release });
    server.connect(socket, { id, remoteAddress, remotePort });
  };

  return {
    async start() {
      const bound: Array<{ host: string; port: number }> = [];
      for (const entry of opts.listen) {
        const { host, port } = parseHostPort(entry);
        const server = net.createServer({ noDelay: true }, (socket) => {
          handle(socket).catch((err: unknown) => {
            opts.logger.error({ err }, 'connection setup failed');
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
        server.on('error', (err) => opts.logger.error({ err }, 'listener error'));
        const addr = server.address() as net.AddressInfo;
        bound.push({ host: addr.address, port: addr.port });
        servers.push(server);
      }
      return bound;
    },
    drain() {
      draining = true;
    },
    async stop() {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      servers.length = 0;
    },
    connectionCount: () => total,
    dropSession(sessionId, line) {
      const session = live.get(sessionId);
      if (!session) return;
      const { socket } = session;
      socket.end(line.endsWith('\r\n') ? line : line + '\r\n');
      setTimeout(() => socket.destroy(), 1_000).unref();
    },
    adoptSocket(sessionId, socket) {
      const session = live.get(sessionId);
      if (!session) return;
      session.socket = socket;
      socket.once('close', session.release);
    },
    sessionClosed(sessionId) {
      live.get(sessionId)?.release();
    },
  };
}
