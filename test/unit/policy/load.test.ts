/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigErrors } from '../../../src/core/errors.ts';
import { summarizeRuleSet } from '../../../src/policy/describe.ts';
import { compilePolicies, describeRuleSet, loadPolicies } from '../../../src/policy/load.ts';
import { FIXTURES } from './rules.ts';

const BROKEN = join(FIXTURES, 'broken');
const SHIPPED = join(import.meta.dirname, '../../../policies');

/** Compile one broken fixture and return the error lines (path shown as broken/<name>). */
function errorsOf(name: string): string[] {
  const text = readFileSync(join(BROKEN, name), 'utf8');
  let caught: unknown;
  try {
    compilePolicies([{ path: `broken/${name}`, text }], BROKEN);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigErrors, `${name} should fail to load`);
  return caught.errors.map((e) => e.message);
}

describe('loader errors name file:line:column and the key', () => {
  const cases: Array<[string, string[]]> = [
    ['syntax.yaml', ['broken/syntax.yaml:6:1: YAML syntax error: Missing closing "quote']],
    ['unknown-key.yaml', [
      'broken/unknown-key.yaml:5:7: rules[0].match.dmarc_polciy: unknown key "dmarc_polciy"; did you mean "dmarc_policy"? (allowed: ip, helo, ptr, sender_domain, from_domain, recipient, spf, dkim, dkim_aligned, dkim_domain, arc, dmarc, dmarc_policy, tier, auth_temperror, first_seen_within, multiple_from, from_count, arc_chain, arc_sealer, arc_dmarc, not)',
      'broken/unknown-key.yaml:9:5: rules[1].modee: unknown key "modee"; did you mean "mode"? (allowed: name, description, match, action, reply, headers, mailbox, mode)',
    ]],
    ['bad-action.yaml', ['broken/bad-action.yaml:4:13: rules[0].action: expected one of accept, tag, quarantine, tempfail, reject']],
    ['missing-action.yaml', ['broken/missing-action.yaml:2:5: rules[0].action: required key is missing']],
    ['bad-result.yaml', ['broken/bad-result.yaml:4:19: rules[0].match.spf[1]: expected one of pass, fail, softfail, neutral, none, temperror, permerror, policy']],
    ['class-mismatch.yaml', [
      'broken/class-mismatch.yaml:7:17: rules[0].reply.enhanced: enhanced code 5.7.1 does not match reply code 451: the class must agree (RFC 3463 §2)',
      'broken/class-mismatch.yaml:11:20: rules[1].reply.code: reject needs a 5xx code (one of 550, 551, 552, 553, 554), got 451',
    ]],
    ['bad-cidr.yaml', [
      'broken/bad-cidr.yaml:6:11: rules[0].match.ip[1]: not an IP address or CIDR: "10.0.0.300/8"',
      'broken/bad-cidr.yaml:7:11: rules[0].match.ip[2]: CIDR "10.1.2.3/8" has host bits set; the network is 10.0.0.0/8',
    ]],
    ['missing-list.yaml', [`broken/missing-list.yaml:5:20: rules[0].match.from_domain: list file not found: lists/does-not-exist.txt (looked for ${join(BROKEN, 'lists/does-not-exist.txt')})`]],
    ['bad-list-entry.yaml', [`${join(BROKEN, 'lists/bad-domains.txt')}:3:1: rules[0].match.from_domain: not a valid domain pattern: "not a domain" (use example.com, .example.com or *.example.com)`]],
    ['bad-template.yaml', ['broken/bad-template.yaml:5:48: rules[0].reply.text: unknown placeholder {from_domian} (known: {from_domain}, {sender_domain}, {spf_domain}, {dmarc_policy}, {dmarc_domain}, {dmarc_published}, {ip}, {rule})']],
    ['wrong-options.yaml', [
      'broken/wrong-options.yaml:4:12: rules[0].reply: reply applies to tempfail and reject, not to accept',
      'broken/wrong-options.yaml:7:14: rules[1].headers: headers apply to tag and quarantine, not to reject',
      'broken/wrong-options.yaml:10:23: rules[2].headers[0].name: X-Postern-Verdict is written by Postern itself',
    ]],
  ];
  for (const [file, expected] of cases) {
    it(file, () => assert.deepEqual(errorsOf(file), expected));
  }

  it('errors carry their parts for the reload log', () => {
    const text = readFileSync(join(BROKEN, 'bad-action.yaml'), 'utf8');
    const err = (() => {
      try {
        compilePolicies([{ path: 'x.yaml', text }], BROKEN);
      } catch (e) {
        return e;
      }
      return null;
    })();
    assert.ok(err instanceof ConfigErrors);
    assert.deepEqual({ ...err.errors[0] }, { name: 'ConfigError', file: 'x.yaml', line: 4, column: 13, key: 'rules[0].action', problem: 'expected one of accept, tag, quarantine, tempfail, reject' });
  });

  it('duplicate rule names across files name both places', async () => {
    const dir = join(BROKEN, 'duplicate');
    await assert.rejects(loadPolicies(dir), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.deepEqual(err.errors.map((e) => e.message), [
        `${join(dir, '20-b.yaml')}:4:11: rules[1].name: duplicate rule name "same-name", first defined at ${join(dir, '10-a.yaml')}:2:11`,
      ]);
      return true;
    });
  });

  it('collects the errors of every file', () => {
    const files = ['bad-action.yaml', 'bad-cidr.yaml'].map((n) => ({ path: `broken/${n}`, text: readFileSync(join(BROKEN, n), 'utf8') }));
    assert.throws(() => compilePolicies(files, BROKEN), (err: unknown) => err instanceof ConfigErrors && err.errors.length === 3);
  });

  it('more checks: empty not, zero duration, rule that is not a mapping, file that is not a mapping', () => {
    const text = 'rules:\n  - just-a-string\n  - name: x\n    action: accept\n    match:\n      not: {}\n      first_seen_within: 0m\n';
    assert.throws(() => compilePolicies([{ path: 'e.yaml', text }], '.'), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.deepEqual(err.errors.map((e) => e.message), [
        'e.yaml:2:5: rules[0]: a rule is a mapping with name, match and action',
        'e.yaml:6:12: rules[1].match.not: `not:` needs at least one match key',
        'e.yaml:7:26: rules[1].match.first_seen_within: duration must be more than 0',
      ]);
      return true;
    });
    assert.throws(() => compilePolicies([{ path: 'e.yaml', text: '- a\n' }], '.'), { message: 'e.yaml:1:1: a policy file is a mapping with `rules:` and an optional `mode:`' });
  });

  it('from_count takes a count or a comparison, one or a list; anything else names the key and the forms', () => {
    const ok = 'rules:\n  - name: a\n    action: reject\n    match: { from_count: 0 }\n  - name: b\n    action: reject\n    match: { from_count: [">1", "<= 3", "=1"] }\n';
    assert.deepEqual(compilePolicies([{ path: 'ok.yaml', text: ok }], '.').rules.map((r) => [r.name, r.reason]), [['a', 'from-count'], ['b', 'from-count']]);
    for (const bad of ['two', '-1', '">"', '"=>1"', '1.5', 'true']) {
      const text = `rules:\n  - name: x\n    action: reject\n    match: { from_count: ${bad} }\n`;
      assert.throws(() => compilePolicies([{ path: 'e.yaml', text }], '.'), (err: unknown) => {
        assert.ok(err instanceof ConfigErrors);
        assert.match(err.errors[0]!.message, /^e\.yaml:4:\d+: rules\[0\]\.match\.from_count(\[0\])?: expected a count like 0 or a comparison like ">1", ">=2", "<1"$/, bad);
        return true;
      });
    }
  });
});

