/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decide } from '../../../src/policy/decide.ts';
import { compilePolicies } from '../../../src/policy/load.ts';
import type { RuleSet } from '../../../src/policy/types.ts';
import { dataFacts, mailFacts } from './facts.ts';
import { FIXTURES, ruleSet } from './rules.ts';

function fixtureSet(folder: string, names: string[]): RuleSet {
  const dir = join(FIXTURES, folder);
  return compilePolicies(names.map((n) => ({ path: join(dir, n), text: readFileSync(join(dir, n), 'utf8') })), dir);
}

describe('first match wins across files in lexical order', () => {
  // Given in reverse: compilePolicies orders by file name like loadPolicies.
  const rs = fixtureSet('valid/two-files', ['20-second.yaml', '10-first.yaml']);

  it('concatenates the rules of 10-first before 20-second', () => {
    assert.deepEqual(rs.rules.map((r) => r.name), ['partner-accept', 'spf-fail-early', 'spf-fail-tag', 'dmarc-reject']);
  });
  it('an earlier file wins over a later one', () => {
    const d = decide(dataFacts({ ip: '198.51.100.1', spf: 'fail', sender: 'a@sender.example' }), rs, 'data');
    assert.deepEqual(d, { enforced: { action: 'reject', rule: 'spf-fail-early', reason: 'spf-fail', reply: { code: 550, enhanced: '5.7.23', text: 'SPF fail for sender.example from 198.51.100.1' } } });
  });
  it('an earlier rule of the same file wins', () => {
    assert.deepEqual(decide(dataFacts({ ip: '192.0.2.7', spf: 'fail' }), rs, 'data'), { enforced: { action: 'accept', rule: 'partner-accept', reason: 'rule' } });
  });
  it('a later file decides what earlier files did not match', () => {
    assert.deepEqual(decide(dataFacts({ ip: '198.51.100.1', spf: 'softfail' }), rs, 'data'), {
      enforced: { action: 'tag', rule: 'spf-fail-tag', reason: 'spf-fail', headers: [{ name: 'X-Postern-Verdict', value: 'tag; rule=spf-fail-tag' }] },
    });
  });
  it('no match is accept with reason default', () => {
    assert.deepEqual(decide(dataFacts({ ip: '198.51.100.1' }), rs, 'data'), { enforced: { action: 'accept', rule: '', reason: 'default' } });
  });
});

describe('mail stage (MAIL FROM)', () => {
  const rs = fixtureSet('valid/two-files', ['10-first.yaml', '20-second.yaml']);

  it('returns the reject of an SPF rule placed first', () => {
    const d = decide(mailFacts({ ip: '198.51.100.1', spf: 'fail' }), rs, 'mail');
    assert.equal(d?.enforced.action, 'reject');
    assert.equal(d?.enforced.rule, 'spf-fail-early');
    assert.deepEqual(d?.enforced.action === 'reject' && d.enforced.reply, { code: 550, enhanced: '5.7.23', text: 'SPF fail for sender.example from 198.51.100.1' });
  });
  it('a matching rule that does not refuse is left to DATA', () => {
    assert.equal(decide(mailFacts({ ip: '192.0.2.7', spf: 'fail' }), rs, 'mail'), null);
  });
  it('stops at a rule needing message facts', () => {
    // spf pass: rules 1-3 are certainly false; dmarc-reject needs DMARC → undecided.
    assert.equal(decide(mailFacts({ ip: '198.51.100.1', spf: 'pass' }), rs, 'mail'), null);
  });
  it('returns null when a data rule precedes the refusing rule', () => {
    const set = ruleSet(`rules:
  - { name: dmarc-first, match: { dmarc: fail }, action: reject }
  - { name: spf-second, match: { spf: fail }, action: reject }
`);
    assert.equal(decide(mailFacts({ spf: 'fail' }), set, 'mail'), null);
    assert.equal(decide(dataFacts({ spf: 'fail', dmarc: 'pass' }), set, 'data')?.enforced.rule, 'spf-second');
  });
  it('skips a data rule whose mail-stage conditions already fail', () => {
    const set = ruleSet(`rules:
  - { name: needs-spf-pass, match: { spf: pass, dmarc: fail }, action: accept }
  - { name: spf-reject, match: { spf: fail }, action: reject }
`);
    assert.equal(decide(mailFacts({ spf: 'fail' }), set, 'mail')?.enforced.rule, 'spf-reject');
    assert.equal(decide(mailFacts({ spf: 'pass' }), set, 'mail'), null);
  });
  it('a not: on a data fact is undecided at MAIL FROM', () => {
    const set = ruleSet(`rules:
  - { name: r, match: { spf: fail, not: { dkim: pass } }, action: reject }
`);
    assert.equal(decide(mailFacts({ spf: 'fail' }), set, 'mail'), null);
    assert.equal(decide(dataFacts({ spf: 'fail', dkim: [] }), set, 'data')?.enforced.action, 'reject');
  });
  it('returns a tempfail with the SPF temperror reply by default', () => {
    const set = ruleSet('rules:\n  - { name: spf-dns, match: { spf: temperror }, action: tempfail }\n');
    assert.deepEqual(decide(mailFacts({ spf: 'temperror' }), set, 'mail'), {
      enforced: { action: 'tempfail', rule: 'spf-dns', reason: 'spf-fail', reply: { code: 451, enhanced: '4.7.24', text: 'SPF check had a temporary DNS error, please try again later' } },
    });
  });
  it('no rule matching at MAIL FROM is null, not accept', () => {
    const set = ruleSet('rules:\n  - { name: r, match: { spf: fail }, action: reject }\n');
    assert.equal(decide(mailFacts({ spf: 'pass' }), set, 'mail'), null);
  });
  it('recipients are a data-stage fact', () => {
    const set = ruleSet('rules:\n  - { name: r, match: { recipient: rcpt.example }, action: reject }\n');
    assert.equal(decide(mailFacts(), set, 'mail'), null);
  });
});

