/**
 * DMARC report delivery when things go wrong, and the stores other than one shared Redis:
 * the relay says 451 then 250 → exactly one report; the sending process is killed after the
 * message end and before the relay's answer is recorded → never a second copy; a Redis Cluster
 * of three masters; no Redis at all → the local store survives a gateway restart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import type { ConfigInput } from '../../src/config/schema.ts';
import { clearSharedPrefix, sharedRedisUrl, startRedisCluster, uniquePrefix } from '../harness/redis.ts';
import { assertSchemaValid, countsOf, reportsIn, runCli, startCli } from '../harness/reports.ts';
import { eventually } from '../harness/wait.ts';
import { startWorld, type World } from '../harness/world.ts';
import { collected, expectedCounts, reportZone, sendTraffic } from '../harness/dmarc-traffic.ts';

const REPORTER = 'dmarc-reports@postern.test';

interface ReportWorld {
  readonly w: World;
  /** The same configuration for the CLI, as environment variables. */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

/** A gateway with reporting on, and the CLI environment that matches it. */
async function reportWorld(store: { redis?: ConfigInput['redis']; redisEnv?: Record<string, string>; stateDir?: string }): Promise<ReportWorld> {
  const reports = { dmarc: { enabled: true, schedule: false, orgName: 'Postern Test Org', email: REPORTER, ratePerMinute: 600, ...(store.stateDir ? { stateDir: store.stateDir } : {}) } };
  const w = await startWorld({ zone: reportZone(), config: { hostname: 'mx.postern.test', proxyProtocol: { trusted: ['127.0.0.1/32'] }, reports, ...(store.redis ? { redis: store.redis } : {}) } });
  const env = {
    POSTERN_DOMAINS: 'example.net', POSTERN_HOSTNAME: 'mx.postern.test', POSTERN_BACKEND_PORT: String(w.sink.port),
    POSTERN_DNS_SERVERS: `127.0.0.1:${w.dns.port}`, POSTERN_REPORTS_DMARC_ENABLED: 'true', POSTERN_REPORTS_DMARC_ORG_NAME: 'Postern Test Org',
    POSTERN_REPORTS_DMARC_EMAIL: REPORTER, POSTERN_REPORTS_DMARC_RATE_PER_MINUTE: '600',
    ...(store.stateDir ? { POSTERN_REPORTS_DMARC_STATE_DIR: store.stateDir } : {}), ...store.redisEnv,
  };
  return { w, env, close: () => w.close() };
}

const rows = async (w: World): Promise<number> => {
  const text = await w.gw.gateway.registry.getSingleMetricAsString('postern_dmarc_rows_collected_total');
  return Number(/^postern_dmarc_rows_collected_total (\d+)/m.exec(text)?.[1] ?? 0);
};

const isReport = (raw: Buffer): boolean => raw.includes(`From: ${REPORTER}`);

describe('DMARC report delivery through a shared Redis', () => {
  const prefix = uniquePrefix('dmarc-delivery');
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
    await clearSharedPrefix(prefix);
  });
  const world = async (label: string): Promise<ReportWorld> => {
    const keyPrefix = `${prefix}${label}:`;
    const rw = await reportWorld({ redis: { url: sharedRedisUrl(), keyPrefix }, redisEnv: { POSTERN_REDIS_URL: sharedRedisUrl(), POSTERN_REDIS_KEY_PREFIX: keyPrefix } });
    cleanups.push(() => rw.close());
    return rw;
  };

  it('relay 451, then 250: exactly one report is delivered, and nothing after', async () => {
    const { w, env } = await world('tempfail');
    await sendTraffic([w.gw.port]);
    await eventually(async () => (await rows(w)) === collected(), 'rows counted');
    let refusals = 0;
    w.sink.behaviour = { data: (raw) => (isReport(raw) && refusals++ < 2 ? { code: 451, message: '4.3.0 Try again later' } : undefined) };
    const first = await runCli(['reports', 'send', '--now'], env);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stdout, /sent 0, deferred 2, failed 0, refused 1, uncertain 0/);
    assert.equal(reportsIn(w.sink.messages, REPORTER).length, 0);
    const second = await runCli(['reports', 'send'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /sent 2, deferred 0/);
    const third = await runCli(['reports', 'send'], env);
    assert.match(third.stdout, /sent 0, deferred 0, failed 0, refused 0, uncertain 0/);
    const reports = reportsIn(w.sink.messages, REPORTER);
    assert.deepEqual(reports.map((r) => r.to).sort(), ['dmarc@a.example', 'reports@rua.example']);
    assert.deepEqual(countsOf(reports.find((r) => r.to === 'dmarc@a.example')!.records), expectedCounts('a.example'));
  });

  it('a sender killed after the message end, before the relay\'s answer is recorded, never causes a second copy', async () => {
    const { w, env } = await world('killed');
    await sendTraffic([w.gw.port]);
    await eventually(async () => (await rows(w)) === collected(), 'rows counted');
    // The relay takes the report (it has the bytes and the final ".") but holds its answer.
    const taken: Buffer[] = [];
    w.sink.behaviour = { data: (raw) => (isReport(raw) && raw.includes('To: dmarc@a.example') ? (taken.push(raw), 'hang') : undefined) };
    const run = startCli(['reports', 'send', '--now'], env);
    await eventually(() => taken.length === 1, 'the relay holding the report');
    run.child.kill('SIGKILL');
    await run.done;
    // The node is gone; its job lock would lapse after its TTL: let it lapse now.
    const client = new Redis(sharedRedisUrl());
    const locks = await client.keys(`${env.POSTERN_REDIS_KEY_PREFIX}dmarc:{a.example}:lock:*`);
    if (locks.length) await client.del(...locks);
    client.disconnect();
    w.sink.behaviour = {};
    // --now: the killed run never reached b.example, whose period is still open
    const retry = await runCli(['reports', 'send', '--now'], env);
    assert.equal(retry.code, 1, 'an uncertain delivery is reported');
    assert.match(retry.stdout, /sent 1, deferred 0, failed 0, refused 1, uncertain 1/);
    assert.match(retry.stderr, /"outcome":"uncertain".*"destination":"dmarc@a\.example"/);
    const again = await runCli(['reports', 'send'], env);
    assert.match(again.stdout, /sent 0, deferred 0, failed 0, refused 0, uncertain 0/);
    assert.equal(taken.length, 1, 'the relay was offered the report once');
    assert.deepEqual(reportsIn(w.sink.messages, REPORTER).map((r) => r.to), ['reports@rua.example'], 'no copy of the a.example report');
  });
});

