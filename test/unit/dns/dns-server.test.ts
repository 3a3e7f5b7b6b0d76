import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createResolver } from '../../../src/dns/resolver.ts';
import type { DnsResolver } from '../../../src/dns/types.ts';
import { startDnsServer, type DnsTestServer } from '../../harness/dns-server.ts';

/** The harness's own semantics, which other tests (and the RFC 7208 zones) rely on. */
void describe('loopback DNS test server', () => {
  let server: DnsTestServer;
  let dns: DnsResolver;
  before(async () => {
    server = await startDnsServer();
    dns = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1, cacheSize: 0 });
  });
  after(async () => {
    dns.close();
    await server.close();
  });
  beforeEach(() => {
    server.queries.length = 0;
  });

  void it('listens on 127.0.0.1 with UDP and TCP on the same port', async () => {
    assert.equal(server.host, '127.0.0.1');
    const socket = connect({ host: server.host, port: server.port });
    await once(socket, 'connect');
    socket.destroy();
  });

  void it('serves SPF records as TXT unless the name has TXT records or says TXT: NONE', async () => {
    server.setZone({
      'spf.example': [{ SPF: 'v=spf1 -all' }],
      'both.example': [{ SPF: 'v=spf1 -all' }, { TXT: 'v=spf1 +all' }],
      'spfonly.example': [{ SPF: 'v=spf1 -all' }, { TXT: 'NONE' }],
    });
    assert.deepEqual(await dns.resolve('spf.example', 'TXT'), [['v=spf1 -all']]);
    assert.deepEqual(await dns.resolve('spf.example', 'SPF'), [['v=spf1 -all']]);
    assert.deepEqual(await dns.resolve('both.example', 'TXT'), [['v=spf1 +all']]);
    await assert.rejects(dns.resolve('spfonly.example', 'TXT'), { code: 'ENODATA' });
  });

  void it('TIMEOUT and SERVFAIL apply to the types a name has no records of', async () => {
    server.setZone({
      'txt-then-timeout.example': [{ TXT: 'v=spf1 -all' }, 'TIMEOUT'],
      'broken.example': [{ A: '192.0.2.1' }, 'SERVFAIL'],
    });
    assert.deepEqual(await dns.resolve('txt-then-timeout.example', 'TXT'), [['v=spf1 -all']]);
    await assert.rejects(dns.resolve('txt-then-timeout.example', 'A'), { code: 'ETIMEOUT' });
    assert.deepEqual(await dns.resolve('broken.example', 'A'), ['192.0.2.1']);
    await assert.rejects(dns.resolve('broken.example', 'TXT'), { code: 'ESERVFAIL' });
  });

  void it('matches names case-insensitively with or without the trailing dot', async () => {
    server.setZone({ 'Mixed.Example.': [{ A: '192.0.2.3' }] });
    assert.deepEqual(await dns.resolve('mixed.example', 'A'), ['192.0.2.3']);
    assert.deepEqual(await dns.resolve('MIXED.EXAMPLE.', 'A'), ['192.0.2.3']);
  });

  void it('splits TXT text over 255 octets into character-strings and keeps octets as written', async () => {
    server.setZone({ 'long.example': [{ TXT: 'x'.repeat(600) }], 'octets.example': [{ TXT: 'v=spf1 \x80a:example.net' }] });
    assert.deepEqual((await dns.resolve('long.example', 'TXT'))[0]?.map((s) => s.length), [255, 255, 90]);
    assert.deepEqual(await dns.resolve('octets.example', 'TXT'), [['v=spf1 \x80a:example.net']]);
  });

  void it('answers a CNAME with the target\'s records, NXDOMAIN when the target is missing', async () => {
    server.setZone({ 'alias.example': [{ CNAME: 'target.example.' }], 'target.example': [{ MX: [5, 'mx.example'] }], 'dangling.example': [{ CNAME: 'nowhere.example' }] });
    assert.deepEqual(await dns.resolve('alias.example', 'MX'), [{ exchange: 'mx.example', priority: 5 }]);
    await assert.rejects(dns.resolve('dangling.example', 'A'), { code: 'ENOTFOUND' });
  });

  void it('addZone replaces the names it lists and keeps the others; setZone replaces all', async () => {
    server.setZone({ 'keep.example': [{ A: '192.0.2.1' }], 'swap.example': [{ A: '192.0.2.2' }] });
    server.addZone({ 'swap.example': [{ A: '192.0.2.22' }], 'new.example': [{ AAAA: '2001:db8::5' }] });
    assert.deepEqual(await dns.resolve('keep.example', 'A'), ['192.0.2.1']);
    assert.deepEqual(await dns.resolve('swap.example', 'A'), ['192.0.2.22']);
    assert.deepEqual(await dns.resolve('new.example', 'AAAA'), ['2001:db8::5']);
    server.setZone({});
    await assert.rejects(dns.resolve('keep.example', 'A'), { code: 'ENOTFOUND' });
  });

  void it('records every question with its transport', async () => {
    server.setZone({ 'big.example': [{ TXT: 'b'.repeat(2000) }] });
    await dns.resolve('big.example', 'TXT');
    await dns.resolve('nothing.example', 'A').catch(() => undefined);
    assert.deepEqual(server.queries, [
      { name: 'big.example', type: 'TXT', transport: 'udp' },
      { name: 'big.example', type: 'TXT', transport: 'tcp' },
      { name: 'nothing.example', type: 'A', transport: 'udp' },
    ]);
  });

  void it('refuses a record it does not know', () => {
    assert.throws(() => server.setZone({ 'x.example': [{ SRV: 'nope' } as never] }), /unknown record/);
  });
});
