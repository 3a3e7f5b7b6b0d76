import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spf } from 'mailauth';
import { createResolver, mailauthResolver } from '../../../src/dns/resolver.ts';
import type { DnsResolver } from '../../../src/dns/types.ts';
import { startDnsServer, type DnsTestServer } from '../../harness/dns-server.ts';

const LONG_LABEL = `A${'1234567890'.repeat(6)}123`; // 64 octets
const DKIM_2048 = `v=DKIM1; k=rsa; p=${'M'.repeat(392)}`; // a 2048-bit RSA key record is about 410 octets

const ZONE = {
  'example.com': [{ A: '192.0.2.1' }, { A: '192.0.2.2' }, { MX: [10, 'mx1.example.com'] }, { MX: [20, 'mx2.example.com.'] }],
  'v6.example.com': [{ AAAA: '2001:DB8:0::1' }],
  'multi.example.com': [{ TXT: ['v=spf1 ', 'ip4:192.0.2.0/24 -all'] }, { TXT: 'second record' }],
  'nullmx.example.com': [{ MX: [0, '.'] }],
  'ns.example.com': [{ CNAME: 'example.com' }],
  'sel._domainkey.example.com': [{ TXT: DKIM_2048 }],
  'mid.example.com': [{ TXT: 'y'.repeat(1000) }],
  'huge.example.com': [{ TXT: 'z'.repeat(3000) }],
  'a:b/c d.example.com': [{ TXT: 'macro target' }],
  'timeout.example.com': ['TIMEOUT'],
  'servfail.example.com': ['SERVFAIL'],
  'garbage.example.com': ['GARBAGE', { TXT: 'v=spf1 -all' }],
  '2.2.0.192.in-addr.arpa': [{ PTR: 'host.example.com' }],
  '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa': [{ PTR: 'v6.example.com' }],
  // RFC 7208 suite, "Initial processing": a63-octet label is fine, 64 is not
  'a12345678901234567890123456789012345678901234567890123456789012.example.com': [{ SPF: 'v=spf1 -all' }],
} as const;

