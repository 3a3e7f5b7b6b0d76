/**
 * smtp-server re-emits socket and TLS errors of its sessions on the server object; without a
 * listener an EventEmitter 'error' would end the process. A client's broken connection is its
 * problem: logged at info, TLS failures counted. A failed handshake reaches us once per TLS
 * socket event that reports it ('_tlsError', then 'error' with the same object): counted and
 * logged once.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import type { SmtpServers } from '../smtp/server.ts';

export function watchClientErrors(servers: SmtpServers, metrics: Metrics, logger: Logger): void {
  const seen = new WeakSet<Error>();
  for (const s of [servers.plain, servers.xclient]) {
    s.on('connect', () => metrics.connections.inc({ outcome: 'accepted', reason: 'ok' }));
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (seen.has(err)) return;
      seen.add(err);
      const tls = /TLS|SSL/i.test(`${err.code ?? ''} ${err.message}`);
      if (tls) metrics.tlsHandshakes.inc({ outcome: 'failed' });
      logger.info({ err: err.message, code: err.code }, tls ? 'TLS error on a client connection' : 'client connection error');
    });
  }
}