describe('DMARC reports on a Redis Cluster of three masters', () => {
  it('collects across slots and sends one valid report per domain', async () => {
    const cluster = await startRedisCluster(3);
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`);
    const keyPrefix = uniquePrefix('dmarc-cluster');
    const rw = await reportWorld({ redis: { cluster: true, nodes, keyPrefix }, redisEnv: { POSTERN_REDIS_CLUSTER: 'true', POSTERN_REDIS_NODES: nodes.join(','), POSTERN_REDIS_KEY_PREFIX: keyPrefix } });
    try {
      await sendTraffic([rw.w.gw.port]);
      await eventually(async () => (await rows(rw.w)) === collected(), 'rows counted');
      // The two report domains live on different masters: the per-domain hash tag spreads them.
      const client = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
      await new Promise((resolve) => client.once('ready', resolve));
      const owners = new Set<string>();
      for (const node of client.nodes('master')) {
        if ((await node.keys(`${keyPrefix}dmarc:{*}:rows:*`)).length) owners.add(`${node.options.port}`);
      }
      client.disconnect();
      assert.ok(owners.size >= 2, `report keys on ${owners.size} master(s)`);
      const r = await runCli(['reports', 'send', '--now'], rw.env);
      assert.equal(r.code, 0, r.stderr);
      const reports = reportsIn(rw.w.sink.messages, REPORTER);
      assert.equal(reports.length, 2);
      for (const report of reports) {
        await assertSchemaValid(report.xml);
        assert.deepEqual(countsOf(report.records), expectedCounts(report.to === 'dmarc@a.example' ? 'a.example' : 'b.example'));
      }
    } finally {
      await rw.close();
      await cluster.stop();
    }
  });
});

describe('DMARC reports without Redis (local store)', () => {
  it('counts survive a gateway restart; reports aggregate shows them without sending; send --now sends them', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-state-'));
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-aggregate-'));
    try {
      const first = await reportWorld({ stateDir });
      await sendTraffic([first.w.gw.port]);
      await eventually(async () => (await rows(first.w)) === collected(), 'rows counted');
      await first.close();
      const second = await reportWorld({ stateDir });
      try {
        await sendTraffic([second.w.gw.port]);
        await eventually(async () => (await rows(second.w)) === collected(), 'rows counted after the restart');
        await second.w.gw.gateway.stop(); // flushes the buffered counts
        const look = await runCli(['reports', 'aggregate', '--out', out], second.env);
        assert.equal(look.code, 0, look.stderr);
        const files = look.stdout.trim().split('\n').sort();
        assert.equal(files.length, 3, look.stdout);
        const a = fs.readFileSync(files.find((f) => f.includes('!a.example!'))!, 'utf8');
        await assertSchemaValid(a);
        const doubled = Object.fromEntries(Object.entries(expectedCounts('a.example')).map(([k, v]) => [k, v * 2]));
        assert.deepEqual(countsOf([...a.matchAll(/<source_ip>([^<]+)<\/source_ip>\s*<count>(\d+)<\/count>[\s\S]*?<disposition>(\w+)</g)]
          .map((m) => ({ sourceIp: m[1]!, count: Number(m[2]), disposition: m[3]!, headerFrom: '', dkim: '', spf: '' }))), doubled);
        assert.equal(reportsIn(second.w.sink.messages, REPORTER).length, 0, 'aggregate sends nothing');
        const sent = await runCli(['reports', 'send', '--now'], second.env);
        assert.equal(sent.code, 0, sent.stderr);
        const reports = reportsIn(second.w.sink.messages, REPORTER);
        assert.deepEqual(countsOf(reports.find((r) => r.to === 'dmarc@a.example')!.records), doubled);
      } finally {
        // the gateway was stopped above; the sink and DNS server are left
        await second.w.sink.close();
        await second.w.dns.close();
      }
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
