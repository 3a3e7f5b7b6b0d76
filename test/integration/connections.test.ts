/**
 * Connection-level behaviour: limits (total and per client IP, counted on the real client
 * address after PROXY), STARTTLS with the configured certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer } from '../harness/dns-server.ts';
import { message } from '../harness/mail.ts';
import { startSink } from '../harness/sink.ts';
import { SmtpTestClient, connectMany, sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { headerValue, proxyV1, startWorld } from '../harness/world.ts';

/** A throw-away self-signed certificate for mx.postern.test. */
function selfSigned(): { cert: string; key: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=mx.postern.test', '-days', '2', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key, dir };
}

async function metricsText(port: number | null): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** One unlabelled series of /metrics as a number (with workers, the primary's sum of theirs). */
async function metricValue(port: number, name: string): Promise<number> {
  const line = (await metricsText(port)).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.slice(name.length + 1));
}

/** EHLO, STARTTLS, EHLO again over TLS, then the session ends by QUIT, a close or a reset (by `i`). */
async function upgradedSession(port: number, i: number): Promise<void> {
  const { client, greeting } = await SmtpTestClient.connect(port);
  assert.equal(greeting.code, 220, `TLS session ${i} greeted`);
  await client.cmd('EHLO client.example');
  assert.equal((await client.startTls()).code, 220);
  assert.equal((await client.cmd('EHLO client.example')).code, 250);
  if (i % 3 === 0) await client.quit();
  else if (i % 3 === 1) client.destroy();
  else client.reset();
}

describe('connection limits', () => {
  it('refuses a client IP over maxConnectionsPerIp with 421 4.7.0, counted per real (proxied) address', async () => {
    const w = await startWorld({ config: { limits: { maxConnectionsPerIp: 2 }, proxyProtocol: { trusted: ['127.0.0.1'] } } });
    try {
      const a = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.1') });
      const b = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.1') });
      assert.equal(a.greeting.code, 220);
      assert.equal(b.greeting.code, 220);
      const c = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.1') });
      assert.equal(c.greeting.code, 421);
      assert.match(c.greeting.text, /^4\.7\.0 Too many connections/);
      // another client address behind the same balancer is not affected
      const other = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.2') });
      assert.equal(other.greeting.code, 220);
      await a.client.quit();
      // a slot freed is usable again (b and other hold theirs; a and the refused c give theirs back)
      await eventually(() => w.gw.gateway.openConnections() === 2, 'a and c gave their slots back');
      const again = await SmtpTestClient.connect(w.gw.port, { preface: proxyV1('192.0.2.1') });
      assert.equal(again.greeting.code, 220);
      for (const x of [b.client, c.client, other.client, again.client]) x.destroy();
    } finally {
      await w.close();
    }
  });

  it('refuses connections over maxConnections with 421 4.7.0', async () => {
    const w = await startWorld({ config: { limits: { maxConnections: 2 } } });
    try {
      const sessions = await connectMany(w.gw.port, 3);
      assert.deepEqual(sessions.map((s) => s.greeting.code), [220, 220, 421]);
      assert.match(sessions[2]!.greeting.text, /^4\.7\.0 /);
      for (const s of sessions) s.client.destroy();
    } finally {
      await w.close();
    }
  });
});

