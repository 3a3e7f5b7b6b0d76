/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * The decision record carries every fact a rule can match on: for every match key, facts →
 * record → JSON → facts gives the same facts and the same decision (postern replay depends
 * on it). A new match key without a case here fails the coverage test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DmarcPublished, Facts } from '../../../src/core/facts.ts';
import { decisionRecord } from '../../../src/observability/decision-record.ts';
import { decide } from '../../../src/policy/decide.ts';
import { recordedDecision } from '../../../src/policy/record-facts.ts';
import { explainDecision } from '../../../src/policy/explain.ts';
import { loadPolicies } from '../../../src/policy/load.ts';
import { SHIPPED_POLICIES } from '../../harness/gateway.ts';
import { MATCH_KEYS, type MatchKey } from '../../../src/policy/types.ts';
import { dataFacts, mailFacts } from '../policy/facts.ts';
import { oneRule } from '../policy/rules.ts';

const sealed = (facts: Facts, sealers: string[], dmarc: 'pass' | 'fail' | null): Facts => ({
  ...facts, arc: { result: 'pass', reason: 'i=2', sealers, sealerDmarc: dmarc && { result: dmarc, fromDomain: facts.message?.fromDomain ?? null } },
});

function withoutDmarc(facts: Facts): Facts {
  const { dmarc, ...rest } = facts;
  void dmarc;
  return rest;
}

/** Per key: a rule on it, facts it matches and facts it does not. */
const CASES: Record<MatchKey, { match: string; yes: Facts; no: Facts }> = {
  ip: { match: '{ ip: 192.0.2.0/24 }', yes: dataFacts({ ip: '192.0.2.9' }), no: dataFacts({ ip: '2001:db8::1' }) },
  helo: { match: '{ helo: .sender.example }', yes: dataFacts({ helo: 'mx.sender.example' }), no: dataFacts({ helo: '[192.0.2.1]' }) },
  ptr: { match: '{ ptr: .sender.example }', yes: dataFacts({ ptr: 'mx.sender.example' }), no: dataFacts({ ptr: null }) },
  sender_domain: { match: '{ sender_domain: sender.example }', yes: dataFacts({ sender: 'a@sender.example' }), no: dataFacts({ sender: '' }) },
  from_domain: { match: '{ from_domain: bank.example }', yes: dataFacts({ fromDomain: 'bank.example' }), no: dataFacts({ fromDomain: null }) },
  recipient: { match: '{ recipient: ceo@rcpt.example }', yes: dataFacts({ recipients: ['x@rcpt.example', 'ceo@rcpt.example'] }), no: dataFacts({ recipients: ['x@rcpt.example'] }) },
  spf: { match: '{ spf: softfail }', yes: dataFacts({ spf: 'softfail' }), no: dataFacts({ spf: 'pass' }) },
  dkim: { match: '{ dkim: fail }', yes: dataFacts({ dkim: [{ result: 'pass' }, { result: 'fail', domain: 'esp.example', selector: 'k2', algorithm: 'ed25519-sha256', aligned: false }] }), no: dataFacts({ dkim: [] }) },
  dkim_aligned: { match: '{ dkim_aligned: false }', yes: dataFacts({ dkim: [{ aligned: false, domain: 'esp.example' }] }), no: dataFacts() },
  dkim_domain: { match: '{ dkim_domain: esp.example }', yes: dataFacts({ dkim: [{ domain: 'esp.example', aligned: false }] }), no: dataFacts({ dkim: [{ domain: 'esp.example', result: 'neutral' }] }) },
  arc: { match: '{ arc: temperror }', yes: dataFacts({ arc: 'temperror' }), no: dataFacts({ arc: 'none' }) },
  dmarc: { match: '{ dmarc: permerror }', yes: dataFacts({ dmarc: 'permerror' }), no: withoutDmarc(dataFacts()) },
  dmarc_policy: { match: '{ dmarc_policy: absent }', yes: dataFacts({ dmarcPolicy: null }), no: dataFacts({ dmarcPolicy: 'quarantine' }) },
  tier: { match: '{ tier: suspect }', yes: dataFacts({ tier: 'suspect' }), no: dataFacts({ tier: 'trusted' }) },
  auth_temperror: { match: '{ auth_temperror: true }', yes: dataFacts({ dkim: [{ result: 'temperror' }] }), no: dataFacts() },
  first_seen_within: { match: '{ first_seen_within: 1h }', yes: dataFacts({ firstSeenSeconds: 3599 }), no: dataFacts({ firstSeenSeconds: 3600 }) },
  multiple_from: { match: '{ multiple_from: true }', yes: dataFacts({ fromFields: 2, fromAddresses: 3 }), no: dataFacts({ fromFields: 1, fromAddresses: 1 }) },
  from_count: { match: '{ from_count: 0 }', yes: dataFacts({ fromFields: 0, fromAddresses: 0 }), no: dataFacts({ fromFields: 1, fromAddresses: 1 }) },
  arc_chain: { match: '{ arc_chain: pass }', yes: sealed(dataFacts(), ['lists.example'], null), no: dataFacts({ arc: 'fail' }) },
  arc_sealer: { match: '{ arc_sealer: lists.example }', yes: sealed(dataFacts(), ['origin.example', 'lists.example'], 'pass'), no: sealed(dataFacts(), ['lists.example', 'origin.example'], 'pass') },
  arc_dmarc: { match: '{ arc_dmarc: pass }', yes: sealed(dataFacts(), ['lists.example'], 'pass'), no: sealed(dataFacts(), ['lists.example'], 'fail') },
};

