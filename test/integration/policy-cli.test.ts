/**
 * The policy commands as a security team runs them (real child processes): `policy test`
 * passing and failing with file:line, `check-config` running the same tests, `explain` for a
 * message file and for a recorded decision, `verify --explain`, `policy schema`, `--help` of
 * each, and a decisions.file that cannot be written refused by check-config and serve.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { SHIPPED_POLICIES } from '../harness/gateway.ts';
import { message } from '../harness/mail.ts';
import { SmtpTestClient, sendMail } from '../harness/smtp-client.ts';
import { startWorld } from '../harness/world.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

function postern(args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('policy commands', () => {
  let dir: string;
  let policies: string;
  let dns: DnsTestServer;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-policy-cli-'));
    policies = path.join(dir, 'policies');
    fs.cpSync(SHIPPED_POLICIES, policies, { recursive: true });
    dns = await startDnsServer({
      'good.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.good.example': [{ TXT: 'v=DMARC1; p=reject' }],
    });
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await dns.close();
  });

  it('policy test: the shipped tests pass (exit 0); a failing case names file:line and makes it exit 1', async () => {
    const ok = await postern(['policy', 'test', policies]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^policy tests: 1 file\(s\), \d+ case\(s\), \d+ passed, 0 failed$/m);
    const file = path.join(policies, '10-team.test.yaml');
    fs.writeFileSync(file, [
      '- name: spoofed bank mail is refused',
      '  facts: { from_domain: bank.example, dmarc: fail, dmarc_policy: reject }',
      '  expect: { action: reject, rule: dmarc-reject }',
      '- name: p=none spoofing is refused too (no rule for it yet)',
      '  facts: { from_domain: weak.example, dmarc: fail, dmarc_policy: none }',
      '  expect: { action: reject }',
    ].join('\n') + '\n');
    try {
      const bad = await postern(['policy', 'test', policies]);
      assert.equal(bad.code, 1);
      assert.equal(bad.stdout.split('\n')[0], `${file}:4: FAIL "p=none spoofing is refused too (no rule for it yet)": expected reject, got accept (no rule matched)`);
      assert.match(bad.stdout, /^policy tests: 2 file\(s\), \d+ case\(s\), \d+ passed, 1 failed$/m);
      // check-config runs the same tests and fails with them
      const check = await postern(['check-config'], { POSTERN_POLICIES: policies, POSTERN_DOMAINS: 'example.net' });
      assert.equal(check.code, 1);
      assert.match(check.stdout, /10-team\.test\.yaml:4: FAIL/);
      assert.match(check.stdout, /^ {2}1\. multiple-from/m);
    } finally {
      fs.rmSync(file);
    }
    const fine = await postern(['check-config'], { POSTERN_POLICIES: policies, POSTERN_DOMAINS: 'example.net' });
    assert.equal(fine.code, 0, fine.stdout + fine.stderr);
    assert.match(fine.stdout, /^policy tests: 1 file\(s\)/m);
  });

  it('policy test: a broken policy or test file is located; usage errors exit 2', async () => {
    const file = path.join(policies, '20-x.test.yaml');
    fs.writeFileSync(file, '- name: typo\n  facts: { dmarc_polciy: none }\n  expect: { action: accept }\n');
    try {
      const r = await postern(['policy', 'test', policies]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`^${file.replace(/[.]/g, '\\.')}:2:12: \\[0\\]\\.facts\\.dmarc_polciy: unknown key "dmarc_polciy"; did you mean "dmarc_policy"\\?`, 'm'));
    } finally {
      fs.rmSync(file);
    }
    const usage = await postern(['policy', 'tset']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^postern: unknown policy command "tset"/);
    const missing = await postern(['policy', 'test', path.join(dir, 'nowhere')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read policy folder/);
  });

  it('policy schema prints the schemas shipped in policies/', async () => {
    const r = await postern(['policy', 'schema']);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(fs.readFileSync(path.join(SHIPPED_POLICIES, 'policy.schema.json'), 'utf8')));
    const t = await postern(['policy', 'schema', '--tests']);
    assert.deepEqual(JSON.parse(t.stdout), JSON.parse(fs.readFileSync(path.join(SHIPPED_POLICIES, 'policy-test.schema.json'), 'utf8')));
  });

  it('explain FILE.eml and verify --explain: each rule, why it did not match, the deciding rule', async () => {
    const spoof = path.join(dir, 'spoof.eml');
    fs.writeFileSync(spoof, message({ from: 'ceo@good.example' }));
    const env = { POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`, POSTERN_POLICIES: policies };
    const r = await postern(['explain', spoof, '--ip', '198.51.100.1', '--helo', 'x.example', '--sender', 'x@other.example', '--rcpt', 'ceo@example.net'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(lines[0] ?? '', /^facts: {4}ip=198\.51\.100\.1 helo=x\.example sender=x@other\.example sender_domain=other\.example spf=none tier=neutral recipient=ceo@example\.net from_domain=good\.example dkim=none .*dmarc=fail dmarc_policy=reject/);
    assert.deepEqual(lines.slice(3, 11), [
      '  1. multiple-from → reject  00-defaults.yaml:19',
      '     no: multiple_from did not match (false)',
      '  2. no-from → reject  00-defaults.yaml:36',
      '     no: from_count did not match (1)',
      '  3. auth-temperror-retry → tempfail  00-defaults.yaml:54',
      '     no: auth_temperror did not match (false)',
      '  4. dmarc-reject → reject  00-defaults.yaml:70',
      '     MATCH: dmarc (fail), dmarc_policy (reject)',
    ]);
    assert.match(r.stdout, /^ {5}\(1 later rule\(s\) not consulted\)$/m);
    assert.match(r.stdout, /^decision: reject by rule dmarc-reject, reason dmarc-policy\nreply: {4}550 5\.7\.1 Rejected by DMARC policy: good\.example publishes p=reject/m);
    const v = await postern(['verify', spoof, '--ip', '198.51.100.1', '--helo', 'x.example', '--sender', 'x@other.example', '--explain'], env);
    assert.equal(v.code, 1, v.stderr); // verify exits with the verdict: 1 is reject
    assert.match(v.stdout, /verdict: reject \(rule dmarc-reject\)[\s\S]*\n {2}4\. dmarc-reject → reject {2}00-defaults\.yaml:70\n {5}MATCH/);
    const usage = await postern(['explain', spoof], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^postern: explain FILE\.eml needs --ip/);
  });

  it('explain --record: a decision the gateway logged, by session, from a file or stdin', async () => {
    const w = await startWorld();
    try {
      const sent = await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@good.example' }) });
      assert.equal(sent.data?.code, 550);
      const logFile = path.join(dir, 'gw.log');
      fs.writeFileSync(logFile, w.gw.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
      const session = String(w.gw.decisions().at(-1)!.session);
      const r = await postern(['explain', '--record', logFile, '--session', session, '--policies', policies]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^ {2}4\. dmarc-reject → reject {2}00-defaults\.yaml:70\n {5}MATCH: dmarc \(fail\), dmarc_policy \(reject\)$/m);
      assert.match(r.stdout, /^recorded: reject by rule dmarc-reject \(when the record was written\)$/m);
      const stdin = await postern(['explain', '--record', '-', '--policies', policies], {}, fs.readFileSync(logFile, 'utf8'));
      assert.equal(stdin.code, 0, stdin.stderr);
      assert.match(stdin.stdout, /^decision: reject by rule dmarc-reject/m);
      const none = await postern(['explain', '--record', logFile, '--session', 'no-such-session', '--policies', policies]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /^postern: no decision record for session no-such-session/);
    } finally {
      await w.close();
    }
  });

  it('explain --record: a later message of a session, by --message-id or --nth', async () => {
    const w = await startWorld();
    try {
      const { client } = await SmtpTestClient.connect(w.gw.port);
      await client.cmd('EHLO client.example');
      for (const [from, id] of [['ceo@good.example', 'first@test'], ['ceo@other.example', 'second@test']] as const) {
        assert.equal((await client.cmd('MAIL FROM:<x@other.example>')).code, 250);
        assert.equal((await client.cmd('RCPT TO:<user@example.net>')).code, 250);
        await client.data(message({ from, messageId: id }));
      }
      await client.quit();
      const logFile = path.join(dir, 'two.log');
      fs.writeFileSync(logFile, w.gw.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
      const [one, two] = w.gw.decisions();
      assert.equal(one?.session, two?.session, 'one session, two messages');
      const session = String(one?.session);
      for (const pick of [['--message-id', 'second@test'], ['--nth', '2']]) {
        const r = await postern(['explain', '--record', logFile, '--session', session, ...pick, '--policies', policies]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /from_domain=other\.example/, pick.join(' '));
        assert.match(r.stdout, /^recorded: accept \(when the record was written\)$/m, pick.join(' '));
      }
      const third = await postern(['explain', '--record', logFile, '--session', session, '--nth', '3', '--policies', policies]);
      assert.equal(third.code, 1);
      assert.match(third.stderr, new RegExp(`^postern: no record number 3 among the decision records for session ${session} in `));
      const noId = await postern(['explain', '--record', logFile, '--message-id', 'nope@test', '--policies', policies]);
      assert.equal(noId.code, 1);
      assert.match(noId.stderr, /^postern: no decision record for Message-ID nope@test in /);
    } finally {
      await w.close();
    }
  });

  it('explain --record of a refusal at MAIL FROM: rules on the message are "not known yet"', async () => {
    const file = path.join(dir, 'mail-stage.log');
    const early = path.join(dir, 'early-policies');
    fs.cpSync(policies, early, { recursive: true });
    fs.writeFileSync(path.join(early, '05-spf.yaml'), 'rules:\n  - name: spf-fail-early\n    match: { spf: fail, tier: bad }\n    action: reject\n');
    const record = {
      v: 1, event: 'decision', session: 's1', client: { ip: '192.0.2.1', ptr: null, helo: 'x.example', tls: false, tier: 'neutral' },
      envelope: { from: 'a@good.example', sender_domain: 'good.example', to: [] }, from_domain: null, message_id: null, size: null, first_seen: null,
      auth: { spf: { result: 'fail', domain: 'good.example', identity: 'mailfrom', reason: '' }, dkim: null, arc: null, dmarc: null },
      stage: 'mail', verdict: { action: 'reject', rule: 'spf-fail-early', reason: 'rule' }, rule: 'spf-fail-early', action: 'reject', reason: 'rule',
    };
    fs.writeFileSync(file, JSON.stringify(record) + '\n');
    const r = await postern(['explain', '--record', file, '--policies', early]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}1\. multiple-from → reject {2}00-defaults\.yaml:\d+\n {5}not known yet: needs the message \(decided at end of DATA\)$/m);
    assert.match(r.stdout, /^decision: not decided at MAIL FROM/m);
  });

  it('every command answers --help with its usage, exit 0', async () => {
    for (const [cmd, usage] of [['replay', 'postern replay --policies DIR'], ['policy', 'postern policy test [DIR]'], ['explain', 'postern explain FILE.eml --ip IP']] as const) {
      const r = await postern([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.ok(r.stdout.startsWith(`usage: ${usage}`), r.stdout);
    }
  });

  it('a decisions.file that cannot be written: check-config exits 2 naming it, serve refuses to start', async () => {
    const env = { POSTERN_DECISIONS_FILE: path.join(dir, 'no-such-dir', 'decisions.jsonl'), POSTERN_DOMAINS: 'example.net', POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '' };
    const check = await postern(['check-config'], env);
    assert.equal(check.code, 2);
    // named where it was set: the variable
    assert.match(check.stderr, /^POSTERN_DECISIONS_FILE: cannot write decision records to .*no-such-dir\/decisions\.jsonl: ENOENT/m);
    const serve = await postern(['serve'], env);
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /^POSTERN_DECISIONS_FILE: cannot write decision records/m);
  });
});