describe('STARTTLS', () => {
  it('is offered with a configured certificate; the session is marked ESMTPS in the trace header and the decision', async () => {
    const { cert, key, dir } = selfSigned();
    const w = await startWorld({ config: { tls: { cert, key } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      const ehlo = await client.cmd('EHLO client.example');
      assert.ok(ehlo.lines.some((l) => l.endsWith('STARTTLS')), ehlo.lines.join('|'));
      await client.quit();
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: w.gw.port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, name: 'client.example' });
      const info = await transport.sendMail({ envelope: { from: 'bob@good.example', to: ['user@example.net'] }, raw: message({ from: 'bob@good.example' }) });
      assert.match(info.response, /^250 /);
      const [m] = await w.sink.waitFor(1);
      assert.match(headerValue(m!.raw, 'Received') ?? '', /with ESMTPS/);
      assert.equal((w.gw.decisions().at(-1)!.client as { tls: boolean }).tls, true);
      assert.match(await metricsText(w.gw.httpPort), /^postern_tls_handshakes_total\{outcome="ok"\} 1$/m);
      transport.close();
    } finally {
      await w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('STARTTLS and connection slots (regression: upgraded sessions kept their slots forever)', () => {
  it('sessions that upgrade give their per-IP and total slots back, however they end', async () => {
    const { cert, key, dir } = selfSigned();
    const w = await startWorld({ config: { tls: { cert, key }, limits: { maxConnectionsPerIp: 2, maxConnections: 3 } } });
    try {
      // more TLS sessions than either limit, one after the other, ending by QUIT, close and reset
      for (let i = 0; i < 9; i++) {
        await upgradedSession(w.gw.port, i);
        await eventually(() => w.gw.gateway.openConnections() === 0, `the slot of TLS session ${i} given back`);
      }
      const plain = await connectMany(w.gw.port, 2);
      assert.deepEqual(plain.map((p) => p.greeting.code), [220, 220]);
      assert.match(await metricsText(w.gw.httpPort), /^postern_connections_open 2$/m);
      for (const p of plain) p.client.destroy();
      await eventually(() => w.gw.gateway.openConnections() === 0, 'plain sessions gone');
    } finally {
      await w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('workers: 2 (child gateway, node-wide slots through the primary): upgraded sessions give their slots back on both workers', async () => {
    const { cert, key, dir } = selfSigned();
    const dns = await startDnsServer();
    const sink = await startSink();
    const gw = await startChildGateway({
      POSTERN_WORKERS: '2', POSTERN_LOG_LEVEL: 'debug',
      POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_HOSTNAME: 'mx.postern.test',
      POSTERN_DOMAINS: 'example.net', POSTERN_BACKEND_PORT: String(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`,
      POSTERN_TLS_CERT: cert, POSTERN_TLS_KEY: key,
      POSTERN_LIMITS_MAX_CONNECTIONS_PER_IP: '2', POSTERN_LIMITS_MAX_CONNECTIONS: '3',
    });
    try {
      // more TLS sessions than either limit, until each worker has served at least 4 of them
      const served = (worker: number): number => gw.logs.filter((l) => l.msg === 'disconnected' && l.worker === worker).length;
      for (let i = 0; i < 60 && (i < 9 || served(1) < 4 || served(2) < 4); i++) {
        await upgradedSession(gw.smtpPort, i);
        await eventually(async () => served(1) + served(2) === i + 1 && await metricValue(gw.httpPort, 'postern_connections_open') === 0, `the slot of TLS session ${i} given back`);
      }
      assert.ok(served(1) >= 4 && served(2) >= 4, `both workers served upgraded sessions: ${served(1)} and ${served(2)}`);
      assert.equal(await metricValue(gw.httpPort, 'postern_tls_handshakes_total{outcome="ok"}'), served(1) + served(2));
      // the node's limits still hold, and nothing is left taken: two plain sessions, the third refused
      const plain = await connectMany(gw.smtpPort, 3);
      assert.deepEqual(plain.map((p) => p.greeting.code).sort(), [220, 220, 421]);
      for (const p of plain) p.client.destroy();
      await eventually(async () => await metricValue(gw.httpPort, 'postern_connections_open') === 0, 'plain sessions gone');
    } finally {
      await gw.kill();
      await sink.close();
      await dns.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failed TLS handshake gives the slot back and is counted once', async () => {
    const { cert, key, dir } = selfSigned();
    const w = await startWorld({ config: { tls: { cert, key }, limits: { maxConnectionsPerIp: 1 } } });
    try {
      for (let i = 0; i < 3; i++) {
        const { client } = await SmtpTestClient.connect(w.gw.port);
        await client.cmd('EHLO client.example');
        assert.equal((await client.cmd('STARTTLS')).code, 220);
        client.write('this is not a TLS ClientHello\r\n'.repeat(4));
        await eventually(() => client.closed, 'the gateway closing the failed handshake');
        await eventually(() => w.gw.gateway.openConnections() === 0, `slot of failed handshake ${i} given back`);
      }
      assert.match(await metricsText(w.gw.httpPort), /^postern_tls_handshakes_total\{outcome="failed"\} 3$/m);
      assert.equal(w.gw.logs.filter((l) => l.msg === 'TLS error on a client connection').length, 3);
      const { greeting, client } = await SmtpTestClient.connect(w.gw.port);
      assert.equal(greeting.code, 220);
      client.destroy();
    } finally {
      await w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a client too slow to finish DATA inside TLS gets its 421 over TLS, not in plain text', async () => {
    const { cert, key, dir } = selfSigned();
    const w = await startWorld({ config: { tls: { cert, key }, limits: { dataTimeoutMs: 500 } } });
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      await client.startTls();
      await client.cmd('EHLO client.example');
      assert.equal((await client.cmd('MAIL FROM:<bob@good.example>')).code, 250);
      assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
      assert.equal((await client.cmd('DATA')).code, 354);
      client.write('Subject: slow\r\n');
      const r = await client.read();
      assert.equal(r.code, 421);
      assert.match(r.text, /^4\.4\.2 /);
      await eventually(() => w.gw.gateway.openConnections() === 0, 'slot given back after the data timeout');
    } finally {
      await w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('broken client connections', () => {
  it('a client resetting its connection in the middle of a transaction does not disturb the gateway', async () => {
    const w = await startWorld();
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      await client.cmd('MAIL FROM:<bob@good.example>');
      await client.cmd('RCPT TO:<user@example.net>');
      client.reset();
      await eventually(() => w.gw.gateway.openConnections() === 0, 'the gateway saw the reset');
      const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
      assert.equal(r.data?.code, 250);
    } finally {
      await w.close();
    }
  });
});
