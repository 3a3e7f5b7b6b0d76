/**
 * deploy/postern.example.yaml runs as it is on a plain host with a Postfix on 127.0.0.1:10025:
 * the real CLI checks and serves it unchanged. Only ports are overridden through the
 * environment, as the tests must never bind port 25 and the backend is a sink on a free port;
 * and the resolver, because tests send no traffic off the machine (the file itself uses the
 * system resolvers, which is what makes it run on any host).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../harness/cli.ts';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey, message } from '../harness/mail.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { standardZone } from '../harness/world.ts';
import { DEPLOY, freePort } from './helpers/tools.ts';

const EXAMPLE = path.join(DEPLOY, 'postern.example.yaml');

describe('deploy/postern.example.yaml as it is', () => {
  let dns: DnsTestServer;
  let sink: Sink;
  const children: ChildGateway[] = [];
  before(async () => {
    dns = await startDnsServer({ ...standardZone({ rsa: dkimKey('rsa', 1024), ed25519: dkimKey('ed25519') }) });
    sink = await startSink();
  });
  after(async () => {
    for (const c of children) await c.kill();
    await sink.close();
    await dns.close();
  });

  const ports = (backend: number): Record<string, string> => ({
    POSTERN_CONFIG: EXAMPLE, POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_BACKEND_PORT: String(backend),
  });

  it('passes check-config with the shipped policy set (no policies/ beside it)', async () => {
    const r = await runCli(['check-config'], { ...ports(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^domains: example\.com, example\.org$/m);
    assert.match(r.stdout, /the shipped default set is used/);
  });

  it('serves: ready, delivers mail for its domains to the backend, refuses relaying', async () => {
    const gw = await startChildGateway({ ...ports(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}` });
    children.push(gw);
    assert.ok(gw.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('using the shipped default policies')));
    assert.ok(!gw.logs.some((l) => (l.level as number) >= 40), `no warning at start: ${JSON.stringify(gw.logs.filter((l) => (l.level as number) >= 40))}`);
    const ready = await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    const r = await sendMail(gw.smtpPort, { from: 'bob@good.example', to: ['user@example.com', 'victim@elsewhere.example'], message: message({ from: 'bob@good.example' }) });
    assert.deepEqual(r.rcpt.map((x) => x.code), [250, 550]);
    assert.equal(r.data?.code, 250, r.data?.text);
    assert.deepEqual(sink.messages.at(-1)?.rcptTo, ['user@example.com']);
    assert.match(sink.messages.at(-1)!.raw.toString(), /^Authentication-Results: mx1\.example\.com;/m);
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('says at start, in one warning line each, that the backend and the resolvers do not answer', async () => {
    const closed = await freePort();
    const gw = await startChildGateway({ ...ports(closed), POSTERN_DNS_SERVERS: `127.0.0.1:${closed}` });
    children.push(gw);
    const backend = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('backend does not answer at start'));
    assert.equal(backend.level, 40);
    assert.equal(backend.backend, `127.0.0.1:${closed}`);
    const resolvers = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('no DNS resolver answers'));
    assert.equal(resolvers.level, 40);
    assert.match(String(resolvers.error), new RegExp(`127\\.0\\.0\\.1:${closed} unreachable`));
    const ready = await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`);
    assert.equal(ready.status, 503);
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });
});
