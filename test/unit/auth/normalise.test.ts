/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reasonOf, toAuthResult, toDmarcPolicy } from '../../../src/auth/normalise.ts';
import { publishedOf } from '../../../src/auth/published.ts';

describe('toAuthResult', () => {
  it('keeps every RFC 8601 word we use', () => {
    for (const word of ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy'] as const) {
      assert.equal(toAuthResult(word), word);
    }
  });

  it('maps mailauth and tool spellings (STYLE §2.7)', () => {
    assert.equal(toAuthResult('temperr'), 'temperror');
    assert.equal(toAuthResult('hardfail'), 'fail');
    assert.equal(toAuthResult('skipped'), 'none');
    assert.equal(toAuthResult('declined'), 'none');
    assert.equal(toAuthResult(' PASS '), 'pass');
  });

  it('an unknown or missing word is permerror, never none', () => {
    assert.equal(toAuthResult('bogus'), 'permerror');
    assert.equal(toAuthResult(''), 'permerror');
    assert.equal(toAuthResult(undefined), 'permerror');
    assert.equal(toAuthResult(42), 'permerror');
  });
});

describe('toDmarcPolicy', () => {
  it('accepts the three policies only', () => {
    assert.equal(toDmarcPolicy('reject'), 'reject');
    assert.equal(toDmarcPolicy('Quarantine'), 'quarantine');
    assert.equal(toDmarcPolicy('none'), 'none');
    assert.equal(toDmarcPolicy('discard'), null);
    assert.equal(toDmarcPolicy(undefined), null);
  });
});

describe('reasonOf', () => {
  it('joins the comment, policy properties and extra detail', () => {
    assert.equal(reasonOf({ comment: 'weak key', policy: { 'dkim-rules': 'weak-key' } }, 'x'), 'weak key; dkim-rules=weak-key; x');
    assert.equal(reasonOf({ result: 'pass' }), '');
    assert.equal(reasonOf(null), '');
  });
});

describe('publishedOf (the applied DMARC record)', () => {
  it('names the policy domain as every other part of Postern does (the shared normaliseDomain)', () => {
    const published = (policyDomain: string) => publishedOf({ policyDomain, p: 'reject', record: { p: 'reject' } } as Parameters<typeof publishedOf>[0]).published?.domain;
    assert.equal(published('PSD.Example.'), 'psd.example', 'lower case, no root dot');
    assert.equal(published('bücher.example'), 'xn--bcher-kva.example', 'A-label form');
    assert.deepEqual(publishedOf({ policyDomain: '.', p: 'reject', record: { p: 'reject' } } as Parameters<typeof publishedOf>[0]), {}, 'no domain: no record');
  });
});
