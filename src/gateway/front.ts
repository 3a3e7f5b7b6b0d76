/**
 * The SMTP front: the TCP listener (connection slots, PROXY, the XCLIENT flavour) and the two
 * smtp-server instances behind it, wired to each other and to the metrics.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { cidrSet } from '../core/ip.ts';
import type { DnsResolver } from '../dns/index.ts';
import { confirmedReverseCallback } from '../dns/fcrdns.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import { createListener, type Listener, type ListenerOptions } from '../smtp/listener.ts';
import { createSmtpServers, type SmtpServers } from '../smtp/server.ts';
import { watchClientErrors } from './client-errors.ts';
import { sessionCount, type SessionCount } from './drain.ts';

export interface Front {
  readonly servers: SmtpServers;
  readonly listener: Listener;
  readonly count: SessionCount;
}

export function createFront(config: Config, ctx: {
  readonly deps: () => PipelineDeps;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly resolver: DnsResolver;
  readonly isDraining: () => boolean;
  /** The STARTTLS certificate and key as the start-up checks loaded them, or null. */
  readonly tls: { readonly key: Buffer; readonly cert: Buffer } | null;
  /** With workers: node-wide connection slots from the primary. */
  readonly admit?: ListenerOptions['admit'];
}): Front {
  const { metrics, logger } = ctx;
  const count = sessionCount((n) => metrics.sessionsInFlight.set(n));
  const servers = createSmtpServers({
    deps: ctx.deps, logger, hostname: config.hostname, maxMessageSize: config.limits.maxMessageSize,
    socketTimeoutMs: config.limits.socketTimeoutMs, closeTimeoutMs: config.shutdown.drainTimeoutMs, tls: ctx.tls,
    reverse: confirmedReverseCallback(ctx.resolver), isDraining: ctx.isDraining, onSessionCount: (n) => count.set(n),
    onSecure: (id, socket) => {
      metrics.tlsHandshakes.inc({ outcome: 'ok' });
      listener.adoptSocket(id, socket);
    },
    onSessionClosed: (id) => listener.sessionClosed(id),
    writeAndClose: (id, line) => listener.dropSession(id, line),
  });
  const listener = createListener({
    listen: config.listen,
    proxyTrusted: cidrSet(config.proxyProtocol.trusted),
    xclientTrusted: cidrSet(config.xclient.trusted),
    maxConnections: config.limits.maxConnections,
    maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
    ipv6PrefixLength: config.limits.ipv6PrefixLength,
    proxyHeaderTimeoutMs: 10_000,
    servers,
    logger,
    onRefused: (reason) => metrics.connections.inc({ outcome: 'refused', reason }),
    onConnectionCount: (n) => metrics.connectionsOpen.set(n),
    onSocketClosed: (id) => {
      const state = servers.sessions.get(id);
      if (state) state.closed = true;
    },
    ...(ctx.admit ? { admit: ctx.admit } : {}),
  });
  watchClientErrors(servers, metrics, logger);
  return { servers, listener, count };
}
