/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * Every match key, true and false: one rule `r` (reject) per case, decided at DATA; the rule
 * matched when the enforced action is reject, else the default accept applies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Facts } from '../../../src/core/facts.ts';
import { decide } from '../../../src/policy/decide.ts';
import { dataFacts } from './facts.ts';
import { oneRule } from './rules.ts';

/** The facts with ARC facts replaced (a validated chain with its sealers, or a broken one). */
function withArc(facts: Facts, arc: NonNullable<Facts['arc']> extends infer A ? Omit<A, 'reason'> : never): Facts {
  return { ...facts, arc: { reason: '', ...arc } };
}

interface Case { readonly match: string; readonly facts: Facts; readonly matches: boolean; readonly why: string }

const CASES: Record<string, readonly Case[]> = {
  ip: [
    { match: '{ ip: 192.0.2.0/24 }', facts: dataFacts({ ip: '192.0.2.10' }), matches: true, why: 'v4 inside CIDR' },
    { match: '{ ip: 192.0.2.0/24 }', facts: dataFacts({ ip: '198.51.100.1' }), matches: false, why: 'v4 outside CIDR' },
    { match: '{ ip: 192.0.2.10 }', facts: dataFacts({ ip: '192.0.2.10' }), matches: true, why: 'exact v4' },
    { match: '{ ip: 192.0.2.10 }', facts: dataFacts({ ip: '192.0.2.11' }), matches: false, why: 'other v4' },
    { match: '{ ip: "2001:db8::/32" }', facts: dataFacts({ ip: '2001:db8:ff::5' }), matches: true, why: 'v6 inside CIDR' },
    { match: '{ ip: "2001:db8::/32" }', facts: dataFacts({ ip: '2001:db9::1' }), matches: false, why: 'v6 outside CIDR' },
    { match: '{ ip: "2001:DB8:0:0::1" }', facts: dataFacts({ ip: '2001:db8::1' }), matches: true, why: 'exact v6, other spelling' },
    { match: '{ ip: 192.0.2.0/24 }', facts: dataFacts({ ip: '::ffff:192.0.2.10' }), matches: true, why: 'mapped client, v4 CIDR' },
    { match: '{ ip: "::ffff:192.0.2.0/120" }', facts: dataFacts({ ip: '192.0.2.10' }), matches: true, why: 'mapped CIDR, v4 client' },
    { match: '{ ip: "::ffff:192.0.2.0/120" }', facts: dataFacts({ ip: '192.0.3.1' }), matches: false, why: 'mapped CIDR, v4 client outside' },
    { match: '{ ip: 0.0.0.0/0 }', facts: dataFacts({ ip: '2001:db8::1' }), matches: false, why: 'v4 range never matches v6' },
    { match: '{ ip: "::/0" }', facts: dataFacts({ ip: '2001:db8::1' }), matches: true, why: 'any v6' },
    { match: '{ ip: [198.51.100.0/24, 192.0.2.10] }', facts: dataFacts({ ip: '192.0.2.10' }), matches: true, why: 'list is any of' },
    { match: '{ ip: 192.0.2.0/24 }', facts: dataFacts({ ip: 'not-an-ip' }), matches: false, why: 'unparsable client IP' },
  ],
  helo: [
    { match: '{ helo: mx1.sender.example }', facts: dataFacts({ helo: 'MX1.Sender.Example' }), matches: true, why: 'exact, case-insensitive' },
    { match: '{ helo: .sender.example }', facts: dataFacts({ helo: 'mx1.sender.example' }), matches: true, why: 'subdomain' },
    { match: '{ helo: "[192.0.2.1]" }', facts: dataFacts({ helo: '[192.0.2.1]' }), matches: true, why: 'address literal' },
    { match: '{ helo: mx1.sender.example }', facts: dataFacts({ helo: 'mx2.sender.example' }), matches: false, why: 'other name' },
  ],
  ptr: [
    { match: '{ ptr: .sender.example }', facts: dataFacts({ ptr: 'mx1.sender.example' }), matches: true, why: 'subdomain' },
    { match: '{ ptr: .sender.example }', facts: dataFacts({ ptr: 'sender.example' }), matches: false, why: 'suffix pattern excludes the apex' },
    { match: '{ ptr: .sender.example }', facts: dataFacts({ ptr: 'mx1.othersender.example' }), matches: false, why: 'label boundary' },
    { match: '{ ptr: .sender.example }', facts: dataFacts({ ptr: null }), matches: false, why: 'no reverse name' },
  ],
  sender_domain: [
    { match: '{ sender_domain: sender.example }', facts: dataFacts({ sender: 'a@sender.example' }), matches: true, why: 'exact' },
    { match: '{ sender_domain: "*.example" }', facts: dataFacts({ sender: 'a@sender.example' }), matches: true, why: '*. suffix' },
    { match: '{ sender_domain: SENDER.EXAMPLE }', facts: dataFacts({ sender: 'a@sender.example' }), matches: true, why: 'pattern case-folded' },
    { match: '{ sender_domain: sender.example }', facts: dataFacts({ sender: 'a@bounce.sender.example' }), matches: false, why: 'exact excludes subdomains' },
    { match: '{ sender_domain: sender.example }', facts: dataFacts({ sender: '' }), matches: false, why: 'null reverse-path' },
  ],
  from_domain: [
    { match: '{ from_domain: sender.example }', facts: dataFacts({ fromDomain: 'sender.example' }), matches: true, why: 'exact' },
    { match: '{ from_domain: "*.sender.example" }', facts: dataFacts({ fromDomain: 'sender.example' }), matches: false, why: 'apex is not a subdomain' },
    { match: '{ from_domain: "*.sender.example" }', facts: dataFacts({ fromDomain: 'news.sender.example' }), matches: true, why: 'subdomain' },
    { match: '{ from_domain: sender.example }', facts: dataFacts({ fromDomain: null }), matches: false, why: 'no From domain' },
    { match: '{ from_domain: file:lists/partners.txt }', facts: dataFacts({ fromDomain: 'partner.example' }), matches: true, why: 'list file, exact line' },
    { match: '{ from_domain: file:lists/partners.txt }', facts: dataFacts({ fromDomain: 'a.sub.partner.example' }), matches: true, why: 'list file, suffix line' },
    { match: '{ from_domain: file:lists/partners.txt }', facts: dataFacts({ fromDomain: 'x.wild.example' }), matches: true, why: 'list file, *. line' },
    { match: '{ from_domain: file:lists/partners.txt }', facts: dataFacts({ fromDomain: 'x.partner.example' }), matches: false, why: 'list file, not listed' },
    { match: '{ from_domain: bücher.example }', facts: dataFacts({ fromDomain: 'xn--bcher-kva.example' }), matches: true, why: 'IDN pattern vs A-label' },
  ],
  recipient: [
    { match: '{ recipient: bob@rcpt.example }', facts: dataFacts({ recipients: ['BOB@Rcpt.Example'] }), matches: true, why: 'address, case-insensitive' },
    { match: '{ recipient: bob@rcpt.example }', facts: dataFacts({ recipients: ['carol@rcpt.example'] }), matches: false, why: 'other address' },
    { match: '{ recipient: rcpt.example }', facts: dataFacts({ recipients: ['x@other.example', 'carol@rcpt.example'] }), matches: true, why: 'domain, any recipient' },
    { match: '{ recipient: file:lists/recipients.txt }', facts: dataFacts({ recipients: ['a@team.vip.example'] }), matches: true, why: 'list: subdomain line' },
    { match: '{ recipient: file:lists/recipients.txt }', facts: dataFacts({ recipients: ['cfo@rcpt.example'] }), matches: false, why: 'list: not listed' },
  ],
  spf: [
    { match: '{ spf: fail }', facts: dataFacts({ spf: 'fail' }), matches: true, why: 'same result' },
    { match: '{ spf: fail }', facts: dataFacts({ spf: 'softfail' }), matches: false, why: 'other result' },
    { match: '{ spf: [fail, softfail] }', facts: dataFacts({ spf: 'softfail' }), matches: true, why: 'any of a list' },
  ],
  dkim: [
    { match: '{ dkim: pass }', facts: dataFacts({ dkim: [{ result: 'fail' }, { result: 'pass', domain: 'esp.example' }] }), matches: true, why: 'one signature passed' },
    { match: '{ dkim: pass }', facts: dataFacts({ dkim: [{ result: 'fail' }] }), matches: false, why: 'none passed' },
    { match: '{ dkim: none }', facts: dataFacts({ dkim: [] }), matches: true, why: 'no signature' },
    { match: '{ dkim: none }', facts: dataFacts(), matches: false, why: 'a signature exists' },
    { match: '{ dkim: temperror }', facts: dataFacts({ dkim: [{ result: 'temperror' }] }), matches: true, why: 'temperror signature' },
  ],
  dkim_aligned: [
    { match: '{ dkim_aligned: true }', facts: dataFacts(), matches: true, why: 'aligned pass' },
    { match: '{ dkim_aligned: true }', facts: dataFacts({ dkim: [{ domain: 'esp.example', aligned: false }] }), matches: false, why: 'pass, not aligned' },
    { match: '{ dkim_aligned: false }', facts: dataFacts({ dkim: [{ result: 'fail', aligned: true }] }), matches: true, why: 'aligned but failed' },
    { match: '{ dkim_aligned: false }', facts: dataFacts(), matches: false, why: 'aligned pass exists' },
  ],
  dkim_domain: [
    { match: '{ dkim_domain: .esp.example }', facts: dataFacts({ dkim: [{ domain: 'mail.esp.example', aligned: false }] }), matches: true, why: 'passing d= subdomain' },
    { match: '{ dkim_domain: .esp.example }', facts: dataFacts({ dkim: [{ result: 'fail', domain: 'mail.esp.example' }] }), matches: false, why: 'signature did not pass' },
  ],
  arc: [
    { match: '{ arc: fail }', facts: dataFacts({ arc: 'fail' }), matches: true, why: 'same result' },
    { match: '{ arc: fail }', facts: dataFacts({ arc: 'pass' }), matches: false, why: 'other result' },
    { match: '{ arc: none }', facts: { ...dataFacts(), arc: undefined }, matches: true, why: 'no ARC facts is none' },
  ],
  dmarc: [
    { match: '{ dmarc: fail }', facts: dataFacts({ dmarc: 'fail' }), matches: true, why: 'same result' },
    { match: '{ dmarc: fail }', facts: dataFacts({ dmarc: 'pass' }), matches: false, why: 'other result' },
  ],
  dmarc_policy: [
    { match: '{ dmarc_policy: quarantine }', facts: dataFacts({ dmarcPolicy: 'quarantine' }), matches: true, why: 'same policy' },
    { match: '{ dmarc_policy: quarantine }', facts: dataFacts({ dmarcPolicy: 'reject' }), matches: false, why: 'other policy' },
    { match: '{ dmarc_policy: absent }', facts: dataFacts({ dmarcPolicy: null }), matches: true, why: 'no record' },
    { match: '{ dmarc_policy: absent }', facts: dataFacts({ dmarcPolicy: 'none' }), matches: false, why: 'p=none is a record' },
  ],
  tier: [
    { match: '{ tier: [bad, suspect] }', facts: dataFacts({ tier: 'bad' }), matches: true, why: 'listed tier' },
    { match: '{ tier: [bad, suspect] }', facts: dataFacts({ tier: 'neutral' }), matches: false, why: 'other tier' },
  ],
  auth_temperror: [
    { match: '{ auth_temperror: true }', facts: dataFacts({ spf: 'temperror' }), matches: true, why: 'SPF temperror' },
    { match: '{ auth_temperror: true }', facts: dataFacts({ dkim: [{ result: 'temperror' }] }), matches: true, why: 'DKIM temperror' },
    { match: '{ auth_temperror: true }', facts: dataFacts({ arc: 'temperror' }), matches: true, why: 'ARC temperror' },
    { match: '{ auth_temperror: true }', facts: dataFacts({ dmarc: 'temperror' }), matches: true, why: 'DMARC temperror' },
    { match: '{ auth_temperror: true }', facts: dataFacts({ spf: 'permerror' }), matches: false, why: 'permerror is not temporary' },
    { match: '{ auth_temperror: false }', facts: dataFacts(), matches: true, why: 'false means none' },
  ],
  first_seen_within: [
    { match: '{ first_seen_within: 30m }', facts: dataFacts({ firstSeenSeconds: 1799 }), matches: true, why: 'inside the window' },
    { match: '{ first_seen_within: 30m }', facts: dataFacts({ firstSeenSeconds: 1800 }), matches: false, why: 'window is exclusive' },
    { match: '{ first_seen_within: 1h30m }', facts: dataFacts({ firstSeenSeconds: 5399 }), matches: true, why: 'compound duration' },
  ],
  multiple_from: [
    { match: '{ multiple_from: true }', facts: dataFacts({ fromFields: 2, fromAddresses: 2 }), matches: true, why: 'two From fields' },
    { match: '{ multiple_from: true }', facts: dataFacts({ fromFields: 1, fromAddresses: 2 }), matches: true, why: 'two authors in one From' },
    { match: '{ multiple_from: true }', facts: dataFacts({ fromFields: 1, fromAddresses: 1 }), matches: false, why: 'one From, one author' },
    { match: '{ multiple_from: true }', facts: dataFacts(), matches: false, why: 'not counted: not multiple' },
    { match: '{ multiple_from: false }', facts: dataFacts({ fromFields: 1, fromAddresses: 1 }), matches: true, why: 'false means a single author' },
  ],
  from_count: [
    { match: '{ from_count: 0 }', facts: dataFacts({ fromFields: 0, fromAddresses: 0 }), matches: true, why: 'no From field' },
    { match: '{ from_count: 0 }', facts: dataFacts({ fromFields: 1, fromAddresses: 0 }), matches: false, why: 'a From without an author is one field' },
    { match: '{ from_count: 0 }', facts: dataFacts(), matches: false, why: 'not counted (authentication abandoned) is not zero' },
    { match: '{ from_count: ">1" }', facts: dataFacts({ fromFields: 2, fromAddresses: 2 }), matches: true, why: 'comparison' },
    { match: '{ from_count: ">1" }', facts: dataFacts({ fromFields: 1, fromAddresses: 2 }), matches: false, why: 'counts fields, not authors' },
    { match: '{ from_count: ">= 2" }', facts: dataFacts({ fromFields: 2, fromAddresses: 2 }), matches: true, why: 'spaces allowed' },
    { match: '{ from_count: "<1" }', facts: dataFacts({ fromFields: 0, fromAddresses: 0 }), matches: true, why: 'less than' },
    { match: '{ from_count: "<=1" }', facts: dataFacts({ fromFields: 2, fromAddresses: 2 }), matches: false, why: 'at most' },
    { match: '{ from_count: "=1" }', facts: dataFacts({ fromFields: 1, fromAddresses: 1 }), matches: true, why: 'explicit equals' },
    { match: '{ from_count: [0, ">1"] }', facts: dataFacts({ fromFields: 3, fromAddresses: 3 }), matches: true, why: 'a list: any of them' },
    { match: '{ from_count: [0, ">1"] }', facts: dataFacts({ fromFields: 1, fromAddresses: 1 }), matches: false, why: 'a list: none of them' },
    { match: '{ not: { from_count: 1 } }', facts: dataFacts({ fromFields: 0, fromAddresses: 0 }), matches: true, why: 'not exactly one' },
  ],
  arc_chain: [
    { match: '{ arc_chain: pass }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'] }), matches: true, why: 'validated chain' },
    { match: '{ arc_chain: fail }', facts: dataFacts({ arc: 'fail' }), matches: true, why: 'broken chain' },
    { match: '{ arc_chain: fail }', facts: dataFacts({ arc: 'temperror' }), matches: true, why: 'a temperror is a chain that did not validate' },
    { match: '{ arc_chain: none }', facts: dataFacts({ arc: 'none' }), matches: true, why: 'no ARC headers' },
    { match: '{ arc_chain: none }', facts: { ...dataFacts(), arc: undefined }, matches: true, why: 'no ARC facts' },
    { match: '{ arc_chain: pass }', facts: dataFacts({ arc: 'fail' }), matches: false, why: 'fail is not pass' },
  ],
  arc_sealer: [
    { match: '{ arc_sealer: lists.example }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['origin.example', 'lists.example'] }), matches: true, why: 'newest sealer' },
    { match: '{ arc_sealer: origin.example }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['origin.example', 'lists.example'] }), matches: false, why: 'an older sealer does not count' },
    { match: '{ arc_sealer: .example }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'] }), matches: true, why: 'suffix pattern' },
    { match: '{ arc_sealer: lists.example }', facts: withArc(dataFacts(), { result: 'fail', sealers: ['lists.example'] }), matches: false, why: 'the sealer of a broken chain is not authenticated' },
    { match: '{ arc_sealer: file:lists/partners.txt }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['partner.example'] }), matches: true, why: 'list file' },
  ],
  arc_dmarc: [
    { match: '{ arc_dmarc: pass }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'], sealerDmarc: { result: 'pass', fromDomain: 'sender.example' } }), matches: true, why: 'sealer saw DMARC pass for this From' },
    { match: '{ arc_dmarc: pass }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'], sealerDmarc: { result: 'pass', fromDomain: 'other.example' } }), matches: false, why: 'for another From domain' },
    { match: '{ arc_dmarc: pass }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'], sealerDmarc: { result: 'pass', fromDomain: null } }), matches: false, why: 'for no named From domain' },
    { match: '{ arc_dmarc: pass }', facts: withArc(dataFacts(), { result: 'fail', sealers: ['lists.example'], sealerDmarc: { result: 'pass', fromDomain: 'sender.example' } }), matches: false, why: 'chain did not validate' },
    { match: '{ arc_dmarc: none }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'], sealerDmarc: null }), matches: true, why: 'AAR without dmarc=' },
    { match: '{ arc_dmarc: fail }', facts: withArc(dataFacts(), { result: 'pass', sealers: ['lists.example'], sealerDmarc: { result: 'fail', fromDomain: 'sender.example' } }), matches: true, why: 'sealer saw DMARC fail' },
  ],
  not: [
    { match: '{ not: { spf: pass } }', facts: dataFacts({ spf: 'pass' }), matches: false, why: 'negated match holds' },
    { match: '{ not: { spf: pass } }', facts: dataFacts({ spf: 'fail' }), matches: true, why: 'negated match fails' },
    { match: '{ spf: fail, not: { ip: 192.0.2.0/24 } }', facts: dataFacts({ spf: 'fail', ip: '192.0.2.9' }), matches: false, why: 'AND with not' },
    { match: '{ not: { spf: fail, ip: 192.0.2.0/24 } }', facts: dataFacts({ spf: 'fail', ip: '198.51.100.9' }), matches: true, why: 'not of an AND' },
  ],
  all: [
    { match: '{ spf: fail, dmarc: fail }', facts: dataFacts({ spf: 'fail', dmarc: 'pass' }), matches: false, why: 'all keys must match' },
    { match: '{}', facts: dataFacts(), matches: true, why: 'empty match is a catch-all' },
    { match: '', facts: dataFacts(), matches: true, why: 'null match is a catch-all' },
  ],
};

describe('match keys (decided at DATA)', () => {
  for (const [key, cases] of Object.entries(CASES)) {
    describe(key, () => {
      for (const c of cases) {
        it(`${c.why}: ${c.match || '(empty)'} → ${c.matches ? 'match' : 'no match'}`, () => {
          const decision = decide(c.facts, oneRule(c.match), 'data');
          assert.equal(decision?.enforced.action, c.matches ? 'reject' : 'accept');
          assert.equal(decision?.enforced.rule, c.matches ? 'r' : '');
        });
      }
    });
  }
});
