/**
 * The CLI as scripts use it: --version, --help on every command (exit 0, no parse error),
 * arguments a command does not take refused (exit 2), `verify --json` with the documented
 * exit status (0 delivered: accept, tag, quarantine; 1 reject, 3 tempfail, 2 usage or
 * configuration error), `check-config --print` (the effective configuration as
 * YAML that loads again, secrets masked, origins marked) and the start-up log naming the
 * version and the shipped policy set.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { ROOT, runCli, serveUntil } from '../harness/cli.ts';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { dkimKey, message, sign } from '../harness/mail.ts';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The commands `postern --help` lists, with their synopsis line: every one is covered below. */
function listedCommands(help: string): Array<{ name: string; synopsis: string }> {
  const lines = help.split('\n');
  return lines.flatMap((line, i) => {
    const m = /^ {2}([a-z-]+) {2,}\S/.exec(line);
    return m?.[1] ? [{ name: m[1], synopsis: lines[i + 1] ?? '' }] : [];
  });
}

/** The shape `verify --json` documents. */
interface VerifyJson {
  authResults: string;
  spf: { result: string };
  dkim: Array<{ result: string; domain: string }>;
  dmarc: { result: string } | null;
  fromDomain: string | null;
  verdict: { action: string; rule: string; reason: string; reply: string | null };
  exitCode: number;
}

describe('postern --version and --help', () => {
  it('--version prints the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `postern ${VERSION} (node ${process.version})\n`);
    }
  });

  it('every command postern --help lists answers --help and -h with its usage, exit 0', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    const commands = listedCommands(top.stdout);
    assert.deepEqual(commands.map((c) => c.name), ['serve', 'check-config', 'verify', 'reputation', 'reports', 'replay', 'policy', 'explain']);
    for (const { name, synopsis } of commands) {
      for (const flag of ['--help', '-h']) {
        const r = await runCli([name, flag]);
        assert.equal(r.code, 0, `${name} ${flag}: ${r.stderr}`);
        assert.equal(r.stderr, '');
        assert.match(r.stdout, new RegExp(`^usage: postern ${name} `));
        // a command that reads the configuration says how to name it
        if (synopsis.includes('--config')) assert.match(r.stdout, /--config FILE/, `${name} ${flag}`);
      }
      assert.equal((await runCli(['help', name])).stdout, (await runCli([name, '--help'])).stdout);
    }
  });

  it('an argument a command does not take is a usage error: check-config FILE without --config does not check the defaults', async () => {
    const checked = await runCli(['check-config', '/etc/postern/postern.yaml']);
    assert.equal(checked.code, 2);
    assert.match(checked.stderr, /^postern: check-config takes no argument "\/etc\/postern\/postern\.yaml": did you mean --config \/etc\/postern\/postern\.yaml\?\n\nusage: postern check-config /);
    assert.equal(checked.stdout, '', 'no "ok"');
    const served = await serveUntil(['postern.yaml'], { POSTERN_DOMAINS: 'example.net', POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0' });
    assert.equal(served.started, false, 'serve did not start on the embedded defaults');
    assert.equal(served.code, 2);
    assert.match(served.stderr, /^postern: serve takes no argument "postern\.yaml": did you mean --config postern\.yaml\?/);
    const word = await runCli(['check-config', 'now']);
    assert.equal(word.code, 2);
    assert.match(word.stderr, /check-config takes no argument "now" \(the config file is given with --config FILE\)/);
    assert.equal((await runCli(['reputation', 'show', '192.0.2.1', 'extra'])).code, 2);
    assert.equal((await runCli(['policy', 'schema', 'extra'])).code, 2);
  });

  it('a wrong option is a usage error naming the command, exit 2, without node\'s quoting advice', async () => {
    const r = await runCli(['verify', '--nope']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^postern: verify: Unknown option '--nope'\n\nusage: postern verify /);
    assert.doesNotMatch(r.stderr, /positional argument starting with a '-'/);
    assert.equal((await runCli(['frobnicate'])).code, 2);
  });
});

