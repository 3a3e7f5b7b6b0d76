/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/** explain: the same walk as decide (checked over a grid of facts), and the reasons it gives. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthResult, DmarcPolicy } from '../../../src/core/facts.ts';
import { explainDecision, whyNot } from '../../../src/policy/explain.ts';
import { explanationText } from '../../../src/policy/cli/explain.ts';
import { factLine } from '../../../src/policy/fact-view.ts';
import { dataFacts, mailFacts } from './facts.ts';
import { ruleSet } from './rules.ts';

const rules = ruleSet(`rules:
  - name: early-spf
    match: { spf: fail, not: { ip: 192.0.2.0/24 } }
    action: reject
  - name: retry
    match: { auth_temperror: true, first_seen_within: 1h, not: { dmarc: pass } }
    action: tempfail
  - name: trial
    match: { dmarc: fail, dmarc_policy: none, tier: [bad, suspect] }
    action: quarantine
    mode: monitor
  - name: dmarc-reject
    match: { dmarc: fail, dmarc_policy: reject }
    action: reject
  - name: tag-softfail
    match: { spf: softfail }
    action: tag
`);

describe('explain', () => {
  it('ends at the rule decide() picks, at DATA and at MAIL FROM, over a grid of facts', () => {
    const spf: AuthResult[] = ['pass', 'fail', 'softfail', 'temperror'];
    const dmarc: AuthResult[] = ['pass', 'fail', 'temperror', 'none'];
    const policies: Array<DmarcPolicy | null> = ['reject', 'none', null];
    let checked = 0;
    for (const s of spf) for (const d of dmarc) for (const p of policies) for (const ip of ['192.0.2.5', '198.51.100.5']) for (const tier of ['bad', 'neutral'] as const) {
      const facts = dataFacts({ spf: s, dmarc: d, dmarcPolicy: p, ip, tier, firstSeenSeconds: 60 });
      const e = explainDecision(facts, rules, 'data');
      const last = e.rules.at(-1);
      const rule = last?.matched === 'yes' ? last.rule.name : '';
      assert.equal(e.decision?.enforced.rule, rule, `${s} ${d} ${p} ${ip} ${tier}`);
      assert.ok(e.rules.slice(0, -1).every((t) => t.matched === 'no'));
      const atMail = explainDecision(mailFacts({ spf: s, ip, tier }), rules, 'mail');
      const lastMail = atMail.rules.at(-1);
      if (atMail.decision) assert.equal(atMail.decision.enforced.rule, lastMail?.rule.name);
      else assert.ok(lastMail?.matched === 'unknown' || (lastMail?.matched === 'yes' && lastMail.rule.action !== 'reject'));
      checked++;
    }
    assert.equal(checked, 192);
  });

  it('names every key that failed, the fact it saw, and a not: that matched', () => {
    const e = explainDecision(dataFacts({ spf: 'fail', ip: '192.0.2.9', dmarc: 'fail', dmarcPolicy: 'quarantine' }), rules, 'data');
    assert.deepEqual(e.rules.map((t) => [t.rule.name, t.matched]), [['early-spf', 'no'], ['retry', 'no'], ['trial', 'no'], ['dmarc-reject', 'no'], ['tag-softfail', 'no']]);
    assert.equal(whyNot(e.rules[0]!), 'not: ip matched (192.0.2.9)');
    assert.equal(whyNot(e.rules[1]!), 'auth_temperror did not match (false)');
    assert.equal(whyNot(e.rules[2]!), 'tier did not match (neutral); dmarc_policy did not match (quarantine)');
    assert.equal(e.decision?.enforced.rule, '');
  });

  it('at MAIL FROM a rule on message facts is unknown: the walk stops, the decision waits for DATA', () => {
    const e = explainDecision(mailFacts({ spf: 'pass' }), rules, 'mail');
    assert.equal(e.rules.at(-1)?.rule.name, 'retry');
    assert.equal(e.rules.at(-1)?.matched, 'unknown');
    assert.equal(whyNot(e.rules.at(-1)!), 'needs the message (decided at end of DATA)');
    assert.equal(e.decision, null);
  });

  it('the text: a rule that needs the message is "not known yet" at MAIL FROM, not "no"', () => {
    const text = explanationText(explainDecision(mailFacts({ spf: 'pass' }), rules, 'mail'), rules);
    assert.match(text, /^ {2}2\. retry → tempfail {2}\S+:\d+\n {5}not known yet: needs the message \(decided at end of DATA\)$/m);
    assert.doesNotMatch(text, /no: needs the message/);
  });

  it('a fact that is none is shown once in parentheses, never "((none))"', () => {
    const sealerRules = ruleSet('rules:\n  - name: sealer\n    match: { arc_sealer: lists.example, dkim_domain: esp.example }\n    action: accept\n');
    const e = explainDecision(dataFacts({ dkim: [] }), sealerRules, 'data');
    assert.equal(whyNot(e.rules[0]!), 'dkim_domain did not match (none); arc_sealer did not match (none)');
    const text = explanationText(e, sealerRules);
    assert.doesNotMatch(text, /\(\(/);
    const matched = explanationText(explainDecision(dataFacts(), ruleSet('rules:\n  - name: r\n    match: { not: { arc_sealer: lists.example } }\n    action: tag\n'), 'data'), sealerRules);
    assert.match(matched, /MATCH: not arc_sealer \(none\)$/m);
  });

  it('shows the facts with the names of the match keys', () => {
    const line = factLine(explainDecision(dataFacts({ dmarc: 'fail' }), rules, 'data').view);
    assert.match(line, /^ip=192\.0\.2\.10 helo=mx1\.sender\.example ptr=mx1\.sender\.example sender=alice@sender\.example sender_domain=sender\.example spf=pass tier=neutral recipient=bob@rcpt\.example from_domain=sender\.example dkim=pass dkim_domain=sender\.example dkim_aligned=true arc=none arc_chain=none arc_dmarc=none dmarc=fail dmarc_policy=reject auth_temperror=false multiple_from=false first_seen=0$/);
  });
});
