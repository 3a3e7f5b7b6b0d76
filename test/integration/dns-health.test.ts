/**
 * A resolver that stops answering shows within seconds: /readyz turns 503 and says why,
 * postern_dns_up drops to 0, and one warning line is written per state change (not per
 * failed lookup); when it answers again the same happens in reverse. Covered for every
 * failing outcome: REFUSED, SERVFAIL, silence (timeout), nothing listening and no route
 * (unreachable).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { startWorld, type World } from '../harness/world.ts';
import { startGateway, type TestGateway } from '../harness/gateway.ts';

type Mode = 'answer' | 'refused' | 'servfail' | 'silent';

/** A stand-in resolver on 127.0.0.1 whose behaviour the test switches; NXDOMAIN for everything when answering. */
async function startSwitchableResolver(): Promise<{ port: number; mode: Mode; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const state = { mode: 'answer' as Mode };
  socket.on('message', (msg, rinfo) => {
    if (state.mode === 'silent') return;
    const q = packet.decode(msg);
    const rcode = state.mode === 'refused' ? 5 : state.mode === 'servfail' ? 2 : 3;
    const reply = packet.encode({ type: 'response', id: q.id ?? 0, flags: packet.RECURSION_AVAILABLE | packet.RECURSION_DESIRED | rcode, questions: q.questions ?? [] });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  let closed = false;
  return {
    port: socket.address().port,
    get mode() { return state.mode; },
    set mode(m: Mode) { state.mode = m; },
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

async function readyz(port: number): Promise<{ status: number; body: { status: string; checks: { dns?: { ok: boolean; error?: string } } } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.json() as never };
}

async function dnsUp(port: number): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = /^postern_dns_up (\d+)$/m.exec(text);
  return line ? Number(line[1]) : null;
}

const downLines = (gw: TestGateway): unknown[] => gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('no DNS resolver answers'));
const upLines = (gw: TestGateway): unknown[] => gw.logs.filter((l) => l.msg === 'DNS resolvers answer again');

describe('DNS resolver health', () => {
  let resolver: Awaited<ReturnType<typeof startSwitchableResolver>>;
  let w: World;
  before(async () => {
    resolver = await startSwitchableResolver();
    w = await startWorld();
  });
  after(async () => {
    await w.close();
    await resolver.close();
  });

  it('probes on a timer: REFUSED, then silence, then answers again, then nothing listening; one log line per change', async () => {
    const gw = await startGateway({ dnsPort: resolver.port, backendPort: w.sink.port, config: { dns: { servers: [`127.0.0.1:${resolver.port}`], timeoutMs: 300, attempts: 1, probeIntervalMs: 100 } } });
    try {
      assert.deepEqual(await readyz(gw.httpPort!), { status: 200, body: { status: 'ready', checks: { policies: { ok: true }, backend: { ok: true }, dns: { ok: true } } } });
      assert.equal(await dnsUp(gw.httpPort!), 1);

      resolver.mode = 'refused';
      await eventually(async () => (await readyz(gw.httpPort!)).status === 503, '/readyz 503 while the resolver refuses');
      const refused = await readyz(gw.httpPort!);
      assert.equal(refused.body.status, 'not ready');
      assert.equal(refused.body.checks.dns?.ok, false);
      assert.match(refused.body.checks.dns?.error ?? '', new RegExp(`^no DNS resolver answers: 127\\.0\\.0\\.1:${resolver.port} refused`));
      assert.equal(await dnsUp(gw.httpPort!), 0);

      // Still down, for another reason: several probes later, still one warning line.
      resolver.mode = 'silent';
      await eventually(async () => /timeout after 300 ms/.test((await readyz(gw.httpPort!)).body.checks.dns?.error ?? ''), 'the probe reports the timeout');
      assert.equal(downLines(gw).length, 1, 'one warning for the whole outage');
      const warn = downLines(gw)[0] as { level: number; servers: string[] };
      assert.equal(warn.level, 40);
      assert.deepEqual(warn.servers, [`127.0.0.1:${resolver.port}`]);

      resolver.mode = 'answer';
      await eventually(async () => (await readyz(gw.httpPort!)).status === 200, '/readyz ready again');
      assert.equal(await dnsUp(gw.httpPort!), 1);
      assert.equal(upLines(gw).length, 1);

      await resolver.close(); // nothing listens: ICMP port unreachable
      await eventually(async () => /unreachable/.test((await readyz(gw.httpPort!)).body.checks.dns?.error ?? ''), 'unreachable reported');
      assert.equal(await dnsUp(gw.httpPort!), 0);
      assert.equal(downLines(gw).length, 2, 'a second outage, a second warning');
    } finally {
      await gw.close();
    }
  });

  it('a resolver the host has no route to: unreachable in /readyz and in the lookup metric, the process keeps running', async () => {
    // an IPv6 link-local address on the loopback interface: connect(2) fails at once (ENETUNREACH)
    const gw = await startGateway({ dnsPort: 53, backendPort: w.sink.port, config: { dns: { servers: ['[fe80::1%lo]:53'], timeoutMs: 2_000, attempts: 1, probeIntervalMs: 0 } } });
    try {
      await eventually(async () => (await readyz(gw.httpPort!)).status === 503, '/readyz not ready');
      assert.match((await readyz(gw.httpPort!)).body.checks.dns?.error ?? '', /^no DNS resolver answers: fe80::1%lo:53 unreachable/);
      assert.equal(downLines(gw).length, 1);
      const r = await sendMail(gw.port, { from: 'bob@lookup.example', to: ['user@example.net'], message: message({ from: 'bob@lookup.example' }) });
      assert.equal(r.data?.code, 451, 'SPF/DMARC temperror: deferred by the default policy');
      const text = await (await fetch(`http://127.0.0.1:${gw.httpPort!}/metrics`)).text();
      assert.match(text, /^postern_dns_lookups_total\{type="\w+",outcome="unreachable"\} [1-9]/m);
    } finally {
      await gw.close();
    }
  });

  it('without a probe timer, a failed lookup triggers the probe, and an answered lookup clears it (SERVFAIL)', async () => {
    const r = await startSwitchableResolver();
    const gw = await startGateway({ dnsPort: r.port, backendPort: w.sink.port, config: { dns: { servers: [`127.0.0.1:${r.port}`], timeoutMs: 300, attempts: 1, probeIntervalMs: 0 } } });
    try {
      r.mode = 'servfail';
      const send = (): ReturnType<typeof sendMail> => sendMail(gw.port, { from: 'bob@lookup.example', to: ['user@example.net'], message: message({ from: 'bob@lookup.example' }) });
      const deferred = await send();
      assert.equal(deferred.data?.code, 451, 'SPF/DMARC temperror: deferred by the default policy');
      await eventually(async () => (await readyz(gw.httpPort!)).status === 503, 'the failed lookups triggered a probe');
      assert.match((await readyz(gw.httpPort!)).body.checks.dns?.error ?? '', /servfail/);
      assert.equal(downLines(gw).length, 1);

      r.mode = 'answer';
      const delivered = await send();
      assert.equal(delivered.data?.code, 250);
      await eventually(async () => (await readyz(gw.httpPort!)).status === 200, 'answered lookups mean a resolver works');
      assert.equal(upLines(gw).length, 1);
    } finally {
      await gw.close();
      await r.close();
    }
  });
});