describe('postern verify --json and its exit status', () => {
  let dir: string;
  let dns: DnsTestServer;
  let env: Record<string, string>;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-verify-'));
    dns = await startDnsServer();
    const key = dkimKey('ed25519');
    dns.setZone({
      'good.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.good.example': [{ TXT: 'v=DMARC1; p=reject' }],
      's1._domainkey.good.example': [{ TXT: key.record }],
      'quar.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
      '_dmarc.quar.example': [{ TXT: 'v=DMARC1; p=quarantine' }],
      'soft.example': [{ TXT: 'v=spf1 ~all' }],
      'slow.example': ['TIMEOUT'],
      '_dmarc.slow.example': ['TIMEOUT'],
    });
    fs.writeFileSync(path.join(dir, 'signed.eml'), await sign(message({ from: 'alice@good.example' }), { domain: 'good.example', selector: 's1', key }));
    fs.writeFileSync(path.join(dir, 'spoof.eml'), message({ from: 'ceo@good.example' }));
    fs.writeFileSync(path.join(dir, 'slow.eml'), message({ from: 'bob@slow.example' }));
    const plain = message({ from: 'placeholder@other.example' });
    fs.writeFileSync(path.join(dir, 'no-from.eml'), plain.replace(/^From: .*\r\n/m, ''));
    fs.writeFileSync(path.join(dir, 'two-from.eml'), plain.replace(/^From: .*\r\n/m, 'From: <x@other.example>\r\nFrom: <ceo@good.example>\r\n'));
    fs.writeFileSync(path.join(dir, 'leading-space.eml'), ` x\r\n${message({ from: 'alice@good.example' })}`);
    fs.writeFileSync(path.join(dir, 'quar.eml'), message({ from: 'ceo@quar.example' }));
    fs.writeFileSync(path.join(dir, 'soft.eml'), message({ from: 'bob@soft.example' }));
    // a policy that tags SPF softfail, before the shipped rules
    fs.mkdirSync(path.join(dir, 'tagging'));
    fs.copyFileSync(path.join(ROOT, 'policies', '00-defaults.yaml'), path.join(dir, 'tagging', '50-defaults.yaml'));
    fs.writeFileSync(path.join(dir, 'tagging', '00-tag.yaml'), 'rules:\n  - name: softfail-tag\n    match:\n      spf: softfail\n    action: tag\n    headers:\n      - name: X-Postern-Tag\n        value: spf-softfail\n');
    env = { POSTERN_DNS_SERVERS: `127.0.0.1:${dns.port}`, POSTERN_DNS_TIMEOUT_MS: '200', POSTERN_DNS_ATTEMPTS: '1', POSTERN_HOSTNAME: 'mx.cli.test' };
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await dns.close();
  });

  const verify = (file: string, ip: string, sender: string, extra: string[] = []) =>
    runCli(['verify', path.join(dir, file), '--ip', ip, '--helo', 'mail.example', '--sender', sender, ...extra], env);

  it('delivered: exit 0, one JSON object with the Authentication-Results fields and the verdict', async () => {
    const r = await verify('signed.eml', '192.0.2.1', 'alice@good.example', ['--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as VerifyJson;
    assert.match(out.authResults, /^mx\.cli\.test;/);
    assert.equal(out.spf.result, 'pass');
    assert.equal(out.dkim[0]?.result, 'pass');
    assert.equal(out.dkim[0]?.domain, 'good.example');
    assert.equal(out.dmarc?.result, 'pass');
    assert.equal(out.fromDomain, 'good.example');
    assert.deepEqual(out.verdict, { action: 'accept', rule: '', reason: 'default', reply: null });
    assert.equal(out.exitCode, 0);
  });

  it('reject: exit 1, with the rule and the reply', async () => {
    const r = await verify('spoof.eml', '198.51.100.1', 'x@other.example', ['--json']);
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout) as VerifyJson;
    assert.equal(out.dmarc?.result, 'fail');
    assert.equal(out.verdict.action, 'reject');
    assert.equal(out.verdict.rule, 'dmarc-reject');
    assert.match(out.verdict.reply ?? '', /^550 5\.7\.1 /);
    assert.equal(out.exitCode, 1);
  });

  it('what the gateway refuses for its From fields or header syntax, verify refuses too (exit 1)', async () => {
    const expected: Array<[string, string, string, RegExp]> = [
      ['no-from.eml', 'no-from', 'from-count', /^550 5\.7\.1 Rejected: the message has no From field/],
      ['two-from.eml', 'multiple-from', 'multiple-from', /^550 5\.7\.1 Rejected: the message has more than one From field/],
      ['leading-space.eml', '', 'bad-header', /^550 5\.6\.0 Message header must start with a field name/],
    ];
    for (const [file, rule, reason, reply] of expected) {
      const r = await verify(file, '192.0.2.1', 'alice@good.example', ['--json']);
      assert.equal(r.code, 1, `${file}: ${r.stdout}${r.stderr}`);
      const out = JSON.parse(r.stdout) as VerifyJson;
      assert.deepEqual([out.verdict.action, out.verdict.rule, out.verdict.reason], ['reject', rule, reason], file);
      assert.match(out.verdict.reply ?? '', reply, file);
    }
  });

  it('quarantine and tag are delivered: exit 0', async () => {
    const quarantined = await verify('quar.eml', '198.51.100.1', 'x@other.example', ['--json']);
    assert.equal(quarantined.code, 0, quarantined.stderr);
    const q = JSON.parse(quarantined.stdout) as VerifyJson;
    assert.equal(q.dmarc?.result, 'fail');
    assert.deepEqual([q.verdict.action, q.verdict.rule, q.exitCode], ['quarantine', 'dmarc-quarantine', 0]);
    const tagged = await runCli(['verify', path.join(dir, 'soft.eml'), '--ip', '198.51.100.1', '--sender', 'bob@soft.example', '--json'],
      { ...env, POSTERN_POLICIES: path.join(dir, 'tagging') });
    assert.equal(tagged.code, 0, tagged.stderr);
    const t = JSON.parse(tagged.stdout) as VerifyJson;
    assert.deepEqual([t.spf.result, t.verdict.action, t.verdict.rule, t.exitCode], ['softfail', 'tag', 'softfail-tag', 0]);
  });

  it('tempfail: exit 3 (DNS temperror, deferred by the default policy)', async () => {
    const r = await verify('slow.eml', '192.0.2.9', 'bob@slow.example', ['--json']);
    assert.equal(r.code, 3, r.stderr);
    const out = JSON.parse(r.stdout) as VerifyJson;
    assert.equal(out.verdict.action, 'tempfail');
    assert.match(out.verdict.reply ?? '', /^451 4\.7\.5 /);
    const text = await verify('slow.eml', '192.0.2.9', 'bob@slow.example');
    assert.equal(text.code, 3);
    assert.match(text.stdout, /verdict: tempfail \(rule auth-temperror-retry\)/);
  });

  it('several files: one JSON object, the most severe verdict decides the exit status', async () => {
    const r = await runCli(['verify', path.join(dir, 'signed.eml'), path.join(dir, 'spoof.eml'), '--ip', '198.51.100.1', '--sender', 'x@other.example', '--json'], env);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { files: Array<{ verdict: { action: string } }>; exitCode: number };
    assert.deepEqual(out.files.map((f) => f.verdict.action), ['accept', 'reject']);
    assert.equal(out.exitCode, 1);
  });

  it('usage and configuration errors: exit 2', async () => {
    assert.equal((await runCli(['verify', path.join(dir, 'signed.eml')], env)).code, 2, 'no --ip');
    assert.equal((await verify('missing.eml', '192.0.2.1', '')).code, 2, 'no such file');
    assert.equal((await verify('signed.eml', 'not-an-ip', '')).code, 2, 'bad --ip');
    const badConfig = await runCli(['verify', path.join(dir, 'signed.eml'), '--ip', '192.0.2.1'], { ...env, POSTERN_DNS_SERVERS: 'resolver.example' });
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.stderr, /^POSTERN_DNS_SERVERS: /m);
  });
});

