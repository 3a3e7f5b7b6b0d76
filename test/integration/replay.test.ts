/**
 * Replay end to end: real mail through a real gateway process (`postern serve`) that writes
 * its pino log and a rotating decisions.file; then `postern replay --json` over both, under a
 * stricter candidate policy (the tightening sample, enforced), must count exactly the
 * transitions the mail sent implies. The log and the decision files give the same answer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startChildGateway, type ChildGateway } from '../harness/child-gateway.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { SHIPPED_POLICIES } from '../harness/gateway.ts';
import { dkimKey, message, sign } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { standardZone } from '../harness/world.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

function postern(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The keys of a JSON value at every depth, sorted; a list by the keys of its first element. */
function keyTree(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [keyTree(value[0])] : [];
  if (typeof value !== 'object' || value === null) return null;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, keyTree((value as Record<string, unknown>)[k])]));
}

interface ReplayJson {
  totals: Record<string, unknown>;
  transitions: Array<{ from: string; to: string | null; count: number; changed: boolean }>;
  rules: Array<{ rule: string; matched: number; changed: number }>;
  top_changed: { domains: Array<{ value: string; count: number }>; ips: Array<{ value: string; count: number }> };
}

describe('postern replay over what a gateway recorded', () => {
  let dir: string;
  let dns: DnsTestServer;
  let sink: Sink;
  let gw: ChildGateway;
  let candidate: string;
  const log = (): string => path.join(dir, 'postern.log');
  const decisionFiles = (): string[] => fs.readdirSync(path.join(dir, 'decisions')).filter((n) => !n.startsWith('.')).map((n) => path.join(dir, 'decisions', n));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-replay-it-'));
    fs.mkdirSync(path.join(dir, 'decisions'));
    const key = dkimKey('rsa');
    dns = await startDnsServer({
      ...standardZone({ rsa: key, ed25519: dkimKey('ed25519') }),
      'weak.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.weak.example': [{ TXT: 'v=DMARC1; p=none' }],
      'quar.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.quar.example': [{ TXT: 'v=DMARC1; p=quarantine' }],
    });
    sink = await startSink();
    fs.writeFileSync(path.join(dir, 'postern.yaml'), stringify({
      listen: ['127.0.0.1:0'], domains: ['example.net'], backend: { port: sink.port }, dns: { servers: [`127.0.0.1:${dns.port}`] },
      metrics: { listen: '127.0.0.1:0' }, policies: SHIPPED_POLICIES,
      // small, so that the records of this test already rotate into .gz files
      decisions: { file: 'decisions/decisions.jsonl', maxBytes: 4096, keep: 20 },
    }));
    gw = await startChildGateway({ POSTERN_CONFIG: path.join(dir, 'postern.yaml') });

    const deliver = async (from: string, raw: string, code: number): Promise<void> => {
      const r = await sendMail(gw.smtpPort, { from, to: ['user@example.net'], message: raw });
      assert.equal(r.data?.code, code, r.data?.lines.join('|'));
    };
    for (let i = 0; i < 3; i++) await deliver('bob@good.example', await sign(message({ from: 'bob@good.example' }), { domain: 'good.example', selector: 's1', key }), 250);
    for (let i = 0; i < 2; i++) await deliver('x@other.example', message({ from: 'ceo@good.example' }), 550);
    for (let i = 0; i < 4; i++) await deliver('x@other.example', message({ from: 'ceo@weak.example' }), 250);
    await deliver('x@other.example', message({ from: 'ceo@quar.example' }), 250);
    gw.signal('SIGTERM'); // drains and closes the decisions file
    assert.equal(await gw.exited, 0);
    fs.writeFileSync(log(), gw.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');

    // The candidate: the tightening sample, enforced, with weak.example listed.
    candidate = path.join(dir, 'candidate');
    fs.cpSync(SHIPPED_POLICIES, candidate, { recursive: true });
    const sample = fs.readFileSync(path.join(candidate, '60-tighten-weak-domains.yaml.sample'), 'utf8');
    fs.writeFileSync(path.join(candidate, '60-tighten-weak-domains.yaml'), sample.replace(/^mode: monitor$/m, 'mode: enforce'));
    fs.appendFileSync(path.join(candidate, 'lists/tighten-reject.txt'), 'weak.example\n');
  });
  after(async () => {
    await gw.kill();
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectStricter = (out: ReplayJson): void => {
    assert.deepEqual(out.transitions.map(({ from, to, count, changed }) => ({ from, to, count, changed })), [
      { from: 'accept', to: 'accept', count: 3, changed: false },
      { from: 'accept', to: 'reject', count: 4, changed: true },
      { from: 'quarantine', to: 'quarantine', count: 1, changed: false },
      { from: 'reject', to: 'reject', count: 2, changed: false },
    ]);
    assert.deepEqual({ ...out.totals, lines: 0, ignored_lines: 0 }, { lines: 0, ignored_lines: 0, records: 10, skipped: { not_v1: 0, no_verdict: 0, malformed: 0 }, redecided: 10, changed: 4, unchanged: 6, undecidable: 0 });
    assert.deepEqual(out.rules.filter((r) => r.matched > 0).map(({ rule, matched, changed }) => ({ rule, matched, changed })), [
      { rule: 'dmarc-reject', matched: 2, changed: 0 },
      { rule: 'dmarc-quarantine', matched: 1, changed: 0 },
      { rule: 'tighten-reject', matched: 4, changed: 4 },
      { rule: '', matched: 3, changed: 0 },
    ]);
    assert.deepEqual(out.top_changed.domains, [{ value: 'weak.example', count: 4 }]);
    assert.deepEqual(out.top_changed.ips, [{ value: '127.0.0.1', count: 4 }]);
  };

  it('over the pino log: the transitions the mail implies, other log lines ignored', async () => {
    const r = await postern(['replay', '--policies', candidate, '--json', log()]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as ReplayJson;
    expectStricter(out);
    assert.ok((out.totals.ignored_lines as number) > 0, 'the log has lines besides the decisions');
  });

  it('over the rotated, gzipped decision files: the same answer', async () => {
    const files = decisionFiles();
    assert.ok(files.some((f) => f.endsWith('.jsonl.gz')), `rotated files: ${files.join(' ')}`);
    const r = await postern(['replay', '--policies', candidate, '--json', ...files]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as ReplayJson;
    expectStricter(out);
    assert.equal(out.totals.ignored_lines, 0);
  });

  it('the table for people, with examples; the current policy changes nothing', async () => {
    const r = await postern(['replay', '--policies', candidate, '--show', '1', '--changed-only', log()]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...r.stdout.matchAll(/^examples (.*):$/gm)].map((m) => m[1]), ['accept → reject'], 'examples of the changed transition only');
    assert.match(r.stdout, /^accept +→ +reject +4 +changed$/m);
    assert.match(r.stdout, /^changed: 4 of 10 \(40\.00%\)$/m);
    assert.match(r.stdout, /^examples accept → reject:\n {4}.*postern\.log:\d+ session \w+ \S+: accept → reject \(tighten-reject\)\n {6}ip=127\.0\.0\.1 sender=x@other\.example from_domain=weak\.example spf=none dkim=none dmarc=fail dmarc_policy=none tier=neutral$/m);
    const same = await postern(['replay', '--policies', SHIPPED_POLICIES, '--json', log()]);
    assert.equal((JSON.parse(same.stdout) as ReplayJson).totals.changed, 0);
  });

  it('prints exactly the examples of README.md (replay table, explain of a recorded decision)', async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const block = (after: string): string[] => {
      const at = readme.indexOf(after);
      assert.ok(at >= 0, `README.md no longer has: ${after}`);
      const start = readme.indexOf('```\n', at + after.length) + 4;
      return readme.slice(start, readme.indexOf('\n```', start)).split('\n');
    };
    const table = block('What it prints, for the run of `test/integration/replay.test.ts`');
    const r = await postern(['replay', '--policies', candidate, log()]);
    const got = r.stdout.trimEnd().split('\n');
    assert.equal(got[0], table[0]?.replace('/tmp/candidate', candidate));
    assert.match(got[1] ?? '', /^ {2}\d+ line\(s\) read, \d+ not decision records, 0 record\(s\) skipped$/); // log lines vary
    assert.deepEqual(got.slice(2), table.slice(2));

    const explained = block('postern explain --record postern.log --session onqf1u5qf5c0v2c0 --policies /tmp/candidate\n```');
    const session = String(gw.logs.find((l) => l.event === 'decision' && l.from_domain === 'weak.example')?.session);
    const e = await postern(['explain', '--record', log(), '--session', session, '--policies', candidate]);
    const lines = e.stdout.trimEnd().split('\n');
    assert.equal(lines[1], explained[1]?.replace('/tmp/candidate', candidate));
    assert.deepEqual([lines[0], ...lines.slice(2)], [explained[0], ...explained.slice(2)]);
  });

  it('README.md "A real line" has the keys of a real decision line, at every depth (so it cannot drift)', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const at = readme.indexOf('`src/policy/record-facts.ts`. A real line');
    assert.ok(at >= 0, 'README.md no longer introduces its example decision line');
    const start = readme.indexOf('```json\n', at) + '```json\n'.length;
    const example = JSON.parse(readme.slice(start, readme.indexOf('\n```', start))) as Record<string, unknown>;
    // the same kind of message as the example: good.example, signed, accepted and delivered
    const real = gw.logs.find((l) => l.event === 'decision' && l.from_domain === 'good.example' && l.action === 'accept');
    assert.ok(real, 'the gateway logged the accepted good.example message');
    assert.deepEqual(keyTree(example), keyTree(real), `the README example is out of date; a real line:\n${JSON.stringify(real)}`);
  });

  it('usage errors and unreadable input exit 2 with a message, never a stack trace', async () => {
    const missing = await postern(['replay', '--policies', candidate, path.join(dir, 'nope.log')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^postern: no such file: .*nope\.log/);
    const noPolicies = await postern(['replay', log()]);
    assert.equal(noPolicies.code, 2);
    assert.match(noPolicies.stderr, /replay needs --policies DIR/);
    fs.writeFileSync(path.join(dir, 'cut.gz'), fs.readFileSync(decisionFiles().find((f) => f.endsWith('.gz'))!).subarray(0, 30));
    const cut = await postern(['replay', '--policies', candidate, path.join(dir, 'cut.gz')]);
    assert.equal(cut.code, 2);
    assert.match(cut.stderr, /^postern: cannot read .*cut\.gz.*: unexpected end of file\n$/);
    const changedOnly = await postern(['replay', '--policies', candidate, '--changed-only', log()]);
    assert.equal(changedOnly.code, 2);
    assert.match(changedOnly.stderr, /--changed-only picks the examples of --show N: give both/);
    const help = await postern(['replay', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: postern replay --policies DIR/);
  });
});
