/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileIpPatterns, parseClientIp } from '../../../src/policy/ip.ts';
import { parseListFile } from '../../../src/policy/lists.ts';
import { compileNamePatterns } from '../../../src/policy/names.ts';
import { compileTemplate } from '../../../src/policy/template.ts';

function ipErrors(patterns: string[]): string[] {
  const errors: string[] = [];
  compileIpPatterns(patterns, (i, problem) => errors.push(`${i}: ${problem}`));
  return errors;
}

describe('IP patterns', () => {
  it('refuses bad addresses, prefixes and host bits', () => {
    assert.deepEqual(ipErrors(['192.0.2.0/33', '2001:db8::1/24', '0x7f.1', 'fe80::1%eth0', '192.0.2.0/', 'example.com']), [
      '0: prefix length out of range in "192.0.2.0/33"',
      '1: CIDR "2001:db8::1/24" has host bits set; the network is 2001:d00::/24',
      '2: not an IP address or CIDR: "0x7f.1"',
      '3: not an IP address or CIDR: "fe80::1%eth0"',
      '4: not an IP address or CIDR: "192.0.2.0/"',
      '5: not an IP address or CIDR: "example.com"',
    ]);
  });
  it('unwraps IPv4-mapped clients and patterns', () => {
    assert.deepEqual(parseClientIp('::ffff:192.0.2.1'), parseClientIp('192.0.2.1'));
    const match = compileIpPatterns(['::ffff:198.51.100.0/120', '::ffff:203.0.113.9'], () => assert.fail());
    const ip = (t: string) => parseClientIp(t) ?? assert.fail(t);
    assert.equal(match(ip('198.51.100.200')), true);
    assert.equal(match(ip('203.0.113.9')), true);
    assert.equal(match(ip('::ffff:203.0.113.9')), true);
    assert.equal(match(ip('198.51.101.1')), false);
  });
  it('matches /0 and /32 boundaries', () => {
    const all = compileIpPatterns(['0.0.0.0/0'], () => assert.fail());
    assert.equal(all(parseClientIp('255.255.255.255') ?? assert.fail()), true);
    const slash31 = compileIpPatterns(['192.0.2.2/31'], () => assert.fail());
    assert.deepEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map((t) => slash31(parseClientIp(t) ?? assert.fail())), [false, true, true, false]);
  });
});

describe('name patterns', () => {
  it('domain keys refuse addresses and junk; recipient accepts addresses', () => {
    const errors: string[] = [];
    compileNamePatterns('domain', ['a@b.example', 'exa mple.com', '*.', 'ok.example'], (i, p) => errors.push(`${i}: ${p}`));
    assert.deepEqual(errors, [
      '0: expected a domain pattern, got an address: "a@b.example"',
      '1: not a valid domain pattern: "exa mple.com" (use example.com, .example.com or *.example.com)',
      '2: not a valid domain pattern: "*." (use example.com, .example.com or *.example.com)',
    ]);
    const rcpt = compileNamePatterns('recipient', ['Postmaster@Example.com.'], () => assert.fail());
    assert.equal(rcpt('postmaster@example.com'), true);
    assert.equal(rcpt('abuse@example.com'), false);
  });
  it('trailing dots and case do not matter', () => {
    const m = compileNamePatterns('domain', ['Example.COM.'], () => assert.fail());
    assert.equal(m('example.com.'), true);
    assert.equal(m('EXAMPLE.com'), true);
  });
});

describe('list files', () => {
  it('one pattern per line, # comments, positions kept', () => {
    assert.deepEqual(parseListFile('# head\n  a.example  # c\r\n\n.b.example\n'), [
      { text: 'a.example', line: 2, column: 3 },
      { text: '.b.example', line: 4, column: 1 },
    ]);
  });
});

describe('templates', () => {
  it('refuses non-ASCII, braces and unknown placeholders; substitutes {rule} at load', () => {
    assert.deepEqual(compileTemplate('caf\u00e9', 'r'), { error: 'reply text must be one line of printable ASCII' });
    assert.deepEqual(compileTemplate('a\r\nb', 'r'), { error: 'reply text must be one line of printable ASCII' });
    assert.deepEqual(compileTemplate('open { brace', 'r'), { error: 'unbalanced { or } in reply text' });
    assert.deepEqual(compileTemplate('{helo}', 'r'), { error: 'unknown placeholder {helo} (known: {from_domain}, {sender_domain}, {spf_domain}, {dmarc_policy}, {dmarc_domain}, {dmarc_published}, {ip}, {rule})' });
    assert.deepEqual(compileTemplate('by {rule} for {ip}.', 'r1'), { template: [{ literal: 'by r1 for ' }, { variable: 'ip' }, { literal: '.' }] });
  });
});