function roundTrip(facts: Facts, stage: 'mail' | 'data', rule: string): ReturnType<typeof recordedDecision> {
  const decision = decide(facts, oneRule(rule), stage) ?? undefined;
  const record = decisionRecord({ facts, stage, ...(decision ? { decision } : {}), rule: 'r', action: 'accept', reason: 'rule' });
  return recordedDecision(JSON.parse(JSON.stringify({ session: 's1', time: '2026-11-23T10:00:00.000Z', ...record })));
}

describe('decision record round trip: facts → record → facts', () => {
  it('covers every match key', () => {
    assert.deepEqual(Object.keys(CASES).sort(), [...MATCH_KEYS].sort());
  });

  for (const [key, c] of Object.entries(CASES)) {
    it(`${key}: same facts and same decision, matching and not`, () => {
      for (const [facts, matches] of [[c.yes, true], [c.no, false]] as const) {
        const back = roundTrip(facts, 'data', c.match);
        assert.ok(!('skip' in back), JSON.stringify(back));
        assert.deepEqual(back.facts, facts);
        const ruleSet = oneRule(c.match);
        assert.equal(decide(facts, ruleSet, 'data')?.enforced.rule, matches ? 'r' : '', `the case itself: ${key} ${matches}`);
        assert.deepEqual(decide(back.facts, ruleSet, 'data'), decide(facts, ruleSet, 'data'));
        assert.equal(back.verdict.action, matches ? 'reject' : 'accept');
      }
    });
  }

  it('a refusal at MAIL FROM keeps the MAIL-stage facts and decides the same at MAIL FROM', () => {
    const facts = mailFacts({ spf: 'fail', ip: '2001:db8::7', helo: 'mx.x.example', ptr: null, tier: 'bad' });
    const back = roundTrip(facts, 'mail', '{ spf: fail }');
    assert.ok(!('skip' in back));
    assert.equal(back.stage, 'mail');
    assert.deepEqual(back.facts, facts);
    assert.deepEqual(back.verdict, { action: 'reject', rule: 'r' });
    assert.equal(back.session, 's1');
  });

  it('records without a verdict, of another version or malformed are refused with a reason', () => {
    const record = decisionRecord({ facts: dataFacts(), stage: 'data', rule: '', action: 'reject', reason: 'oversize' });
    assert.deepEqual(recordedDecision(JSON.parse(JSON.stringify(record))), { skip: 'no-verdict', detail: 'no policy verdict (ended with oversize)' });
    assert.equal((recordedDecision({ event: 'decision', client: {} }) as { skip: string }).skip, 'not-v1');
    const good = JSON.parse(JSON.stringify(decisionRecord({ facts: dataFacts(), stage: 'data', decision: { enforced: { action: 'accept', rule: '', reason: 'default' } }, rule: '', action: 'accept', reason: 'default' }))) as Record<string, unknown>;
    assert.deepEqual(recordedDecision({ ...good, auth: { ...(good.auth as object), spf: { ...(good.auth as { spf: object }).spf, result: 'maybe' } } }), { skip: 'malformed', detail: 'auth.spf.result: not an authentication result' });
    assert.deepEqual(recordedDecision({ ...good, client: { ...(good.client as object), tier: 'gold' } }), { skip: 'malformed', detail: 'client.tier: not a tier' });
  });

  it('the published DMARC record, the tag that applied and the ARC-Seal selectors: recorded (still v 1) and read back', async () => {
    const published: DmarcPublished = {
      domain: 'bank.example', p: 'none', sp: 'reject', np: null, adkim: 's', aspf: 'r', testing: true, psd: 'u',
      fo: '1', discovery: 'treewalk', rua: ['mailto:rua@bank.example'], ruf: [],
    };
    const base = dataFacts({ fromDomain: 'mail.bank.example', dmarc: 'fail', dmarcPolicy: 'quarantine' }); // sp=reject, t=y: quarantine
    const facts: Facts = {
      ...base,
      dmarc: { ...base.dmarc!, applied: { tag: 'sp', value: 'reject' }, published },
      arc: { result: 'pass', reason: '', sealers: ['origin.example', 'lists.example'], selectors: ['o1', 'arc1'], sealerDmarc: null },
    };
    const defaults = await loadPolicies(SHIPPED_POLICIES);
    const decision = decide(facts, defaults, 'data') ?? undefined;
    const record = JSON.parse(JSON.stringify(decisionRecord({ facts, stage: 'data', ...(decision ? { decision } : {}), rule: 'dmarc-quarantine', action: 'quarantine', reason: 'dmarc-policy' }))) as Record<string, unknown>;
    assert.equal(record.v, 1, 'additive fields keep v 1 (README: renamed or removed only with a new v)');
    const auth = record.auth as { dmarc: Record<string, unknown>; arc: Record<string, unknown> };
    assert.deepEqual(auth.dmarc.applied, { tag: 'sp', value: 'reject' });
    assert.deepEqual(auth.dmarc.published, published);
    assert.deepEqual(auth.arc.selectors, ['o1', 'arc1']);
    const back = recordedDecision(record);
    assert.ok(!('skip' in back), JSON.stringify(back));
    assert.deepEqual(back.facts, facts);
    // what the facts are needed for: a refusal names where the record was found and what it says there
    assert.equal(explainDecision(back.facts, defaults, 'data').decision?.enforced.rule, 'dmarc-quarantine');
    const refused = decide(back.facts, oneRule('{ dmarc: fail }'), 'data')?.enforced;
    assert.equal(refused?.action === 'reject' && refused.reply.text, 'Rejected by DMARC policy: bank.example publishes sp=reject and the message is not authenticated');
    const { applied, published: p, ...older } = back.facts.dmarc!;
    void applied;
    void p;
    const before = decide({ ...back.facts, dmarc: older }, oneRule('{ dmarc: fail }'), 'data')?.enforced;
    assert.equal(before?.action === 'reject' && before.reply.text, 'Rejected by DMARC policy: mail.bank.example publishes p=quarantine and the message is not authenticated', 'without them (older records) the reply guessed');
  });

  it('older v1 records without them still read; broken ones are malformed with the field named', () => {
    const facts = dataFacts();
    const record = JSON.parse(JSON.stringify(decisionRecord({ facts, stage: 'data', decision: { enforced: { action: 'accept', rule: '', reason: 'default' } }, rule: '', action: 'accept', reason: 'default' }))) as Record<string, unknown>;
    const auth = record.auth as { dmarc: Record<string, unknown> };
    assert.equal(auth.dmarc.published, undefined);
    assert.ok(!('skip' in recordedDecision(record)));
    const withDmarc = (dmarc: Record<string, unknown>): unknown => ({ ...record, auth: { ...auth, dmarc: { ...auth.dmarc, ...dmarc } } });
    assert.deepEqual(recordedDecision(withDmarc({ applied: { tag: 'x', value: 'reject' } })), { skip: 'malformed', detail: 'auth.dmarc.applied.tag: expected one of p, sp, np' });
    assert.deepEqual(recordedDecision(withDmarc({ published: { domain: 'a.example', p: 'maybe' } })), { skip: 'malformed', detail: 'auth.dmarc.published.p: not a DMARC policy' });
  });

  it('carries the override and the monitor verdict', () => {
    const facts = sealed(dataFacts({ dmarc: 'fail', dmarcPolicy: 'reject' }), ['lists.example'], 'pass');
    const decision = decide(facts, oneRule('{ arc_sealer: lists.example }', 'accept'), 'data');
    assert.deepEqual(decision?.override, { type: 'local_policy', by: 'arc', policy: 'reject', rule: 'r', sealer: 'lists.example', comment: 'arc=pass as[1].d=lists.example' });
    const record = decisionRecord({ facts, stage: 'data', decision: decision, rule: 'r', action: 'accept', reason: 'rule' });
    assert.equal(record.v, 1);
    assert.deepEqual(record.override, decision?.override);
    assert.deepEqual(record.auth.arc, { result: 'pass', reason: 'i=2', sealers: ['lists.example'], sealer_dmarc: { result: 'pass', from_domain: 'sender.example' } });
  });
});
