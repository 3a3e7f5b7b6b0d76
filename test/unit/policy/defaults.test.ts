/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/** The shipped policies/00-defaults.yaml: DMARC enforced as published, DNS trouble deferred then accepted. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { decide } from '../../../src/policy/decide.ts';
import { loadPolicies } from '../../../src/policy/load.ts';
import type { RuleSet } from '../../../src/policy/types.ts';
import { dataFacts, mailFacts } from './facts.ts';

const SHIPPED = join(import.meta.dirname, '../../../policies');

describe('policies/00-defaults.yaml', () => {
  let rs: RuleSet;
  before(async () => {
    rs = await loadPolicies(SHIPPED);
  });

  it('p=reject and DMARC fail → 550 5.7.1 naming the domain and p=reject', () => {
    const d = decide(dataFacts({ dmarc: 'fail', dmarcPolicy: 'reject', fromDomain: 'bank.example' }), rs, 'data');
    assert.deepEqual(d, {
      enforced: {
        action: 'reject', rule: 'dmarc-reject', reason: 'dmarc-policy',
        reply: { code: 550, enhanced: '5.7.1', text: 'Rejected by DMARC policy: bank.example publishes p=reject and the message is not authenticated' },
      },
    });
  });
  it('p=quarantine and DMARC fail → quarantine headers', () => {
    const d = decide(dataFacts({ dmarc: 'fail', dmarcPolicy: 'quarantine' }), rs, 'data');
    assert.deepEqual(d, {
      enforced: {
        action: 'quarantine', rule: 'dmarc-quarantine', reason: 'dmarc-policy',
        headers: [{ name: 'X-Postern-Quarantine', value: 'yes; rule=dmarc-quarantine' }, { name: 'X-Postern-Verdict', value: 'quarantine; rule=dmarc-quarantine' }],
      },
    });
  });
  it('p=none and DMARC fail → accept', () => {
    assert.deepEqual(decide(dataFacts({ dmarc: 'fail', dmarcPolicy: 'none' }), rs, 'data'), { enforced: { action: 'accept', rule: '', reason: 'default' } });
  });
  it('no DMARC record → accept', () => {
    assert.deepEqual(decide(dataFacts({ dmarc: 'none', dmarcPolicy: null }), rs, 'data'), { enforced: { action: 'accept', rule: '', reason: 'default' } });
  });
  it('DMARC pass on a p=reject domain → accept', () => {
    assert.equal(decide(dataFacts({ dmarc: 'pass', dmarcPolicy: 'reject' }), rs, 'data')?.enforced.action, 'accept');
  });
  it('temperror within the 4h window → tempfail 451 4.7.5', () => {
    const d = decide(dataFacts({ dmarc: 'temperror', dmarcPolicy: null, firstSeenSeconds: 4 * 3600 - 1 }), rs, 'data');
    assert.deepEqual(d, {
      enforced: {
        action: 'tempfail', rule: 'auth-temperror-retry', reason: 'auth-temperror',
        reply: { code: 451, enhanced: '4.7.5', text: 'Authentication checks had a temporary DNS error, please try again later' },
      },
    });
  });
  it('temperror after the window → accept', () => {
    assert.deepEqual(decide(dataFacts({ dmarc: 'temperror', dmarcPolicy: null, firstSeenSeconds: 4 * 3600 }), rs, 'data'),
      { enforced: { action: 'accept', rule: '', reason: 'default' } });
  });
  it('a temperror elsewhere does not delay mail that passed DMARC', () => {
    assert.equal(decide(dataFacts({ spf: 'temperror', dmarc: 'pass' }), rs, 'data')?.enforced.action, 'accept');
  });
  it('after the window a DMARC fail on p=reject is still rejected (no bypass by broken DNS)', () => {
    const facts = (firstSeenSeconds: number) => dataFacts({ spf: 'temperror', dmarc: 'fail', dmarcPolicy: 'reject', firstSeenSeconds });
    assert.equal(decide(facts(60), rs, 'data')?.enforced.rule, 'auth-temperror-retry');
    assert.equal(decide(facts(5 * 3600), rs, 'data')?.enforced.rule, 'dmarc-reject');
  });
  it('decides nothing at MAIL FROM (its rules need the message)', () => {
    assert.equal(decide(mailFacts({ spf: 'fail' }), rs, 'mail'), null);
  });
});