describe('monitor mode', () => {
  it('rule level: enforced accept with the rule name, wouldHave the verdict', () => {
    const set = ruleSet(`rules:
  - { name: trial, match: { spf: fail }, action: reject, mode: monitor }
  - { name: later, match: { spf: fail }, action: quarantine }
`);
    assert.deepEqual(decide(dataFacts({ spf: 'fail' }), set, 'data'), {
      enforced: { action: 'accept', rule: 'trial', reason: 'rule', detail: 'monitor mode: would reject' },
      wouldHave: { action: 'reject', rule: 'trial', reason: 'spf-fail', reply: { code: 550, enhanced: '5.7.23', text: 'SPF check failed: sender.example does not authorize your address to send its mail' } },
    });
  });
  it('rule level: never refuses at MAIL FROM', () => {
    const set = ruleSet('rules:\n  - { name: trial, match: { spf: fail }, action: reject, mode: monitor }\n');
    assert.equal(decide(mailFacts({ spf: 'fail' }), set, 'mail'), null);
  });

  const rs = fixtureSet('valid/monitor-file', ['10-monitor.yaml', '20-enforce.yaml']);
  it('file level: every rule of the file reports only', () => {
    const d = decide(dataFacts({ spf: 'fail' }), rs, 'data');
    assert.deepEqual(d?.enforced, { action: 'accept', rule: 'would-reject-spf', reason: 'rule', detail: 'monitor mode: would reject' });
    assert.equal(d?.wouldHave?.action, 'reject');
    assert.equal(decide(mailFacts({ spf: 'fail' }), rs, 'mail'), null);
  });
  it('file level: a rule may override with mode: enforce', () => {
    const d = decide(dataFacts({ spf: 'softfail' }), rs, 'data');
    assert.equal(d?.enforced.action, 'tempfail');
    assert.equal(d?.wouldHave, undefined);
    assert.equal(decide(mailFacts({ spf: 'softfail' }), rs, 'mail')?.enforced.action, 'tempfail');
  });
  it('file level: the next file is enforced', () => {
    assert.equal(decide(dataFacts({ spf: 'neutral' }), rs, 'data')?.enforced.rule, 'after-monitor');
    assert.equal(decide(mailFacts({ spf: 'neutral' }), rs, 'mail')?.enforced.action, 'reject');
  });
});

