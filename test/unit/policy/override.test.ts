/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * DMARC overrides: a verdict weaker than the policy a failing domain published is never a
 * silent pass; the decision says who was trusted (RFC 7489 PolicyOverrideType).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Facts } from '../../../src/core/facts.ts';
import { decide } from '../../../src/policy/decide.ts';
import { dataFacts } from './facts.ts';
import { ruleSet } from './rules.ts';

const failing = (policy: 'reject' | 'quarantine' | 'none'): Facts => ({
  ...dataFacts({ dmarc: 'fail', dmarcPolicy: policy, ip: '198.51.100.7', ptr: 'mx.relay.example' }),
  arc: { result: 'pass', reason: '', sealers: ['origin.example', 'lists.example'], sealerDmarc: { result: 'pass', fromDomain: 'sender.example' } },
});

const rules = ruleSet(`rules:
  - name: monitor-trial
    match: { tier: bad }
    action: reject
    mode: monitor
  - name: defer
    match: { tier: suspect }
    action: tempfail
  - name: arc-trusted
    match: { arc_sealer: lists.example, arc_dmarc: pass, recipient: arc.rcpt.example }
    action: accept
  - name: forwarder
    match: { ip: 198.51.100.0/24, recipient: fwd.rcpt.example }
    action: tag
  - name: soften
    match: { recipient: soft.rcpt.example }
    action: quarantine
  - name: not-a-forwarder
    match: { recipient: other.rcpt.example, not: { ip: 203.0.113.0/24 } }
    action: accept
`);

const to = (facts: Facts, rcpt: string): Facts => ({ ...facts, envelope: { ...facts.envelope, recipients: [rcpt] } });

describe('DMARC overrides', () => {
  it('a trusted ARC sealer: local_policy by arc, with the sealer and the chain as a report comment', () => {
    assert.deepEqual(decide(to(failing('reject'), 'a@arc.rcpt.example'), rules, 'data')?.override, {
      type: 'local_policy', by: 'arc', policy: 'reject', rule: 'arc-trusted', sealer: 'lists.example', comment: 'arc=pass as[2].d=lists.example as[1].d=origin.example',
    });
  });

  it('with the ARC-Seal selectors known, the comment names them too (RFC 8617 §7.2.2)', () => {
    const f = failing('reject');
    const facts: Facts = { ...to(f, 'a@arc.rcpt.example'), arc: { ...f.arc!, selectors: ['o1', 'arc2026'] } };
    assert.equal(decide(facts, rules, 'data')?.override?.comment, 'arc=pass as[2].d=lists.example as[2].s=arc2026 as[1].d=origin.example as[1].s=o1');
  });

  it('a rule on the client IP or name: trusted_forwarder', () => {
    assert.deepEqual(decide(to(failing('quarantine'), 'a@fwd.rcpt.example'), rules, 'data')?.override, {
      type: 'trusted_forwarder', by: 'forwarder', policy: 'quarantine', rule: 'forwarder', comment: 'rule=forwarder ip=198.51.100.7 ptr=mx.relay.example',
    });
  });

  it('an IP only under not: is no forwarder; quarantine for p=reject is an override too', () => {
    assert.equal(decide(to(failing('reject'), 'a@other.rcpt.example'), rules, 'data')?.override?.by, 'rule');
    assert.deepEqual(decide(to(failing('reject'), 'a@soft.rcpt.example'), rules, 'data')?.override, {
      type: 'local_policy', by: 'rule', policy: 'reject', rule: 'soften', comment: 'rule=soften',
    });
  });

  it('a monitor rule accepting a p=reject failure is an override, named as monitor mode', () => {
    const d = decide({ ...to(failing('reject'), 'a@x.example'), client: { ...failing('reject').client, tier: 'bad' } }, rules, 'data');
    assert.equal(d?.enforced.action, 'accept');
    assert.equal(d?.wouldHave?.action, 'reject');
    assert.deepEqual(d?.override, { type: 'local_policy', by: 'rule', policy: 'reject', rule: 'monitor-trial', comment: 'rule=monitor-trial (monitor mode)' });
  });

  it('no rule at all accepting a p=quarantine failure is an override of the default', () => {
    assert.deepEqual(decide(to(failing('quarantine'), 'a@x.example'), rules, 'data')?.override, {
      type: 'local_policy', by: 'rule', policy: 'quarantine', rule: '', comment: 'no rule matched',
    });
  });

  it('none when the verdict is as strong as the policy, the policy is none, DMARC passed, or the mail is deferred', () => {
    assert.equal(decide(to(failing('quarantine'), 'a@soft.rcpt.example'), rules, 'data')?.override, undefined);
    assert.equal(decide(to(failing('none'), 'a@arc.rcpt.example'), rules, 'data')?.override, undefined);
    assert.equal(decide(to({ ...failing('reject'), dmarc: { ...failing('reject').dmarc!, result: 'pass' } }, 'a@arc.rcpt.example'), rules, 'data')?.override, undefined);
    const deferred = decide({ ...to(failing('reject'), 'a@x.example'), client: { ...failing('reject').client, tier: 'suspect' } }, rules, 'data');
    assert.equal(deferred?.enforced.action, 'tempfail');
    assert.equal(deferred?.override, undefined);
  });
});
