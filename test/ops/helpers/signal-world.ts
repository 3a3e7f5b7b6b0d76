/**
 * What the signal tests share: a loopback DNS server with the standard zone, a backend that
 * can hold its replies, and gateways started as child processes of the real CLI against them
 * (configured through POSTERN_* as an operator would). Everything is given back by close().
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startChildGateway, type ChildGateway } from '../../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../../harness/dns-server.ts';
import { dkimKey } from '../../harness/mail.ts';
import { SmtpTestClient } from '../../harness/smtp-client.ts';
import { standardZone } from '../../harness/world.ts';
import { startHeldBackend, type HeldBackend } from './held-backend.ts';

export interface SignalWorld {
  readonly dns: DnsTestServer;
  readonly backend: HeldBackend;
  /** A gateway process on 127.0.0.1 port 0; `extra` overrides or adds POSTERN_* variables. */
  start(extra?: Record<string, string>): Promise<ChildGateway>;
  /** A folder removed by close(). */
  keep(dir: string): void;
  close(): Promise<void>;
}

export async function startSignalWorld(): Promise<SignalWorld> {
  const dns = await startDnsServer(standardZone({ rsa: dkimKey('rsa', 1024), ed25519: dkimKey('ed25519') }));
  const backend = await startHeldBackend();
  const children: ChildGateway[] = [];
  const dirs: string[] = [];
  return {
    dns,
    backend,
    async start(extra = {}) {
      const child = await startChildGateway({
        POSTERN_LISTEN: '127.0.0.1:0',
        POSTERN_METRICS_LISTEN: '127.0.0.1:0',
        POSTERN_HOSTNAME: 'mx.postern.test',
        POSTERN_DOMAINS: 'example.net',
        POSTERN_BACKEND_HOST: '127.0.0.1',
        POSTERN_BACKEND_PORT: String(backend.port),
        POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`,
        POSTERN_SHUTDOWN_DRAIN_TIMEOUT_MS: '10000',
        ...extra,
      });
      children.push(child);
      return child;
    },
    keep: (dir) => void dirs.push(dir),
    async close() {
      for (const c of children) await c.kill();
      await backend.close();
      await dns.close();
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

/** A client past EHLO, MAIL and RCPT (each asserted 250), ready to send DATA. */
export async function atData(port: number, from: string, to: string): Promise<SmtpTestClient> {
  const { client, greeting } = await SmtpTestClient.connect(port);
  assert.equal(greeting.code, 220);
  try {
    assert.equal((await client.cmd('EHLO client.example')).code, 250);
    assert.equal((await client.cmd(`MAIL FROM:<${from}>`)).code, 250);
    assert.equal((await client.cmd(`RCPT TO:<${to}>`)).code, 250);
  } catch (err) {
    client.destroy();
    throw err;
  }
  return client;
}