describe('verdicts', () => {
  it('tag adds X-Postern-Verdict and the rule headers', () => {
    const set = ruleSet(`rules:
  - name: soft
    match: { spf: softfail }
    action: tag
    headers: [{ name: X-Spam-Flag, value: "YES" }]
`);
    assert.deepEqual(decide(dataFacts({ spf: 'softfail' }), set, 'data')?.enforced, {
      action: 'tag', rule: 'soft', reason: 'spf-fail',
      headers: [{ name: 'X-Postern-Verdict', value: 'tag; rule=soft' }, { name: 'X-Spam-Flag', value: 'YES' }],
    });
  });
  it('quarantine adds both headers and the mailbox', () => {
    const set = ruleSet('rules:\n  - { name: q, match: { arc: fail }, action: quarantine, mailbox: quarantine@rcpt.example }\n');
    assert.deepEqual(decide(dataFacts({ arc: 'fail' }), set, 'data')?.enforced, {
      action: 'quarantine', rule: 'q', reason: 'rule', mailbox: 'quarantine@rcpt.example',
      headers: [{ name: 'X-Postern-Quarantine', value: 'yes; rule=q' }, { name: 'X-Postern-Verdict', value: 'quarantine; rule=q' }],
    });
  });

  const defaults: Array<[string, string, object]> = [
    ['{ dmarc: fail }', 'reject', { code: 550, enhanced: '5.7.1', text: 'Rejected by DMARC policy: sender.example publishes p=quarantine and the message is not authenticated' }],
    ['{ dkim: none }', 'reject', { code: 550, enhanced: '5.7.20', text: 'No passing DKIM signature found' }],
    ['{ not: { dkim_aligned: true } }', 'reject', { code: 550, enhanced: '5.7.20', text: 'No passing DKIM signature found' }],
    ['{ tier: bad }', 'reject', { code: 550, enhanced: '5.7.1', text: 'Message rejected by policy' }],
    ['{ tier: bad }', 'tempfail', { code: 451, enhanced: '4.7.1', text: 'Message deferred by policy, please try again later' }],
    ['{ auth_temperror: true }', 'tempfail', { code: 451, enhanced: '4.7.5', text: 'Authentication checks had a temporary DNS error, please try again later' }],
  ];
  for (const [match, action, reply] of defaults) {
    it(`default reply for ${action} on ${match}`, () => {
      const facts = dataFacts({ dmarc: 'fail', dmarcPolicy: 'quarantine', dkim: [], tier: 'bad', spf: 'temperror' });
      const enforced = decide(facts, ruleSet(`rules:\n  - { name: r, match: ${match}, action: ${action} }\n`), 'data')?.enforced;
      assert.deepEqual(enforced && 'reply' in enforced ? enforced.reply : null, reply);
    });
  }
});

describe('reply templates', () => {
  const set = ruleSet(`rules:
  - name: tpl
    match: { dmarc: fail }
    action: reject
    reply: { code: 554, enhanced: 5.7.1, text: "{rule}: {from_domain} p={dmarc_policy} sender={sender_domain} spf={spf_domain} ip={ip}" }
`);
  const text = (facts: ReturnType<typeof dataFacts>): string => {
    const v = decide(facts, set, 'data')?.enforced;
    return v?.action === 'reject' ? v.reply.text : '';
  };
  it('inserts the facts', () => {
    assert.equal(text(dataFacts({ dmarc: 'fail', ip: '2001:db8::25', sender: 'b@bounce.example' })),
      'tpl: sender.example p=reject sender=bounce.example spf=bounce.example ip=2001:db8::25');
  });
  it('sanitises inserted values to printable ASCII without spaces', () => {
    assert.equal(text(dataFacts({ dmarc: 'fail', fromDomain: 'evil.example\r\n250 ok', dmarcPolicy: null, sender: '' })),
      'tpl: evil.example??250?ok p=absent sender=unknown spf=mx1.sender.example ip=192.0.2.10');
    assert.equal(text(dataFacts({ dmarc: 'fail', fromDomain: 'bücher.example' })).split(' ')[1], 'b?cher.example');
  });
  it('caps a long inserted value', () => {
    const long = `${'a'.repeat(300)}.example`;
    assert.equal(text(dataFacts({ dmarc: 'fail', fromDomain: long })).split(' ')[1], 'a'.repeat(255));
  });
});

describe('the compiled RuleSet', () => {
  it('is deep-frozen', () => {
    const rs = ruleSet('rules:\n  - { name: r, match: { spf: fail }, action: reject }\n');
    assert.ok(Object.isFrozen(rs) && Object.isFrozen(rs.rules) && Object.isFrozen(rs.rules[0]) && Object.isFrozen(rs.rules[0]?.match.conditions));
    assert.throws(() => (rs.rules as unknown[]).push({}), TypeError);
    const v = decide(dataFacts({ spf: 'fail' }), rs, 'data')?.enforced;
    assert.ok(v && Object.isFrozen(v));
  });
});
