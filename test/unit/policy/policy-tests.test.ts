/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * Policy test files (*.test.yaml): cases pass and fail with file:line, problems in the files
 * are located, contradictory facts are refused; the shipped defaults, the samples and the
 * tightening recipe (monitor, then enforced) pass their own tests.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decide } from '../../../src/policy/decide.ts';
import { loadPolicies } from '../../../src/policy/load.ts';
import { runPolicyTests } from '../../../src/policy/testing/cases.ts';
import { caseFacts } from '../../../src/policy/testing/case-facts.ts';
import { testFolder, testReport, testsOk } from '../../../src/policy/testing/run-folder.ts';
import type { RuleSet } from '../../../src/policy/types.ts';

const SHIPPED = path.resolve(import.meta.dirname, '../../../policies');

/** A copy of the shipped folder with some samples renamed into place, as the README says to. */
function folderWith(samples: string[], edit: (dir: string) => void = () => undefined): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-policy-tests-'));
  fs.cpSync(SHIPPED, dir, { recursive: true });
  for (const s of samples) fs.copyFileSync(path.join(dir, `${s}.sample`), path.join(dir, s));
  edit(dir);
  return dir;
}

describe('policy test files', () => {
  let defaults: RuleSet;
  const dirs: string[] = [];
  before(async () => {
    defaults = await loadPolicies(SHIPPED);
  });
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a passing and a failing case: the failure names file:line, what was expected, what happened and why', () => {
    const text = [
      '- name: refused',
      '  facts: { from_domain: bank.example, dmarc: fail, dmarc_policy: reject }',
      '  expect: { action: reject, rule: dmarc-reject }',
      '',
      '- name: wrongly expected',
      '  facts: { from_domain: bank.example, dmarc: fail, dmarc_policy: none }',
      '  expect: { action: reject, rule: dmarc-reject }',
      '- name: shadowed',
      '  facts: { dmarc: fail, dmarc_policy: reject, spf: temperror }',
      '  expect: { action: reject, rule: dmarc-reject }',
    ].join('\n');
    const run = runPolicyTests([{ path: 'x.test.yaml', text }], defaults);
    assert.deepEqual(run.errors, []);
    assert.deepEqual(run.outcomes.map((o) => [o.line, o.name, o.failure]), [
      [1, 'refused', ''],
      [5, 'wrongly expected', 'expected reject (rule dmarc-reject), got accept (no rule matched); dmarc-reject: dmarc_policy did not match (none)'],
      [8, 'shadowed', 'expected reject (rule dmarc-reject), got tempfail (rule auth-temperror-retry); dmarc-reject matches, but auth-temperror-retry comes first'],
    ]);
  });

  it('reason, would_have and override expectations are checked too', () => {
    const text = [
      '- name: c',
      '  facts: { dmarc: fail, dmarc_policy: quarantine }',
      '  expect: { action: quarantine, reason: rule, would_have: reject, override: arc }',
    ].join('\n');
    const [o] = runPolicyTests([{ path: 't.test.yaml', text }], defaults).outcomes;
    assert.equal(o?.failure, 'expected reason rule, got dmarc-policy; expected would_have reject, got none; expected override arc, got none');
  });

  it('a would_have with a rule names it; one without prints the bare action, never "(no rule matched)"', () => {
    const text = [
      '- name: with rule',
      '  facts: { dmarc: fail, dmarc_policy: quarantine }',
      '  expect: { action: quarantine, would_have: { action: reject, rule: r1 } }',
      '- name: rule ""',
      '  facts: { dmarc: fail, dmarc_policy: quarantine }',
      '  expect: { action: accept, rule: "" }',
    ].join('\n');
    const run = runPolicyTests([{ path: 't.test.yaml', text }], defaults);
    assert.deepEqual(run.outcomes.map((o) => o.failure), [
      'expected would_have reject (rule r1), got none',
      'expected accept (no rule matched), got quarantine (rule dmarc-quarantine)',
    ]);
  });

  it('an empty or comments-only test file: a warning, 0 cases, not an error', async () => {
    const run = runPolicyTests([
      { path: 'empty.test.yaml', text: '' },
      { path: 'comments.test.yaml', text: '# yaml-language-server: $schema=./policy-test.schema.json\n# cases to come\n' },
      { path: 'list.test.yaml', text: '[]\n' },
    ], defaults);
    assert.deepEqual(run.errors, []);
    assert.deepEqual(run.outcomes, []);
    assert.deepEqual(run.warnings.map((w) => w.message), [
      'empty.test.yaml: no test cases in this file (empty or comments only)',
      'comments.test.yaml: no test cases in this file (empty or comments only)',
      'list.test.yaml: no test cases in this file (empty or comments only)',
    ]);
    const dir = folderWith([], (d) => fs.writeFileSync(path.join(d, '10-todo.test.yaml'), '# nothing yet\n'));
    dirs.push(dir);
    const t = await testFolder(dir, defaults);
    assert.ok(testsOk(t));
    assert.match(testReport(t), /^.*10-todo\.test\.yaml: warning: no test cases in this file \(empty or comments only\)\n/);
    assert.match(testReport(t), /^policy tests: 2 file\(s\), \d+ case\(s\), \d+ passed, 0 failed, 1 warning\(s\)$/m);
  });

  it('first_seen_within as a fact suggests first_seen (and first_seen in a rule suggests first_seen_within)', async () => {
    const run = runPolicyTests([{ path: 'a.test.yaml', text: '- name: x\n  facts: { first_seen_within: 4h }\n  expect: { action: accept }\n' }], defaults);
    assert.match(run.errors[0]?.message ?? '', /^a\.test\.yaml:2:12: \[0\]\.facts\.first_seen_within: unknown key "first_seen_within"; did you mean "first_seen"\?/);
    const dir = folderWith([], (d) => fs.writeFileSync(path.join(d, '10-x.yaml'), 'rules:\n  - name: r\n    match: { first_seen: 1h }\n    action: tempfail\n'));
    dirs.push(dir);
    await assert.rejects(loadPolicies(dir), /10-x\.yaml:3:14: rules\[0\]\.match\.first_seen: unknown key "first_seen"; did you mean "first_seen_within"\?/);
  });

  it('problems in a test file are located: syntax, unknown keys (with a suggestion), contradictory facts, not a list', () => {
    const run = runPolicyTests([
      { path: 'a.test.yaml', text: '- name: x\n  facts: { dmarc_polcy: none }\n  expect: { action: accept }\n- name: y\n  facts: { dkim: fail, dkim_aligned: true }\n  expect: { action: accept }\n- name: z\n  expect: { action: maybe }\n' },
      { path: 'b.test.yaml', text: 'name: not a list\n' },
      { path: 'c.test.yaml', text: '- name: [unclosed\n' },
      { path: 'd.test.yaml', text: '- name: w\n  facts: { auth_temperror: true, ip: 10.0.0.1 }\n  expect: { action: accept }\n' },
    ], defaults);
    const messages = run.errors.map((e) => e.message);
    assert.equal(messages[0], 'a.test.yaml:2:12: [0].facts.dmarc_polcy: unknown key "dmarc_polcy"; did you mean "dmarc_policy"? (allowed: ip, helo, ptr, tier, sender, sender_domain, from_domain, recipient, spf, dkim, dkim_domain, dkim_aligned, arc, arc_chain, arc_sealer, arc_dmarc, dmarc, dmarc_policy, auth_temperror, multiple_from, from_count, first_seen, tls, size)');
    assert.equal(messages[1], 'a.test.yaml:5:10: [1].facts: case "y": dkim_aligned: contradicts the other facts given (dkim_aligned did not match (false))');
    assert.match(messages[2] ?? '', /^a\.test\.yaml:8:21: \[2\]\.expect\.action: expected one of accept, tag/);
    assert.equal(messages[3], 'b.test.yaml:1:1: a policy test file is a list of cases { name, facts, expect }');
    assert.match(messages[4] ?? '', /^c\.test\.yaml:\d+:\d+: YAML syntax error/);
    assert.equal(messages[5], 'd.test.yaml:2:10: [0].facts: case "w": auth_temperror: contradicts the other facts given (auth_temperror did not match (false))');
    assert.equal(run.outcomes.length, 0);
  });

  it('facts left out are the plainest: nothing authenticated, nothing published, a neutral client', () => {
    const f = caseFacts({});
    assert.deepEqual([f.spf.result, f.dkim, f.arc?.result, f.dmarc, f.client.tier, f.message?.firstSeenSeconds], ['none', [], 'none', undefined, 'neutral', 0]);
    const sealed = caseFacts({ from_domain: 'a.example', arc_sealer: ['one.example', 'two.example'], arc_dmarc: 'pass', first_seen: '1h30m' });
    assert.deepEqual(sealed.arc, { result: 'pass', reason: '', sealers: ['one.example', 'two.example'], sealerDmarc: { result: 'pass', fromDomain: 'a.example' } });
    assert.equal(sealed.message?.firstSeenSeconds, 5400);
  });

  it('the shipped policies/00-defaults.test.yaml passes against the shipped defaults', async () => {
    const t = await testFolder(SHIPPED, defaults);
    assert.deepEqual(t.errors.map((e) => e.message), []);
    assert.deepEqual(t.files.map((f) => path.basename(f)), ['00-defaults.test.yaml']);
    assert.ok(t.passed >= 9, `${t.passed} cases`);
    assert.equal(t.failed, 0, t.outcomes.filter((o) => o.failure).map((o) => `${o.line}: ${o.failure}`).join('\n'));
  });

  it('the forwarders and tightening samples, renamed into place, pass their own tests', async () => {
    const dir = folderWith(['00-a-forwarders.yaml', '00-a-forwarders.test.yaml', '60-tighten-weak-domains.yaml', '60-tighten-weak-domains.test.yaml']);
    dirs.push(dir);
    const t = await testFolder(dir, await loadPolicies(dir));
    assert.deepEqual(t.errors.map((e) => e.message), []);
    assert.equal(t.files.length, 3);
    assert.equal(t.failed, 0, t.outcomes.filter((o) => o.failure).map((o) => `${o.file}:${o.line}: ${o.failure}`).join('\n'));
  });

  it('per recipient domain: the trust covers every recipient of a mixed message; the documented not: makes it research-only', async () => {
    const mixed = caseFacts({
      recipient: ['alice@research.example.org', 'bob@sales.example.org'], from_domain: 'university.example',
      dmarc: 'fail', dmarc_policy: 'reject', arc_sealer: 'lists.research-partner.example', arc_dmarc: 'pass',
    });
    const researchOnly = { ...mixed, envelope: { ...mixed.envelope, recipients: ['alice@research.example.org'] } };
    const asShipped = folderWith(['00-a-forwarders.yaml']);
    const scoped = folderWith(['00-a-forwarders.yaml'], (dir) => {
      const file = path.join(dir, '00-a-forwarders.yaml');
      const text = fs.readFileSync(file, 'utf8');
      const rule = '      arc_sealer: [lists.research-partner.example]\n      arc_dmarc: pass\n';
      assert.ok(text.includes(rule));
      fs.writeFileSync(file, text.replace(rule, `${rule}      not: { recipient: [sales.example.org, .sales.example.org] }\n`));
    });
    dirs.push(asShipped, scoped);
    const shipped = await loadPolicies(asShipped);
    assert.deepEqual([decide(mixed, shipped, 'data')?.enforced.rule, decide(mixed, shipped, 'data')?.enforced.action], ['arc-research-lists', 'tag']);
    const narrowed = await loadPolicies(scoped);
    assert.deepEqual([decide(mixed, narrowed, 'data')?.enforced.rule, decide(mixed, narrowed, 'data')?.enforced.action], ['dmarc-reject', 'reject']);
    assert.equal(decide(researchOnly, narrowed, 'data')?.enforced.rule, 'arc-research-lists');
  });

  it('tightening weak domains: monitor mode accepts and reports, the same rules enforced refuse; the tests catch the switch', async () => {
    const monitor = folderWith(['60-tighten-weak-domains.yaml', '60-tighten-weak-domains.test.yaml']);
    const enforced = folderWith(['60-tighten-weak-domains.yaml', '60-tighten-weak-domains.test.yaml'], (dir) => {
      const file = path.join(dir, '60-tighten-weak-domains.yaml');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^mode: monitor$/m, ''));
    });
    dirs.push(monitor, enforced);
    const spoof = caseFacts({ from_domain: 'brand.example', dmarc: 'fail', dmarc_policy: 'none' });
    const before = decide(spoof, await loadPolicies(monitor), 'data');
    assert.deepEqual([before?.enforced.action, before?.enforced.rule, before?.wouldHave?.action], ['accept', 'tighten-reject', 'reject']);
    const after = decide(spoof, await loadPolicies(enforced), 'data');
    assert.deepEqual([after?.enforced.action, after?.enforced.rule, after?.wouldHave], ['reject', 'tighten-reject', undefined]);
    assert.equal(after?.enforced.action === 'reject' && after.enforced.reply.text, 'Rejected by local policy: mail from brand.example must pass DMARC here');
    const t = await testFolder(enforced, await loadPolicies(enforced));
    assert.deepEqual(t.outcomes.filter((o) => o.failure).map((o) => [o.line, o.failure]), [
      [7, 'expected accept (rule tighten-reject), got reject (rule tighten-reject); tighten-reject decides, but with its action reject, not accept (it accepts only in monitor mode); expected would_have reject (rule tighten-reject), got none'],
      [11, 'expected accept (rule tighten-reject), got reject (rule tighten-reject); tighten-reject decides, but with its action reject, not accept (it accepts only in monitor mode); expected would_have reject, got none'],
      [15, 'expected accept (rule tighten-quarantine), got quarantine (rule tighten-quarantine); tighten-quarantine decides, but with its action quarantine, not accept (it accepts only in monitor mode); expected would_have quarantine, got none'],
    ], 'the monitor-mode tests fail once the rule is enforced, and say why plainly');
    // the other way round: expectations already enforced, the rule still in monitor mode
    const early = runPolicyTests([{ path: 'e.test.yaml', text: '- name: e\n  facts: { from_domain: brand.example, dmarc: fail, dmarc_policy: none }\n  expect: { action: reject, rule: tighten-reject }\n' }], await loadPolicies(monitor));
    assert.equal(early.outcomes[0]?.failure, 'expected reject (rule tighten-reject), got accept (rule tighten-reject); tighten-reject decides, but in monitor mode: it accepts (would reject), not reject');
  });
});
