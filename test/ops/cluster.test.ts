/**
 * `workers: 2` on the real CLI: a primary and two worker processes sharing the SMTP listener.
 * Mail flows through both; a killed worker is replaced and mail keeps flowing; the memory
 * store's rate limits are the node's (two workers do not admit twice the limit); /metrics
 * sums the workers and /readyz names them; SIGTERM drains every worker; SIGHUP with a broken
 * policy leaves every worker on the old set; a worker that cannot start fails the start; a
 * message near the size limit fits a worker's share of the in-flight budget.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildGateway, LogLine } from '../harness/child-gateway.ts';
import type { DnsTestServer } from '../harness/dns-server.ts';
import { message } from '../harness/mail.ts';
import { processTree } from '../harness/processes.ts';
import { sendMail, SmtpTestClient } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import type { HeldBackend } from './helpers/held-backend.ts';
import { atData, startSignalWorld, type SignalWorld } from './helpers/signal-world.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const GOOD = { from: 'bob@good.example', to: ['user@example.net'] };
const SHIPPED = path.resolve(ROOT, 'policies');

/** The sum of every series of `name` (all label sets), or null when there is none. */
async function metricSum(port: number, name: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const values = text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0);
}

/** Which workers wrote lines matching `test`. */
const workersOf = (logs: readonly LogLine[], test: (l: LogLine) => boolean): Set<unknown> => new Set(logs.filter(test).map((l) => l.worker));