describe('loadPolicies', () => {
  it('loads the shipped policies/ folder', async () => {
    const rs = await loadPolicies(SHIPPED);
    assert.deepEqual(rs.files.map((f) => [f.path, f.mode, f.rules]), [[join(SHIPPED, '00-defaults.yaml'), 'enforce', 5]]);
    assert.deepEqual(rs.rules.map((r) => r.name), ['multiple-from', 'no-from', 'auth-temperror-retry', 'dmarc-reject', 'dmarc-quarantine']);
  });

  it('the shipped 50-examples.yaml.sample stays valid (as if renamed)', () => {
    const text = readFileSync(join(SHIPPED, '50-examples.yaml.sample'), 'utf8');
    const rs = compilePolicies([{ path: join(SHIPPED, '50-examples.yaml'), text }], SHIPPED);
    assert.deepEqual(rs.rules.map((r) => [r.name, r.action, r.mode]), [
      ['partner-allow', 'accept', 'enforce'],
      ['spf-fail-reject', 'reject', 'enforce'],
      ['strict-dkim-domains', 'reject', 'enforce'],
      ['dmarc-none-trial', 'quarantine', 'monitor'],
      ['spf-softfail-tag', 'tag', 'enforce'],
    ]);
  });

  it('an empty folder is an error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-policy-'));
    try {
      await writeFile(join(dir, '50-examples.yaml.sample'), 'not: [valid');
      await mkdir(join(dir, 'lists'));
      await assert.rejects(loadPolicies(dir), { name: 'ConfigErrors', message: `${dir}: no policy files in ${dir} (expected *.yaml or *.yml)` });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('reads .yaml and .yml in lexical order, ignoring other and hidden files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-policy-'));
    try {
      await writeFile(join(dir, 'b.yml'), 'rules:\n  - { name: b, action: accept }\n');
      await writeFile(join(dir, 'a.yaml'), 'rules:\n  - { name: a, action: accept }\n');
      await writeFile(join(dir, 'c.yaml.sample'), 'broken: [');
      await writeFile(join(dir, '.hidden.yaml'), 'broken: [');
      const rs = await loadPolicies(dir);
      assert.deepEqual(rs.rules.map((r) => r.name), ['a', 'b']);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('a missing folder is an error', async () => {
    await assert.rejects(loadPolicies(join(tmpdir(), 'postern-no-such-folder')), (err: unknown) =>
      err instanceof ConfigErrors && /^.*postern-no-such-folder: cannot read policy folder: ENOENT/.test(err.message));
  });
});

