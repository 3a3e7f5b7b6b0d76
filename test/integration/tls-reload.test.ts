/**
 * A renewed certificate is taken on SIGHUP (systemctl reload), on the real CLI: sessions
 * already under TLS go on undisturbed, new STARTTLS sessions get the new certificate. A broken
 * new pair is refused: the old certificate stays, the failure is logged and counted.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey, message } from '../harness/mail.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { selfSignedPair } from '../harness/tls.ts';
import { standardZone } from '../harness/world.ts';

const fingerprint = (file: string): string => new X509Certificate(fs.readFileSync(file)).fingerprint256;

async function metric(port: number, series: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

async function tlsSession(port: number): Promise<SmtpTestClient> {
  const { client } = await SmtpTestClient.connect(port);
  assert.equal((await client.cmd('EHLO client.example')).code, 250);
  assert.equal((await client.startTls()).code, 220);
  assert.equal((await client.cmd('EHLO client.example')).code, 250);
  return client;
}

describe('TLS certificate reload on SIGHUP', () => {
  let dir: string;
  let dns: DnsTestServer;
  let sink: Sink;
  let gw: ChildGateway;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-tls-reload-'));
    dns = await startDnsServer(standardZone({ rsa: dkimKey('rsa', 1024), ed25519: dkimKey('ed25519') }));
    sink = await startSink();
  });
  after(async () => {
    await gw?.kill();
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes a renewed certificate without dropping a session; keeps the old one when the new pair is broken', async () => {
    const live = selfSignedPair(dir, 'live');
    const first = fingerprint(live.cert);
    gw = await startChildGateway({
      POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_HOSTNAME: 'mx.postern.test',
      POSTERN_DOMAINS: 'example.net', POSTERN_BACKEND_PORT: String(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`,
      POSTERN_TLS_CERT: live.cert, POSTERN_TLS_KEY: live.key,
    });
    const old = await tlsSession(gw.smtpPort);
    assert.equal(old.peerFingerprint(), first);
    assert.equal((await old.cmd('MAIL FROM:<bob@good.example>')).code, 250);

    // certbot renews: new files at the same paths, then `systemctl reload postern`
    const renewed = selfSignedPair(dir, 'renewed');
    fs.copyFileSync(renewed.cert, live.cert);
    fs.copyFileSync(renewed.key, live.key);
    const second = fingerprint(live.cert);
    assert.notEqual(second, first);
    gw.signal('SIGHUP');
    const reloaded = await gw.waitForLog((l) => l.msg === 'TLS certificate reloaded');
    assert.match(String(reloaded.subject), /CN=mx\.postern\.test/);

    // the session opened before the reload finishes its transaction
    assert.equal((await old.cmd('RCPT TO:<user@example.net>')).code, 250);
    const delivered = await old.data(message({ from: 'bob@good.example' }));
    assert.equal(delivered.code, 250, delivered.text);
    await old.quit();
    assert.equal(sink.messages.length, 1);

    const fresh = await tlsSession(gw.smtpPort);
    assert.equal(fresh.peerFingerprint(), second, 'a new session gets the renewed certificate');
    await fresh.quit();

    // a broken renewal: the key of another certificate
    const other = selfSignedPair(dir, 'other');
    fs.copyFileSync(other.key, live.key);
    gw.signal('SIGHUP');
    const failed = await gw.waitForLog((l) => l.msg === 'reload failed (policy, list or config), keeping the previous one');
    assert.match(String(failed.err), /tls\.key: .*does not belong to the certificate/);
    assert.equal(await metric(gw.httpPort, 'postern_policy_reloads_total{outcome="failed"}'), 1);
    const after = await tlsSession(gw.smtpPort);
    assert.equal(after.peerFingerprint(), second, 'the certificate in force stays');
    await after.quit();

    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });
});
