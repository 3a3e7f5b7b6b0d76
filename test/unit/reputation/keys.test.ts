import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bucketKey, checkKeyPrefix, domainSubject, ipSubject, limitersFor, netSubject, parseSubject, rcptSubject, scoreKey,
} from '../../../src/reputation/keys.ts';

describe('reputation subjects and keys', () => {
  it('normalises addresses and networks (IPv4-mapped IPv6 is IPv4)', () => {
    assert.deepEqual(ipSubject('::ffff:203.0.113.7'), { kind: 'ip', id: '203.0.113.7' });
    assert.deepEqual(ipSubject('2001:DB8:0:0::1'), { kind: 'ip', id: '2001:db8::1' });
    assert.deepEqual(netSubject('203.0.113.77'), { kind: 'net', id: '203.0.113.0/24' });
    assert.deepEqual(netSubject('::ffff:203.0.113.77'), { kind: 'net', id: '203.0.113.0/24' });
    assert.deepEqual(netSubject('2001:db8:1:2:3:4:5:6'), { kind: 'net', id: '2001:db8:1:2::/64' });
    assert.deepEqual(netSubject('203.0.113.77', 20), { kind: 'net', id: '203.0.112.0/20' });
    assert.deepEqual(netSubject('2001:db8:1:2:3:4:5:6', 24, 48), { kind: 'net', id: '2001:db8:1::/48' });
    assert.throws(() => ipSubject('not-an-ip'), /invalid IP address "not-an-ip"/);
  });

  it('normalises domains and recipients', () => {
    assert.deepEqual(domainSubject('Example.COM.'), { kind: 'domain', id: 'example.com' });
    assert.deepEqual(domainSubject('bücher.example'), { kind: 'domain', id: 'xn--bcher-kva.example' });
    assert.deepEqual(rcptSubject('<User@Example.COM>'), { kind: 'rcpt', id: 'user@example.com' });
    assert.throws(() => domainSubject('a..b'), /invalid domain/);
    assert.throws(() => rcptSubject('nobody'), /invalid recipient/);
  });

  it('parses what an operator types', () => {
    assert.deepEqual(parseSubject('203.0.113.7'), { kind: 'ip', id: '203.0.113.7' });
    assert.deepEqual(parseSubject('203.0.113.7/24'), { kind: 'net', id: '203.0.113.0/24' });
    assert.deepEqual(parseSubject('2001:db8::/64'), { kind: 'net', id: '2001:db8::/64' });
    assert.deepEqual(parseSubject('Example.com'), { kind: 'domain', id: 'example.com' });
    assert.deepEqual(parseSubject('rcpt:a@b.example'), { kind: 'rcpt', id: 'a@b.example' });
    assert.deepEqual(parseSubject('net:198.51.100.9'), { kind: 'net', id: '198.51.100.0/24' });
    assert.throws(() => parseSubject('10.0.0.0/x'), /invalid CIDR/);
  });

  it('names keys readably, with the subject as the hash tag', () => {
    const ip = ipSubject('203.0.113.7');
    assert.equal(scoreKey('postern:', ip), 'postern:rep:{ip:203.0.113.7}');
    assert.equal(bucketKey('postern:', 'ip-messages', ip), 'postern:rl:{ip:203.0.113.7}:ip-messages');
    assert.equal(bucketKey('p:', 'net-recipients', netSubject('2001:db8::1')), 'p:rl:{net:2001:db8::/64}:net-recipients');
    // A brace in a local part must not end the hash tag early.
    assert.equal(scoreKey('p:', rcptSubject('a}b{c%@x.example')), 'p:rep:{rcpt:a%7Db%7Bc%25@x.example}');
    assert.throws(() => checkKeyPrefix('bad{'), /braces/);
  });

  it('knows which buckets a subject kind has', () => {
    assert.deepEqual(limitersFor('ip'), ['ip-connections', 'ip-messages', 'ip-recipients']);
    assert.deepEqual(limitersFor('domain'), ['domain-messages', 'dmarc-failure-reports']);
    assert.deepEqual(limitersFor('rcpt'), ['rcpt-messages']);
  });
});