describe('check-config run as root', () => {
  const root = process.getuid?.() === 0;
  const NOTE = /^note: checked as root, who can read every file: .*sudo -u postern postern check-config --config /m;

  it('says the service user may not see what root sees, when the config names files (only as root)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-root-'));
    try {
      fs.chmodSync(dir, 0o755);
      fs.writeFileSync(path.join(dir, 'allow.txt'), '192.0.2.1\n', { mode: 0o644 });
      const withFiles = path.join(dir, 'files.yaml');
      fs.writeFileSync(withFiles, `domains: [example.net]\nlists:\n  allow: ${path.join(dir, 'allow.txt')}\n`, { mode: 0o644 });
      const noFiles = path.join(dir, 'plain.yaml');
      fs.writeFileSync(noFiles, 'domains: [example.net]\n', { mode: 0o644 });
      const checked = await runCli(['check-config', '--config', withFiles]);
      assert.equal(checked.code, 0, checked.stderr);
      if (root) assert.match(checked.stdout, NOTE);
      else assert.doesNotMatch(checked.stdout, NOTE);
      assert.doesNotMatch((await runCli(['check-config', '--config', noFiles])).stdout, NOTE, 'no files named: nothing to say');
      if (root) {
        const asUser = await runCli(['check-config', '--config', withFiles], {}, { uid: 65534, gid: 65534 });
        assert.equal(asUser.code, 0, asUser.stderr);
        assert.doesNotMatch(asUser.stdout, NOTE);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('check-config --print', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-print-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints file + environment + defaults as YAML that loads to the same configuration, origins marked, passwords masked', async () => {
    const file = path.join(dir, 'postern.yaml');
    fs.writeFileSync(file, 'domains: [example.net, "*.example.org"]\nlisten: ["127.0.0.1:2525", "[::1]:2525"]\nlimits:\n  maxMessageSize: 10MB\nbackend:\n  xclient: yes\n');
    const env = { POSTERN_BACKEND_PORT: '10026', POSTERN_REDIS_URL: 'redis://postern:s3cret@127.0.0.1:6379/2' };
    const r = await runCli(['check-config', '--config', file, '--print'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /s3cret/);
    assert.match(r.stdout, /^ {2}url: redis:\/\/postern:\*\*\*\*@127\.0\.0\.1:6379\/2 # from POSTERN_REDIS_URL$/m);
    assert.match(r.stdout, /^ {2}port: 10026 # from POSTERN_BACKEND_PORT$/m);
    assert.match(r.stdout, /^ {2}maxMessageSize: 10000000$/m, 'a value from the file, in its plain form');
    assert.match(r.stdout, /^ {2}poolSize: 32 # default$/m);
    assert.match(r.stdout, /^domains: \[ example\.net, \.example\.org \]$/m);
    assert.match(r.stdout, /^policies: .* # default: the shipped policy set$/m);

    // The printed configuration is a configuration: printed again from a file, the same text
    // (save the header and the origins, which are now the file's).
    const printed = path.join(dir, 'printed.yaml');
    fs.writeFileSync(printed, r.stdout.replace('****', 's3cret'));
    const again = await runCli(['check-config', '--config', printed, '--print']);
    assert.equal(again.code, 0, again.stderr);
    const values = (text: string): unknown => parse(text);
    assert.deepEqual(values(again.stdout), values(r.stdout));
  });
});

describe('serve start-up log', () => {
  it('names the version, and says when the shipped policy set is used', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-startlog-'));
    try {
      const file = path.join(dir, 'postern.yaml');
      fs.writeFileSync(file, 'listen: ["127.0.0.1:0"]\nmetrics:\n  listen: "127.0.0.1:0"\ndomains: [example.net]\n');
      const r = await serveUntil(['--config', file], {});
      assert.ok(r.started, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const starting = lines.find((l) => l.msg === 'starting postern');
      assert.equal(starting?.version, VERSION);
      const shipped = lines.find((l) => typeof l.msg === 'string' && l.msg.includes('using the shipped default policies'));
      assert.equal(shipped?.policies, path.join(ROOT, 'policies'));
      assert.equal(lines.find((l) => l.msg === 'postern listening')?.version, VERSION);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