void describe('dns resolver against the loopback server', () => {
  let server: DnsTestServer;
  let dns: DnsResolver;
  before(async () => {
    server = await startDnsServer(ZONE);
    dns = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1, cacheSize: 0 });
  });
  after(async () => {
    dns.close();
    await server.close();
  });
  const queriesFor = (name: string): Array<{ type: string; transport: string }> =>
    server.queries.filter((q) => q.name.toLowerCase() === name.toLowerCase()).map(({ type, transport }) => ({ type, transport }));

  void it('answers A, AAAA, MX, PTR and CNAME in the shapes of dns.promises.resolve', async () => {
    assert.deepEqual(await dns.resolve('example.com', 'A'), ['192.0.2.1', '192.0.2.2']);
    assert.deepEqual(await dns.resolve('v6.example.com', 'AAAA'), ['2001:db8::1']);
    assert.deepEqual(await dns.resolve('example.com', 'MX'), [
      { exchange: 'mx1.example.com', priority: 10 },
      { exchange: 'mx2.example.com', priority: 20 },
    ]);
    assert.deepEqual(await dns.resolve('nullmx.example.com', 'MX'), [{ exchange: '', priority: 0 }]);
    assert.deepEqual(await dns.resolve('2.2.0.192.in-addr.arpa', 'PTR'), ['host.example.com']);
    assert.deepEqual(await dns.resolve('ns.example.com', 'CNAME'), ['example.com']);
  });

  void it('keeps the character-strings of each TXT record apart, as node does', async () => {
    assert.deepEqual(await dns.resolve('multi.example.com', 'TXT'), [['v=spf1 ', 'ip4:192.0.2.0/24 -all'], ['second record']]);
  });

  void it('follows a CNAME in the answer to the records of the type asked', async () => {
    assert.deepEqual(await dns.resolve('NS.Example.COM.', 'A'), ['192.0.2.1', '192.0.2.2']);
  });

  void it('maps NXDOMAIN, NODATA, silence and SERVFAIL to node error codes', async () => {
    await assert.rejects(dns.resolve('missing.example.com', 'TXT'), { code: 'ENOTFOUND', hostname: 'missing.example.com', syscall: 'queryTxt' });
    await assert.rejects(dns.resolve('example.com', 'TXT'), { code: 'ENODATA' });
    await assert.rejects(dns.resolve('timeout.example.com', 'A'), { code: 'ETIMEOUT' });
    await assert.rejects(dns.resolve('servfail.example.com', 'TXT'), { code: 'ESERVFAIL' });
  });

  void it('a server answering garbage (junk octets, cut short, wrong type, random TXT, spoofed question, junk over TCP) gives DNS errors or the junk as text, never the real record', async () => {
    const codes = new Set<string>();
    for (let i = 0; i < 12; i++) {
      try {
        const txt = await dns.resolve('garbage.example.com', 'TXT');
        assert.ok(txt.every((strings) => Array.isArray(strings) && strings.every((t) => typeof t === 'string')));
        assert.ok(!txt.flat().includes('v=spf1 -all'));
        codes.add('answer');
      } catch (err) {
        codes.add((err as { code: string }).code);
      }
    }
    assert.deepEqual([...codes].sort(), ['ENODATA', 'ETIMEOUT', 'EBADRESP', 'answer'].sort());
  });

  void it('queries names with ":", "/" and spaces as they are (SPF macro output)', async () => {
    assert.deepEqual(await dns.resolve('a:b/c d.example.com', 'TXT'), [['macro target']]);
    assert.deepEqual(queriesFor('a:b/c d.example.com'), [{ type: 'TXT', transport: 'udp' }]);
  });

  void it('rejects a label over 63 octets or a name over 253 locally with EBADNAME, sending nothing', async () => {
    const before = server.queries.length;
    await assert.rejects(dns.resolve(`${LONG_LABEL}.example.com`, 'TXT'), { code: 'EBADNAME' });
    await assert.rejects(dns.resolve(`${'abcdefghi.'.repeat(25)}abcd`, 'A'), { code: 'EBADNAME' }); // 254 octets
    await assert.rejects(dns.resolve('a..example.com', 'A'), { code: 'EBADNAME' });
    assert.equal(server.queries.length, before);
    // 63 octets and 253 octets are fine
    await assert.rejects(dns.resolve(`${LONG_LABEL.slice(1)}.example.com`, 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(dns.resolve(`${'abcdefghi.'.repeat(25)}abc`, 'A'), { code: 'ENOTFOUND' });
  });

  void it('gives SPF "none" for a too-long label and "fail" at 63 octets (RFC 7208 suite toolonglabel/longlabel)', async () => {
    const resolver = mailauthResolver(dns);
    const ask = (domain: string) => spf({ sender: `lyme.eater@${domain}`, ip: '1.2.3.5', helo: 'mail.example.net', mta: 'mx.test', resolver });
    assert.equal((await ask(`${LONG_LABEL}.example.com`)).status.result, 'none');
    assert.equal((await ask(`${LONG_LABEL.slice(0, 63)}.example.com`)).status.result, 'fail');
  });

  void it('gets a 2048-bit DKIM key record and a 1000-octet TXT over UDP thanks to EDNS0', async () => {
    assert.deepEqual(await dns.resolve('sel._domainkey.example.com', 'TXT'), [[DKIM_2048.slice(0, 255), DKIM_2048.slice(255)]]);
    const mid = await dns.resolve('mid.example.com', 'TXT');
    assert.equal(mid[0]?.join(''), 'y'.repeat(1000));
    assert.deepEqual(queriesFor('sel._domainkey.example.com'), [{ type: 'TXT', transport: 'udp' }]);
    assert.deepEqual(queriesFor('mid.example.com'), [{ type: 'TXT', transport: 'udp' }]);
  });

  void it('repeats over TCP when the UDP answer is truncated', async () => {
    const huge = await dns.resolve('huge.example.com', 'TXT');
    assert.equal(huge.length, 1);
    assert.equal(huge[0]?.length, 12); // 3000 octets in 255-octet character-strings
    assert.equal(huge[0]?.join(''), 'z'.repeat(3000));
    assert.deepEqual(queriesFor('huge.example.com'), [{ type: 'TXT', transport: 'udp' }, { type: 'TXT', transport: 'tcp' }]);
  });

  void it('reverse() finds the PTR names of IPv4 and IPv6 addresses', async () => {
    assert.deepEqual(await dns.reverse('192.0.2.2'), ['host.example.com']);
    assert.deepEqual(await dns.reverse('2001:db8::1'), ['v6.example.com']);
    await assert.rejects(dns.reverse('192.0.2.99'), { code: 'ENOTFOUND' });
    await assert.rejects(dns.reverse('not-an-ip'), { code: 'EINVAL' });
  });

  void it('reverseCallback() answers node-style, as smtp-server calls resolver.reverse', async () => {
    const call = (ip: string) => new Promise<[Error | null, string[] | undefined]>((resolve) => {
      dns.reverseCallback(ip, (err, names) => resolve([err, names]));
    });
    assert.deepEqual(await call('192.0.2.2'), [null, ['host.example.com']]);
    const [err, names] = await call('192.0.2.77');
    assert.equal(err && 'code' in err ? err.code : undefined, 'ENOTFOUND');
    assert.equal(names, undefined);
  });

  void it('rejects record types it does not implement', async () => {
    await assert.rejects(dns.resolve('example.com', 'SRV'), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  void it('after close() fails lookups with ECANCELLED', async () => {
    const closed = createResolver({ servers: [server], timeoutMs: 5000, attempts: 1 });
    const pending = closed.resolve('timeout.example.com', 'A');
    closed.close();
    await assert.rejects(pending, { code: 'ECANCELLED' });
    await assert.rejects(closed.resolve('example.com', 'A'), { code: 'ECANCELLED' });
  });
});
