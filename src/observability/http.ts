/** /metrics, /healthz (process alive) and /readyz (can take mail: JSON naming what is wrong). */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { parseHostPort } from '../config/load.ts';
import { listenError } from '../core/listen-error.ts';

export interface ReadinessCheck {
  readonly name: string;
  /** `degraded`: working around a problem (e.g. Redis down, fail-open): still ready, but say so. */
  check(): Promise<{ ok: true; degraded?: string } | { ok: false; error: string }>;
}

export interface HttpEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

export type CheckResult = { name: string } & Awaited<ReturnType<ReadinessCheck['check']>>;

/** Runs every check; one that throws is not ready, with its message. */
export function runChecks(checks: readonly ReadinessCheck[]): Promise<CheckResult[]> {
  return Promise.all(checks.map(async (c) => ({ name: c.name, ...(await c.check().catch((e: Error) => ({ ok: false as const, error: e.message }))) })));
}

/**
 * `registry` is what /metrics serves: a prom-client Registry, or anything with its metrics()
 * and contentType (a cluster primary's aggregation of its workers).
 */
export async function startHttp(listen: string, registry: Pick<Registry, 'metrics' | 'contentType'>, checks: () => readonly ReadinessCheck[]): Promise<HttpEndpoint> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n');
    if (url === '/metrics') {
      registry.metrics().then((text) => reply(200, registry.contentType, text), (err: Error) => reply(500, 'text/plain', `${err.message}\n`));
      return;
    }
    if (url === '/healthz') return reply(200, 'application/json', '{"status":"ok"}\n');
    if (url === '/readyz') {
      runChecks(checks())
        .then((results) => {
          const ok = results.every((r) => r.ok);
          const degraded = results.some((r) => r.ok && 'degraded' in r);
          const body = { status: ok ? (degraded ? 'degraded' : 'ready') : 'not ready', checks: Object.fromEntries(results.map(({ name, ...r }) => [name, r])) };
          reply(ok ? 200 : 503, 'application/json', JSON.stringify(body) + '\n');
        }, (err: Error) => reply(500, 'text/plain', `${err.message}\n`));
      return;
    }
    reply(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
  });
  const { host, port } = parseHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError('metrics.listen', listen, err)));
    server.listen({ host, port }, () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  return {
    port: bound,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
