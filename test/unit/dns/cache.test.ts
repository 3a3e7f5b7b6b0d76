import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Clock } from '../../../src/core/clock.ts';
import { createResolver } from '../../../src/dns/resolver.ts';
import type { DnsLookupOutcome, DnsObserver, ResolverOptions } from '../../../src/dns/types.ts';
import { startDnsServer, type DnsTestServer } from '../../harness/dns-server.ts';

const ZONE = {
  'short.example': [{ TXT: 'five seconds', ttl: 5 }],
  'long.example': [{ TXT: 'a day', ttl: 86400 }],
  'zero.example': [{ TXT: 'do not keep', ttl: 0 }],
  'chain.example': [{ CNAME: 'target.example', ttl: 10 }],
  'target.example': [{ A: '192.0.2.9', ttl: 3600 }],
  'exists.example': [{ A: '192.0.2.10' }],
  'servfail.example': ['SERVFAIL'],
  'timeout.example': ['TIMEOUT'],
} as const;

void describe('dns cache', () => {
  let server: DnsTestServer;
  let now = 1_700_000_000_000;
  const clock: Clock = { now: () => now };
  const advance = (seconds: number): void => {
    now += seconds * 1000;
  };

  before(async () => {
    server = await startDnsServer(ZONE, { negativeTtl: 30 });
  });
  after(() => server.close());
  beforeEach(() => {
    server.queries.length = 0;
  });

  const withResolver = async (options: Partial<ResolverOptions>, body: (r: ReturnType<typeof createResolver>) => Promise<void>) => {
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1, clock, ...options });
    try {
      await body(r);
    } finally {
      r.close();
    }
  };
  const count = (name: string): number => server.queries.filter((q) => q.name.toLowerCase().replace(/\.$/, '') === name).length;

  void it('answers a repeated question from the cache until the TTL runs out', () => withResolver({}, async (r) => {
    assert.deepEqual(await r.resolve('short.example', 'TXT'), [['five seconds']]);
    advance(4.999);
    assert.deepEqual(await r.resolve('SHORT.example.', 'TXT'), [['five seconds']]);
    assert.equal(count('short.example'), 1);
    advance(0.001);
    assert.deepEqual(await r.resolve('short.example', 'TXT'), [['five seconds']]);
    assert.equal(count('short.example'), 2);
  }));

  void it('hands every caller its own copy of a cached answer', () => withResolver({}, async (r) => {
    const first = await r.resolve('short.example', 'TXT');
    first[0]?.push('mutated');
    assert.deepEqual(await r.resolve('short.example', 'TXT'), [['five seconds']]);
  }));

  void it('caps the TTL at maxTtlSeconds', () => withResolver({ maxTtlSeconds: 60 }, async (r) => {
    await r.resolve('long.example', 'TXT');
    advance(59);
    await r.resolve('long.example', 'TXT');
    assert.equal(count('long.example'), 1);
    advance(1);
    await r.resolve('long.example', 'TXT');
    assert.equal(count('long.example'), 2);
  }));

  void it('uses the smallest TTL along a CNAME chain', () => withResolver({}, async (r) => {
    await r.resolve('chain.example', 'A');
    advance(9);
    await r.resolve('chain.example', 'A');
    assert.equal(count('chain.example'), 1);
    advance(1);
    await r.resolve('chain.example', 'A');
    assert.equal(count('chain.example'), 2);
  }));

  void it('does not keep an answer whose TTL is 0', () => withResolver({}, async (r) => {
    await r.resolve('zero.example', 'TXT');
    await r.resolve('zero.example', 'TXT');
    assert.equal(count('zero.example'), 2);
  }));

  void it('keeps NXDOMAIN and NODATA for the SOA minimum (RFC 2308 §5)', () => withResolver({}, async (r) => {
    await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolve('exists.example', 'TXT'), { code: 'ENODATA' });
    advance(29);
    await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolve('exists.example', 'TXT'), { code: 'ENODATA' });
    assert.equal(count('gone.example') + count('exists.example'), 2);
    advance(1);
    await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
    assert.equal(count('gone.example'), 2);
  }));

  void it('caps negative caching at maxNegativeTtlSeconds', () => withResolver({ maxNegativeTtlSeconds: 10 }, async (r) => {
    await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
    advance(10);
    await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
    assert.equal(count('gone.example'), 2);
  }));

  void it('never caches SERVFAIL or a timeout', () => withResolver({}, async (r) => {
    await assert.rejects(r.resolve('servfail.example', 'TXT'), { code: 'ESERVFAIL' });
    await assert.rejects(r.resolve('servfail.example', 'TXT'), { code: 'ESERVFAIL' });
    await assert.rejects(r.resolve('timeout.example', 'TXT'), { code: 'ETIMEOUT' });
    await assert.rejects(r.resolve('timeout.example', 'TXT'), { code: 'ETIMEOUT' });
    assert.equal(count('servfail.example'), 2);
    assert.equal(count('timeout.example'), 2);
  }));

  void it('asks the next attempt again after a temporary failure', () => withResolver({ attempts: 3 }, async (r) => {
    await assert.rejects(r.resolve('servfail.example', 'A'), { code: 'ESERVFAIL' });
    assert.equal(count('servfail.example'), 3);
  }));

  void it('sends one query for identical concurrent questions, each caller getting its own result', () => withResolver({ cacheSize: 0 }, async (r) => {
    const [a, b] = await Promise.all([r.resolve('short.example', 'TXT'), r.resolve('Short.Example', 'TXT')]);
    assert.deepEqual(a, [['five seconds']]);
    assert.deepEqual(b, [['five seconds']]);
    assert.notEqual(a, b);
    const errors = await Promise.allSettled([r.resolve('gone.example', 'A'), r.resolve('gone.example', 'A')]);
    assert.equal(count('short.example') + count('gone.example'), 2);
    const [e1, e2] = errors.map((e) => (e.status === 'rejected' ? e.reason as Error : null));
    assert.equal((e1 as NodeJS.ErrnoException | null)?.code, 'ENOTFOUND');
    assert.notEqual(e1, e2); // mailauth writes onto the error it gets
  }));

  void it('reports lookups and cache hits to the observer with bounded labels', () => {
    const seen: Array<[string, DnsLookupOutcome | 'hit']> = [];
    const observer: DnsObserver = {
      lookup: (rrtype, outcome, seconds) => {
        assert.ok(seconds >= 0 && seconds < 5);
        seen.push([rrtype, outcome]);
      },
      cacheHit: (rrtype) => seen.push([rrtype, 'hit']),
    };
    return withResolver({ observer }, async (r) => {
      await r.resolve('short.example', 'TXT');
      await r.resolve('short.example', 'TXT');
      await r.resolve('exists.example', 'MX').catch(() => undefined);
      await r.resolve('gone.example', 'AAAA').catch(() => undefined);
      await r.resolve('servfail.example', 'PTR').catch(() => undefined);
      await r.resolve('timeout.example', 'A').catch(() => undefined);
      await r.resolve(`${'x'.repeat(64)}.example`, 'A').catch(() => undefined); // never sent: not a lookup
      assert.deepEqual(seen, [
        ['TXT', 'ok'], ['TXT', 'hit'], ['MX', 'nodata'], ['AAAA', 'nxdomain'], ['PTR', 'servfail'], ['A', 'timeout'],
      ]);
    });
  });
});
