/**
 * One domain normaliser and one pattern matcher for recipients, policy and reputation
 * (src/core/domain.ts), and the refusal of `domains` entries that cover a public suffix.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkServedDomain, domainMatcher, domainOf, normaliseDomain, parseDomainPattern, publicSuffixOf, type DomainPattern } from '../../../src/core/domain.ts';
import { checkRecipient, domainSet } from '../../../src/pipeline/recipient.ts';
import { compileNamePatterns } from '../../../src/policy/names.ts';
import { parseList } from '../../../src/reputation/lists.ts';
import { domainSubject } from '../../../src/reputation/keys.ts';

describe('normaliseDomain', () => {
  it('lower-cases, drops the root dot, converts U-labels to A-labels (RFC 8616 §4)', () => {
    assert.equal(normaliseDomain('Example.COM.'), 'example.com');
    assert.equal(normaliseDomain('Bücher.example'), 'xn--bcher-kva.example');
    assert.equal(normaliseDomain(' xn--BCHER-kva.Example '), 'xn--bcher-kva.example');
    assert.equal(normaliseDomain('[192.0.2.1]'), '[192.0.2.1]');
    assert.equal(normaliseDomain(undefined), '');
  });

  it('takes the domain after the last @', () => {
    assert.equal(domainOf('"a@b"@Example.ORG'), 'example.org');
    assert.equal(domainOf('mx.example.net'), 'mx.example.net');
  });

  it('recipients, policy patterns, list entries and reputation subjects agree on every spelling', () => {
    const spellings = ['Bücher.Example', 'bücher.example.', 'XN--BCHER-KVA.EXAMPLE', 'xn--bcher-kva.example'];
    const set = domainSet(['bücher.example']);
    const policy = compileNamePatterns('domain', ['bücher.example'], () => assert.fail('valid pattern'));
    const list = parseList('bücher.example\n', 'allow.txt');
    for (const s of spellings) {
      assert.equal(checkRecipient(`user@${s}`, set).ok, true, `recipient ${s}`);
      assert.equal(policy(s), true, `policy ${s}`);
      assert.equal(list.hasDomain(s), true, `list ${s}`);
      assert.equal(domainSubject(s).id, 'xn--bcher-kva.example', `subject ${s}`);
    }
  });
});

describe('domain patterns', () => {
  const matcher = (...texts: string[]) => domainMatcher(texts.map((t) => (parseDomainPattern(t) as { ok: true; pattern: DomainPattern }).pattern));

  it('example.com is exact; .example.com and *.example.com are its subdomains only (Postfix without parent_domain_matches_subdomains)', () => {
    const exact = matcher('example.com');
    assert.equal(exact.matches('example.com'), true);
    assert.equal(exact.matches('mail.example.com'), false);
    for (const p of ['.example.com', '*.example.com']) {
      const sub = matcher(p);
      assert.equal(sub.matches('mail.example.com'), true, p);
      assert.equal(sub.matches('a.b.example.com'), true, p);
      assert.equal(sub.matches('example.com'), false, `${p} does not include the parent`);
      assert.equal(sub.matches('badexample.com'), false, p);
    }
  });

  it('refuses what is not a pattern', () => {
    for (const bad of ['', '.', '*', '*.', 'foo.*.com', '*example.com', 'exa mple.com', 'example..com', '-x.example.com']) {
      assert.equal(parseDomainPattern(bad).ok, false, bad);
    }
  });
});

describe('served domains and the Public Suffix List', () => {
  it('refuses a TLD, a public suffix, or a wildcard over one (ICANN and private sections)', () => {
    for (const entry of ['com', '.com', '*.com', 'co.uk', '.co.uk', '*.co.uk', 'uk', 'github.io', '*.github.io', '.s3.amazonaws.com', 'localhost', 'foo.ck']) {
      const r = checkServedDomain(entry);
      assert.equal(r.ok, false, entry);
      assert.match((r as { problem: string }).problem, /public suffix/, entry);
    }
  });

  it('refuses the root, IP addresses and names that are not mail domains', () => {
    assert.match((checkServedDomain('.') as { problem: string }).problem, /every domain/);
    assert.match((checkServedDomain('192.0.2.1') as { problem: string }).problem, /IP address/);
    assert.match((checkServedDomain('_dmarc.example.com') as { problem: string }).problem, /not a mail domain/);
  });

  it('accepts registrable domains and their subdomains, normalised', () => {
    assert.deepEqual(checkServedDomain('Example.COM'), { ok: true, text: 'example.com' });
    assert.deepEqual(checkServedDomain('*.example.co.uk'), { ok: true, text: '.example.co.uk' });
    assert.deepEqual(checkServedDomain('.Bücher.example'), { ok: true, text: '.xn--bcher-kva.example' });
    assert.deepEqual(checkServedDomain('foo.github.io'), { ok: true, text: 'foo.github.io' });
    assert.deepEqual(checkServedDomain('example.test'), { ok: true, text: 'example.test' });
  });

  it('names the suffix', () => {
    assert.equal(publicSuffixOf('co.uk'), 'co.uk');
    assert.equal(publicSuffixOf('example.co.uk'), null);
  });
});