describe('workers: 2 (node:cluster)', () => {
  let world: SignalWorld;
  let dns: DnsTestServer;
  let backend: HeldBackend;
  const start = (extra: Record<string, string> = {}): Promise<ChildGateway> => world.start({ POSTERN_WORKERS: '2', POSTERN_POLICIES: SHIPPED, ...extra });
  const send = (gw: ChildGateway): ReturnType<typeof sendMail> => sendMail(gw.smtpPort, { ...GOOD, message: message({ from: GOOD.from }) });
  /** Sends until both workers have handled `test`-matching work, at most `max` messages. */
  const sendUntilBoth = async (gw: ChildGateway, test: (l: LogLine) => boolean, max = 20): Promise<Array<Awaited<ReturnType<typeof sendMail>>>> => {
    const replies = [];
    while (replies.length < max && workersOf(gw.logs, test).size < 2) replies.push(await send(gw));
    return replies;
  };

  before(async () => {
    world = await startSignalWorld();
    ({ dns, backend } = world);
    backend.hold = false;
  });
  after(() => world.close());

  it('mail flows through both workers; /metrics sums them; /readyz names each', async () => {
    const gw = await start();
    const before = backend.messages.length;
    const replies = await sendUntilBoth(gw, (l) => l.event === 'decision');
    for (const r of replies) assert.equal(r.data?.code, 250, r.data?.lines.join('\n'));
    await eventually(() => gw.logs.filter((l) => l.event === 'decision').length === replies.length, 'a decision line per message');
    assert.deepEqual([...workersOf(gw.logs, (l) => l.event === 'decision')].sort(), [1, 2]);
    assert.equal(backend.messages.length - before, replies.length);

    assert.equal(await metricSum(gw.httpPort, 'postern_messages_total'), replies.length, 'counted by both workers, summed');
    assert.equal(await metricSum(gw.httpPort, 'postern_workers'), 2);
    assert.equal(await metricSum(gw.httpPort, 'postern_store_up'), 1);
    assert.equal(await metricSum(gw.httpPort, 'postern_policy_reloads_total'), 1, 'the node loaded its policies once');

    const ready = await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`);
    const body = await ready.json() as { status: string; checks: Record<string, { ok: boolean }> };
    assert.equal(ready.status, 200, JSON.stringify(body));
    assert.deepEqual(Object.keys(body.checks).sort(), ['worker-1', 'worker-2']);
    assert.ok(Object.values(body.checks).every((c) => c.ok));
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('a killed worker is replaced and mail keeps flowing', async () => {
    const gw = await start();
    const workers = processTree(gw.pid).slice(1);
    assert.equal(workers.length, 2, `workers of ${gw.pid}: ${workers.join(',')}`);
    process.kill(workers[0]!, 'SIGKILL');
    const exited = await gw.waitForLog((l) => l.msg === 'worker exited; starting a new one', 20_000);
    assert.equal(exited.signal, 'SIGKILL');
    await eventually(async () => (await metricSum(gw.httpPort, 'postern_workers')) === 2 && (await metricSum(gw.httpPort, 'postern_worker_restarts_total')) === 1, 'two workers again, one restart counted', 30_000);
    const now = processTree(gw.pid).slice(1);
    assert.equal(now.length, 2);
    assert.ok(!now.includes(workers[0]!), 'the killed worker is gone, a new one runs');
    await eventually(async () => (await fetch(`http://127.0.0.1:${gw.httpPort}/readyz`)).status === 200, 'ready again', 30_000);
    const replies = await sendUntilBoth(gw, (l) => l.event === 'decision');
    for (const r of replies) assert.equal(r.data?.code, 250);
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('the memory store\'s rate limits are per node: two workers do not admit twice the limit', async () => {
    const gw = await start({ POSTERN_RATE_LIMITS_IP_MESSAGES_RATE: '1/hour', POSTERN_RATE_LIMITS_IP_MESSAGES_BURST: '3' });
    const handled = (l: LogLine): boolean => l.event === 'decision' || l.msg === 'rate limited';
    const replies = await sendUntilBoth(gw, handled);
    while (replies.length < 8) replies.push(await send(gw));
    const codes = replies.map((r) => r.mail.code);
    assert.deepEqual(codes.filter((c) => c === 250).length, 3, `MAIL replies: ${codes.join(',')}`);
    assert.ok(replies.filter((r) => r.mail.code !== 250).every((r) => /^451 /.test(r.mail.lines.at(-1)!) && /^4\.7\.1 Rate limit exceeded/.test(r.mail.text)));
    assert.deepEqual([...workersOf(gw.logs, handled)].sort(), [1, 2], 'both workers took part');
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('a message just under limits.maxMessageSize is delivered though the budget over the workers is less (issue 11: it was deferred forever)', async () => {
    // 2 MB over 2 workers is 1 MB each: below one 1.5 MB message, as 256 MiB over 32 cores is below 10 MB
    const gw = await start({
      POSTERN_LIMITS_MAX_MESSAGE_SIZE: '1500000', POSTERN_LIMITS_MAX_BYTES_IN_FLIGHT: '2000000', POSTERN_LIMITS_MAX_BYTES_IN_FLIGHT_PER_CLIENT: '2000000',
    });
    assert.ok(gw.logs.some((l) => l.level === 40 && /^limits\.maxBytesInFlight: 2000000 bytes over 2 workers is less than limits\.maxMessageSize \(1500000\) each/.test(String(l.msg))),
      'the start-up warns, naming the keys');
    const before = backend.messages.length;
    const body = ('x'.repeat(998) + '\r\n').repeat(1_400);
    for (let i = 0; i < 2; i++) {
      const r = await sendMail(gw.smtpPort, { ...GOOD, message: message({ from: GOOD.from, body }) });
      assert.equal(r.data?.code, 250, r.data?.lines.join('\n'));
    }
    assert.equal(backend.messages.length - before, 2);
    assert.ok(backend.messages.at(-1)!.raw.length > 1_400_000);
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('SIGTERM drains every worker: the transaction in flight completes, new connections get 421, exit 0', async () => {
    const gw = await start();
    backend.hold = true;
    const before = backend.messages.length;
    const client = await atData(gw.smtpPort, GOOD.from, GOOD.to[0]!);
    try {
      const final = client.data(message({ from: GOOD.from }), 20_000);
      await backend.held();
      gw.signal('SIGTERM');
      await gw.waitForLog((l) => l.msg === 'draining' && l.signal === 'SIGTERM');
      await gw.waitForLog((l) => l.msg === 'worker draining', 10_000);
      for (let i = 0; i < 4; i++) {
        const late = await SmtpTestClient.connect(gw.smtpPort);
        late.client.destroy();
        assert.equal(late.greeting.code, 421);
        assert.match(late.greeting.text, /^4\.3\.2 Service shutting down/);
      }
      backend.release();
      assert.equal((await final).code, 250);
      assert.equal(backend.messages.length - before, 1);
    } finally {
      backend.hold = false;
      client.destroy();
    }
    assert.equal(await gw.exited, 0);
    assert.ok(gw.logs.some((l) => l.msg === 'stopped' && l.worker === undefined));
  });

  it('SIGHUP with a broken policy keeps every worker on the old set; a fixed one switches them all', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-cluster-hup-'));
    world.keep(dir);
    const file = path.join(dir, '10-main.yaml');
    fs.writeFileSync(file, 'rules:\n  - name: reject-all\n    match: {}\n    action: reject\n');
    const gw = await start({ POSTERN_POLICIES: dir });
    const rejected = (l: LogLine): boolean => l.event === 'decision' && l.rule === 'reject-all';
    for (const r of await sendUntilBoth(gw, rejected)) assert.equal(r.mail.code, 550);

    fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: acept\n');
    gw.signal('SIGHUP');
    const failed = await gw.waitForLog((l) => l.msg === 'reload failed (policy, list or config), keeping the previous one');
    assert.match(String(failed.err), new RegExp(`${file.replaceAll('.', '\\.')}:4:\\d+: .*action`));
    const marked = gw.logs.length;
    const after = (l: LogLine): boolean => gw.logs.indexOf(l) >= marked && rejected(l);
    for (const r of await sendUntilBoth(gw, after)) assert.equal(r.mail.code, 550, 'the old policy, on every worker');
    assert.equal(await metricSum(gw.httpPort, 'postern_policy_reloads_total{outcome="failed"}'), 1);

    fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: accept\n');
    gw.signal('SIGHUP');
    await gw.waitForLog((l) => l.msg === 'configuration and policies reloaded' && l.worker === undefined);
    const accepted = (l: LogLine): boolean => l.event === 'decision' && l.action === 'accept';
    for (const r of await sendUntilBoth(gw, accepted)) assert.equal(r.data?.code, 250, 'the new policy, on every worker');
    assert.equal(await metricSum(gw.httpPort, 'postern_policy_reloads_total{outcome="ok"}'), 2);
    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });

  it('a worker that cannot listen fails the start: exit 1, the cause on stderr', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), 'serve'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', POSTERN_WORKERS: '2', POSTERN_LISTEN: `127.0.0.1:${port}`, POSTERN_DOMAINS: 'example.net', POSTERN_METRICS_LISTEN: '', POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}` },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`postern: cannot start: listen: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
