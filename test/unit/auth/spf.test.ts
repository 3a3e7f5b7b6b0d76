/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkSpf, spfHelo } from '../../../src/auth/spf.ts';
import { txt, zoneResolver, type Zone } from './zone.ts';

const HOST = 'mx.postern.test';
const IP = '192.0.2.1';

function run(zone: Zone, over: { sender?: string; helo?: string; ip?: string; timeoutMs?: number } = {}) {
  const { resolver, queries } = zoneResolver(zone);
  const outcome = checkSpf({
    ip: over.ip ?? IP,
    helo: over.helo ?? 'client.example.com',
    sender: over.sender ?? 'alice@example.com',
    hostname: HOST,
    resolver,
    strict: true,
    ...(over.timeoutMs !== undefined ? { timeoutMs: over.timeoutMs } : {}),
  });
  return { outcome, queries };
}

describe('checkSpf results (RFC 7208 §2.6)', () => {
  const cases: Array<[string, string, string]> = [
    ['pass', 'v=spf1 ip4:192.0.2.1 -all', 'pass'],
    ['fail', 'v=spf1 ip4:198.51.100.1 -all', 'fail'],
    ['softfail', 'v=spf1 ~all', 'softfail'],
    ['neutral', 'v=spf1 ?all', 'neutral'],
    ['permerror on a syntax error', 'v=spf1 ip4:192.0.2.1 frobnicate -all', 'permerror'],
  ];
  for (const [title, record, expected] of cases) {
    it(title, async () => {
      const { outcome } = run({ 'TXT example.com': txt(record) });
      const { facts, header } = await outcome;
      assert.equal(facts.result, expected);
      assert.equal(facts.domain, 'example.com');
      assert.equal(facts.identity, 'mailfrom');
      assert.match(header, new RegExp(`^spf=${expected} \\(${HOST.replace(/\./g, '\\.')}: .*\\) smtp\\.mailfrom=example\\.com$`));
    });
  }

  it('pass: exact A-R resinfo and Received-SPF', async () => {
    const { outcome } = run({ 'TXT example.com': txt('v=spf1 ip4:192.0.2.1 -all') });
    const { header, receivedSpf, facts, raw } = await outcome;
    assert.equal(header, `spf=pass (${HOST}: domain of alice@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=example.com`);
    assert.ok(receivedSpf?.startsWith('Received-SPF: pass ('));
    assert.equal(facts.reason, `${HOST}: domain of alice@example.com designates 192.0.2.1 as permitted sender`);
    assert.equal(raw?.domain, 'example.com');
  });

  it('none when the domain publishes no SPF record', async () => {
    const { facts } = await run({ 'TXT example.com': 'ENODATA' }).outcome;
    assert.equal(facts.result, 'none');
  });

  it('temperror when DNS times out', async () => {
    const { facts, header } = await run({ 'TXT example.com': 'ETIMEOUT' }).outcome;
    assert.equal(facts.result, 'temperror');
    assert.match(header, /^spf=temperror /);
  });

  it('temperror on SERVFAIL', async () => {
    const { facts } = await run({ 'TXT example.com': 'ESERVFAIL' }).outcome;
    assert.equal(facts.result, 'temperror');
  });

  it('temperror (never throws) for a client IP that is not an address', async () => {
    const { facts } = await run({}, { ip: 'not-an-ip' }).outcome;
    assert.equal(facts.result, 'temperror');
  });

  it('lower-cases the checked domain', async () => {
    const { facts } = await run({ 'TXT example.com': txt('v=spf1 ip4:192.0.2.1 -all') }, { sender: 'Alice@EXAMPLE.com' }).outcome;
    assert.equal(facts.result, 'pass');
    assert.equal(facts.domain, 'example.com');
  });
});

describe('checkSpf null reverse-path (RFC 7208 §2.4)', () => {
  it('checks the HELO identity, postmaster@helo', async () => {
    const { outcome, queries } = run({ 'TXT mx.example.org': txt('v=spf1 ip4:192.0.2.1 -all') }, { sender: '', helo: 'MX.example.org' });
    const { facts, header, receivedSpf } = await outcome;
    assert.deepEqual(facts, {
      result: 'pass',
      domain: 'mx.example.org',
      identity: 'helo',
      reason: `${HOST}: domain of postmaster@MX.example.org designates 192.0.2.1 as permitted sender`,
    });
    assert.match(header, / smtp\.helo=MX\.example\.org$/);
    assert.deepEqual(queries, ['TXT mx.example.org']);
    // RFC 7208 §9.1: no envelope-from key when the HELO identity was checked
    assert.doesNotMatch(receivedSpf ?? '', /envelope-from/);
  });

  it('an IP-literal HELO is evaluated in bracket form and gives none, with no DNS query', async () => {
    assert.equal(spfHelo('192.0.2.1', IP), '[192.0.2.1]');
    assert.equal(spfHelo('', '2001:db8::1'), '[2001:db8::1]');
    assert.equal(spfHelo('[192.0.2.1]', IP), '[192.0.2.1]');
    const { outcome, queries } = run({}, { sender: '', helo: '192.0.2.1' });
    const { facts } = await outcome;
    assert.equal(facts.result, 'none');
    assert.equal(facts.identity, 'helo');
    assert.deepEqual(queries, []);
  });
});

describe('the SPF deadline on a busy event loop', () => {
  it('a lookup that blocks the loop past auth.spfTimeoutMs: temperror for the deadline (its reason and flag), although the deadline timer has not run yet', async () => {
    const { resolver: zone } = zoneResolver({
      'TXT example.com': txt('v=spf1 include:more.example.com -all'),
      'TXT more.example.com': txt('v=spf1 ip4:192.0.2.1 -all'),
    });
    // The first answer comes after the CPU was busy for 400 ms: no timer can run meanwhile, and
    // mailauth's own limit (maxElapsedTime, by the clock) ends the check before the next lookup.
    const busy: typeof zone = async (name, rrtype) => {
      const answer = await zone(name, rrtype);
      for (const until = Date.now() + 400; Date.now() < until;);
      return answer;
    };
    const outcome = await checkSpf({ ip: IP, helo: 'client.example.com', sender: 'alice@example.com', hostname: HOST, resolver: busy, strict: true, timeoutMs: 200 });
    assert.equal(outcome.facts.result, 'temperror');
    assert.match(outcome.facts.reason, /SPF deadline of 200 ms passed/);
    assert.equal(outcome.deadlinePassed, true);
  });
});
