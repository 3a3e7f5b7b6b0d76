import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResolvConf, parseServer, systemServers } from '../../../src/dns/servers.ts';

void describe('dns server addresses', () => {
  void it('parses host:port, [v6]:port, a bare host and a bare IPv6 address', () => {
    assert.deepEqual(parseServer('192.0.2.53:5353'), { host: '192.0.2.53', port: 5353 });
    assert.deepEqual(parseServer('192.0.2.53'), { host: '192.0.2.53', port: 53 });
    assert.deepEqual(parseServer('[2001:db8::53]:5300'), { host: '2001:db8::53', port: 5300 });
    assert.deepEqual(parseServer('[2001:db8::53]'), { host: '2001:db8::53', port: 53 });
    assert.deepEqual(parseServer('2001:db8::53'), { host: '2001:db8::53', port: 53 });
    assert.deepEqual(parseServer(' 127.0.0.1:53 '), { host: '127.0.0.1', port: 53 });
  });

  void it('refuses names, bad ports and broken brackets', () => {
    assert.throws(() => parseServer('dns.example:53'), /not an IP address/);
    assert.throws(() => parseServer('127.0.0.1:0'), /bad port/);
    assert.throws(() => parseServer('127.0.0.1:65536'), /bad port/);
    assert.throws(() => parseServer('127.0.0.1:x'), /bad port/);
    assert.throws(() => parseServer('[2001:db8::53:53'), /missing "]"/);
    assert.throws(() => parseServer('[2001:db8::53]53'), /expected ":port"/);
  });

  void it('refuses addresses no resolver can be reached at: unscoped IPv6 link-local, broadcast, multicast', () => {
    assert.throws(() => parseServer('fe80::1'), /link-local address without its interface: write it as \[fe80::1%eth0\]:53/);
    assert.throws(() => parseServer('[fe80::53]:53'), /link-local/);
    assert.throws(() => parseServer('255.255.255.255:53'), /broadcast address/);
    assert.throws(() => parseServer('[::ffff:255.255.255.255]:53'), /broadcast address/);
    assert.throws(() => parseServer('224.0.0.251:5353'), /multicast address/);
    assert.throws(() => parseServer('[ff02::1]:53'), /multicast address/);
    // with its interface a link-local resolver is fine (a router's), as is IPv4 link-local (cloud resolvers)
    assert.deepEqual(parseServer('[fe80::1%eth0]:53'), { host: 'fe80::1%eth0', port: 53 });
    assert.deepEqual(parseServer('169.254.169.253'), { host: '169.254.169.253', port: 53 });
  });

  void it('reads nameserver lines from resolv.conf', () => {
    const conf = '# comment\nsearch example.com\nnameserver 192.0.2.1\nnameserver  2001:db8::1\nnameserver bogus\noptions ndots:2\n';
    assert.deepEqual(parseResolvConf(conf), [{ host: '192.0.2.1', port: 53 }, { host: '2001:db8::1', port: 53 }]);
  });

  void it('falls back to node\'s list, then to 127.0.0.1', () => {
    const noFile = (): string => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    assert.deepEqual(systemServers({ readResolvConf: () => 'nameserver 192.0.2.7\n' }), [{ host: '192.0.2.7', port: 53 }]);
    assert.deepEqual(systemServers({ readResolvConf: noFile, nodeServers: () => ['[2001:db8::2]:5353', '192.0.2.8'] }), [
      { host: '2001:db8::2', port: 5353 }, { host: '192.0.2.8', port: 53 },
    ]);
    assert.deepEqual(systemServers({ readResolvConf: () => '', nodeServers: () => [] }), [{ host: '127.0.0.1', port: 53 }]);
  });
});
