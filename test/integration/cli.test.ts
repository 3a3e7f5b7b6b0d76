/**
 * The postern CLI as an operator runs it (a real child process): check-config naming
 * file:line for broken config and policy, verify printing Authentication-Results and the
 * verdict, serve refusing to run as an open relay and draining on SIGTERM.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, serveUntil } from '../harness/cli.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey, message, sign } from '../harness/mail.ts';
import { Redis } from 'ioredis';
import { reputationConfigSchema } from '../../src/reputation/config.ts';
import { ipSubject } from '../../src/reputation/keys.ts';
import { createRedisStore } from '../../src/reputation/redis-store.ts';
import { scoreParams } from '../../src/reputation/store.ts';
import { deletePrefix, sharedRedisUrl, uniquePrefix } from '../harness/redis.ts';

const run = runCli;

describe('postern CLI', () => {
  let dir: string;
  let dns: DnsTestServer;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-cli-'));
    dns = await startDnsServer();
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await dns.close();
  });

  it('check-config accepts the shipped policies and prints a summary', async () => {
    const r = await run(['check-config'], { POSTERN_DOMAINS: 'example.net' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /embedded defaults/);
    assert.match(r.stdout, /dmarc-reject/);
  });

  it('check-config without domains refuses, as serve does (exit 2)', async () => {
    const r = await run(['check-config']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^domains: no recipient domains configured/m);
  });

  it('check-config names file, line, column and key of a config error, exit 2', async () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'domains: [example.net]\nbackend:\n  port: "ten"\n  hots: x\n');
    const r = await run(['check-config', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:3:9: backend\\.port: expected a port number`));
    assert.match(r.stderr, /:4:\d+: backend\.hots: unknown key \(did you mean host\?\)/);
  });

  it('check-config names file and line of a broken policy, exit 2', async () => {
    const policies = path.join(dir, 'policies');
    fs.mkdirSync(policies);
    fs.writeFileSync(path.join(policies, '10-x.yaml'), 'rules:\n  - name: one\n    match:\n      spf: maybe\n    action: reject\n');
    const r = await run(['check-config'], { POSTERN_POLICIES: policies, POSTERN_DOMAINS: 'example.net' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /10-x\.yaml:4:\d+: .*spf/);
  });

  it('an environment override that does not validate names the variable', async () => {
    const r = await run(['check-config'], { POSTERN_BACKEND_PORT: 'abc', POSTERN_DOMAINS: 'example.net' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /POSTERN_BACKEND_PORT: .*number/);
  });

  it('verify prints the Authentication-Results and the verdict of a message file', async () => {
    const key = dkimKey('ed25519');
    dns.setZone({
      'good.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.good.example': [{ TXT: 'v=DMARC1; p=reject' }],
      's1._domainkey.good.example': [{ TXT: key.record }],
    });
    const signed = path.join(dir, 'signed.eml');
    fs.writeFileSync(signed, await sign(message({ from: 'alice@good.example' }), { domain: 'good.example', selector: 's1', key }));
    const env = { POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`, POSTERN_HOSTNAME: 'mx.cli.test' };
    const ok = await run(['verify', signed, '--ip', '192.0.2.1', '--helo', 'mail.good.example', '--sender', 'alice@good.example'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^Authentication-Results: mx\.cli\.test;/);
    assert.match(ok.stdout, /spf=pass/);
    assert.match(ok.stdout, /dkim=pass/);
    assert.match(ok.stdout, /dmarc=pass/);
    assert.match(ok.stdout, /verdict: accept/);

    const spoof = path.join(dir, 'spoof.eml');
    fs.writeFileSync(spoof, message({ from: 'ceo@good.example' }));
    const bad = await run(['verify', spoof, '--ip', '198.51.100.1', '--helo', 'x.example', '--sender', 'x@other.example'], env);
    assert.equal(bad.code, 1, 'exit 1: reject');
    assert.match(bad.stdout, /dmarc=fail/);
    assert.match(bad.stdout, /verdict: reject \(rule dmarc-reject\)/);
    assert.match(bad.stdout, /reply: {3}550 5\.7\.1 .*good\.example.*p=reject/);
  });

  it('serve refuses to start without recipient domains (no open relay), naming the setting', async () => {
    const r = await run(['serve'], { POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no recipient domains configured.*POSTERN_DOMAINS/);
  });

  it('serve starts, and on SIGTERM drains and exits 0', async () => {
    const r = await serveUntil([], { POSTERN_LISTEN: '127.0.0.1:0', POSTERN_DOMAINS: 'example.net', POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}` });
    assert.ok(r.started, r.stderr);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /"msg":"stopped"/);
  });
});

describe('postern reputation show|reset', () => {
  it('shows and resets a sender kept in Redis; without Redis it says why it cannot', async () => {
    const prefix = uniquePrefix('cli');
    const client = new Redis(sharedRedisUrl());
    try {
      const store = createRedisStore({ client, keyPrefix: prefix, score: scoreParams(reputationConfigSchema.parse({})) });
      for (let i = 0; i < 6; i++) await store.learn([{ subject: ipSubject('192.0.2.1'), delta: 5 }], Date.now());
      const env = { POSTERN_REDIS_URL: sharedRedisUrl(), POSTERN_REDIS_KEY_PREFIX: prefix };
      const shown = await run(['reputation', 'show', '192.0.2.1'], env);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, new RegExp(`^ip:192\\.0\\.2\\.1 {3}key ${prefix.replace(/[.:-]/g, '\\$&')}rep:\\{ip:192\\.0\\.2\\.1\\}`, 'm'));
      assert.match(shown.stdout, /score {4}30\.00 {2}samples 6/);
      assert.match(shown.stdout, /tier {5}good/);
      assert.match(shown.stdout, /^net:192\.0\.2\.0\/24/m);
      const reset = await run(['reputation', 'reset', '192.0.2.1'], env);
      assert.equal(reset.code, 0, reset.stderr);
      assert.match(reset.stdout, /ip:192\.0\.2\.1: 1 key deleted/);
      assert.match((await run(['reputation', 'show', '192.0.2.1'], env)).stdout, /score {4}0\.00 {2}samples 0/);
    } finally {
      await deletePrefix(client, prefix);
      client.disconnect();
    }
    const noRedis = await run(['reputation', 'show', '192.0.2.1']);
    assert.equal(noRedis.code, 1);
    assert.match(noRedis.stderr, /no Redis configured/);
  });
});
