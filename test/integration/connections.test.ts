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
import { message } from '../harness/mail.ts';
import { SmtpTestClient, connectMany, sendMail } from '../harness/smtp-client.ts';
import { headerValue, proxyV1, startWorld } from '../harness/world.ts';

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
      // a slot freed is usable again
      await new Promise((r) => setTimeout(r, 50));
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
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=mx.postern.test', '-days', '2', '-keyout', key, '-out', cert], { stdio: 'ignore' });
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
      const metrics = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
      assert.match(metrics, /^postern_tls_handshakes_total\{outcome="ok"\} 1$/m);
      transport.close();
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
      await new Promise((r) => setTimeout(r, 100));
      const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from: 'bob@good.example' }) });
      assert.equal(r.data?.code, 250);
    } finally {
      await w.close();
    }
  });
});
