/**
 * Rate limits shared through Redis (issue 3): two gateway processes enforce one global
 * limit; Redis dying mid-run does not stop mail (fail-open), shows in /metrics and /readyz,
 * and is recovered from by itself; the same limit holds on a three-node Redis Cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { message } from '../harness/mail.ts';
import { deletePrefix, keysWithPrefix, sharedRedisUrl, startRedisCluster, startRedisServer, uniquePrefix } from '../harness/redis.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { startWorld } from '../harness/world.ts';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { eventually, nextEvent } from '../harness/wait.ts';

const FROM = 'bob@good.example';
const send = async (port: number): Promise<number> => {
  const r = await sendMail(port, { from: FROM, to: ['user@example.net'], message: message({ from: FROM }) });
  return r.data?.code ?? r.rcpt[0]?.code ?? r.mail.code;
};
const scrape = async (port: number | null): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

describe('two gateway processes sharing one Redis', () => {
  let dns: DnsTestServer;
  let sink: Sink;
  const prefix = uniquePrefix('two-nodes');
  const gateways: ChildGateway[] = [];
  before(async () => {
    dns = await startDnsServer({ 'good.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] });
    sink = await startSink();
    for (let i = 0; i < 2; i++) {
      gateways.push(await startChildGateway({
        POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0', POSTERN_DOMAINS: 'example.net',
        POSTERN_BACKEND_PORT: String(sink.port), POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`,
        POSTERN_REDIS_URL: sharedRedisUrl(), POSTERN_REDIS_KEY_PREFIX: prefix,
        POSTERN_RATE_LIMITS_IP_MESSAGES_RATE: '1/hour', POSTERN_RATE_LIMITS_IP_MESSAGES_BURST: '4',
      }));
    }
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.kill()));
    await sink.close();
    await dns.close();
    const client = new Redis(sharedRedisUrl());
    await deletePrefix(client, prefix);
    client.disconnect();
  });

  it('the sum of what both accept stays within the one limit', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) for (const g of gateways) codes.push(await send(g.smtpPort));
    assert.equal(codes.filter((c) => c === 250).length, 4, codes.join(','));
    assert.ok(codes.filter((c) => c !== 250).every((c) => c === 451), codes.join(','));
    assert.equal(sink.messages.length, 4);
  });
});

describe('Redis failure and recovery (fail-open)', () => {
  it('keeps mail flowing with local limits, reports it in /metrics and /readyz, and recovers', async () => {
    const redis = await startRedisServer();
    const w = await startWorld({ config: { redis: { url: redis.url, keyPrefix: uniquePrefix('failover'), commandTimeoutMs: 200 } } });
    try {
      assert.equal(await send(w.gw.port), 250);
      assert.equal((await fetch(`http://127.0.0.1:${w.gw.httpPort}/readyz`)).status, 200);
      await redis.kill();
      assert.equal(await send(w.gw.port), 250, 'mail keeps flowing while Redis is down');
      assert.match(await scrape(w.gw.httpPort), /^postern_store_up 0$/m);
      // still ready (fail-open takes mail), but the body says what is wrong
      const down = await fetch(`http://127.0.0.1:${w.gw.httpPort}/readyz`);
      assert.equal(down.status, 200);
      const body = await down.json() as { status: string; checks: { redis: { ok: boolean; degraded: string } } };
      assert.equal(body.status, 'degraded');
      assert.equal(body.checks.redis.ok, true);
      assert.match(body.checks.redis.degraded, /failMode open/);

      await redis.restart();
      // Both in one wait: on a busy machine one command of the reconnecting client can pass the
      // 200 ms command timeout and mark the store down again for a moment (run 3 of the loaded
      // loop saw /readyz ready, then postern_store_up 0 on the next scrape); recovery means both.
      await eventually(async () => {
        await send(w.gw.port);
        const ready = ((await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/readyz`)).json()) as { status: string }).status === 'ready';
        return ready && /^postern_store_up 1$/m.test(await scrape(w.gw.httpPort));
      }, 'readiness and postern_store_up came back by themselves', 60_000);
    } finally {
      await w.close();
      await redis.stop();
    }
  });

  it('with failMode closed, a dead Redis means 451 4.3.0 (try later), never a 5xx', async () => {
    const redis = await startRedisServer();
    const w = await startWorld({ config: { redis: { url: redis.url, keyPrefix: uniquePrefix('closed'), failMode: 'closed', commandTimeoutMs: 200 } } });
    try {
      await redis.kill();
      const ready = await fetch(`http://127.0.0.1:${w.gw.httpPort}/readyz`);
      assert.equal(ready.status, 503, 'fail-closed cannot take mail: not ready');
      // the first step to ask the store is the connection rate: the greeting refuses
      const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
      client.destroy();
      assert.equal(greeting.code, 421, greeting.lines.join('|'));
      assert.match(greeting.text, /^4\.3\.0 Temporary local problem \(rate limit store unavailable\)/);
      assert.equal(w.sink.messages.length, 0);
    } finally {
      await w.close();
      await redis.stop();
    }
  });
});

describe('Redis Cluster', () => {
  it('enforces the same limit on a three-node cluster, keys spread over the nodes by subject', async () => {
    const cluster = await startRedisCluster(3);
    const prefix = uniquePrefix('cluster');
    const w = await startWorld({
      config: {
        redis: { cluster: true, nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`), keyPrefix: prefix },
        rateLimits: { ipMessages: { rate: '1/hour', burst: 3 } },
      },
    });
    try {
      const codes = [];
      for (let i = 0; i < 5; i++) codes.push(await send(w.gw.port));
      assert.deepEqual(codes, [250, 250, 250, 451, 451]);
      const client = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
      client.on('error', () => undefined); // a node still settling: the 'ready' below is what counts
      try {
        await nextEvent(client, 'ready');
        const keys = await keysWithPrefix(client, prefix);
        assert.ok(keys.includes(`${prefix}rl:{ip:127.0.0.1}:ip-messages`), keys.join(' '));
        assert.ok(keys.some((k) => k.startsWith(`${prefix}rep:{net:127.0.0.0/24}`)), keys.join(' '));
      } finally {
        client.disconnect();
      }
    } finally {
      await w.close();
      await cluster.stop();
    }
  });
});