describe('describeRuleSet', () => {
  it('summarises files, rules, modes and which rules refuse at MAIL FROM', () => {
    const dir = join(FIXTURES, 'valid/two-files');
    const rs = compilePolicies(['10-first.yaml', '20-second.yaml'].map((n) => ({ path: n, text: readFileSync(join(dir, n), 'utf8') })), dir);
    const s = summarizeRuleSet(rs);
    assert.equal(s.ruleCount, 4);
    assert.deepEqual(s.rules.map((r) => [r.name, r.stage, r.refusesAtMailFrom]), [
      ['partner-accept', 'mail', false], ['spf-fail-early', 'mail', true], ['spf-fail-tag', 'mail', false], ['dmarc-reject', 'data', false],
    ]);
    assert.equal(describeRuleSet(rs), [
      `policies: ${dir}: 2 file(s), 4 rule(s), 0 in monitor mode`,
      '  10-first.yaml: 2 rule(s)',
      '  20-second.yaml: 2 rule(s)',
      '  1. partner-accept → accept (ip)  10-first.yaml:3',
      '  2. spf-fail-early → reject (spf) [at MAIL FROM]  10-first.yaml:7',
      '  3. spf-fail-tag → tag (spf)  20-second.yaml:2',
      '  4. dmarc-reject → reject (dmarc, dmarc_policy)  20-second.yaml:6',
    ].join('\n'));
  });
});
