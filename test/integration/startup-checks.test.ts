/**
 * "check-config OK ⇒ serve starts", as a property over a table of configurations, on the real
 * CLI: for every broken configuration, `serve` exits non-zero without listening AND
 * `check-config` exits 2 naming the key and where it was set (file:line, or the POSTERN_*
 * variable), and neither prints a stack trace. For every tricky but valid configuration,
 * check-config exits 0 AND serve starts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli, serveUntil, type CliOptions } from '../harness/cli.ts';
import { selfSignedPair } from '../harness/tls.ts';
import { freePort } from '../ops/helpers/tools.ts';

/** Lines of a node stack trace: what an operator must never see. */
const STACK = /^\s+at /m;

interface Case {
  readonly name: string;
  /** Config file text ('' = no file); BASE is prepended unless `whole`. */
  readonly yaml: string;
  readonly whole?: boolean;
  readonly env?: Record<string, string>;
  /** What check-config must say: the key (or variable), the line when set in the file, the problem. */
  readonly expect: RegExp;
  readonly line?: number;
  readonly asUser?: boolean;
}

const BASE = 'listen: ["127.0.0.1:0"]\nmetrics:\n  listen: "127.0.0.1:0"\ndomains: [example.net]\n';
const BASE_LINES = BASE.split('\n').length - 1;

const root = process.getuid?.() === 0;

/** The files the cases name, made once for the whole table (module-level: each case is its own test). */
async function brokenCases(): Promise<{ dir: string; cases: Case[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-startup-'));
  fs.chmodSync(dir, 0o755); // readable by the unprivileged user of the EACCES case
  const a = selfSignedPair(dir, 'a');
  const b = selfSignedPair(dir, 'b');
  fs.writeFileSync(path.join(dir, 'garbage.pem'), 'this is not a certificate\n');
  fs.mkdirSync(path.join(dir, 'adir'));
  const secret = path.join(dir, 'secret.key');
  fs.copyFileSync(a.key, secret);
  fs.chmodSync(secret, 0o000);
  for (const f of fs.readdirSync(dir)) if (f !== 'secret.key') fs.chmodSync(path.join(dir, f), 0o755);
  fs.mkdirSync(path.join(dir, 'badpolicy'));
  fs.writeFileSync(path.join(dir, 'badpolicy', '10-x.yaml'), 'rules:\n  - name: x\n    match:\n      spf: maybe\n    action: reject\n');
  fs.writeFileSync(path.join(dir, 'block.txt'), '192.0.2.1\nnot a domain!\n');
  fs.mkdirSync(path.join(dir, 'aliaspolicy'));
  fs.writeFileSync(path.join(dir, 'aliaspolicy', '10-y.yaml'), 'rules:\n  - name: y\n    match:\n      sender_domain: *.example.com\n    action: reject\n');
  const port = await freePort();
  const tls = (cert: string, key: string): string => `tls:\n  cert: ${cert}\n  key: ${key}\n`;
  const at = (n: number): number => BASE_LINES + n;
  const cases: Case[] = [
    { name: 'a public suffix as domain (.com)', yaml: 'listen: ["127.0.0.1:0"]\ndomains: [".com"]\n', whole: true, expect: /domains\.0: "\.com" covers the public suffix "com"/, line: 2 },
    { name: 'a public suffix from the environment', yaml: '', env: { POSTERN_DOMAINS: 'example.net,co.uk' }, expect: /^POSTERN_DOMAINS: "co\.uk" is the public suffix "co\.uk"/m },
    { name: 'a wildcard over a public suffix', yaml: 'listen: ["127.0.0.1:0"]\ndomains: ["*.co.uk"]\n', whole: true, expect: /domains\.0: "\*\.co\.uk" covers the public suffix/, line: 2 },
    { name: 'the root as domain', yaml: 'listen: ["127.0.0.1:0"]\ndomains: ["."]\n', whole: true, expect: /domains\.0: "\." covers every domain/, line: 2 },
    { name: 'an unquoted *.example.com (a YAML alias)', yaml: 'listen: ["127.0.0.1:0"]\ndomains:\n  - example.net\n  - *.example.com\n', whole: true, expect: /domains\.1: \*\.example\.com is read as a YAML alias .*quote it: "\*\.example\.com"/, line: 4 },
    { name: 'a YAML alias bomb', yaml: `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`, expect: /YAML aliases expand too much/, line: at(2) },
    { name: 'no domains', yaml: 'listen: ["127.0.0.1:0"]\n', whole: true, expect: /domains: no recipient domains configured/ },
    { name: 'a missing TLS certificate', yaml: tls(path.join(dir, 'missing.crt'), a.key), expect: /tls\.cert: cannot read .*missing\.crt: no such file/, line: at(2) },
    { name: 'a TLS certificate that is a directory', yaml: tls(path.join(dir, 'adir'), a.key), expect: /tls\.cert: cannot read .*adir: it is a directory/, line: at(2) },
    { name: 'a garbage TLS certificate', yaml: tls(path.join(dir, 'garbage.pem'), a.key), expect: /tls\.cert: .*garbage\.pem is not a PEM certificate/, line: at(2) },
    { name: 'a garbage TLS key', yaml: tls(a.cert, path.join(dir, 'garbage.pem')), expect: /tls\.key: .*garbage\.pem is not an unencrypted PEM private key/, line: at(3) },
    { name: 'a key that does not match the certificate', yaml: tls(a.cert, b.key), expect: /tls\.key: .*b\.key does not belong to the certificate/, line: at(3) },
    { name: 'an unreadable TLS key (EACCES)', yaml: tls(a.cert, secret), expect: /tls\.key: cannot read .*secret\.key: permission denied/, line: at(3), asUser: true },
    { name: 'tls.cert without tls.key', yaml: `tls:\n  cert: ${a.cert}\n`, expect: /tls\.cert: tls\.cert and tls\.key go together/, line: at(2) },
    { name: 'a DNS server by name', yaml: 'dns:\n  servers: ["localhost:53"]\n', expect: /dns\.servers\.0: .*"localhost" is not an IP address; dns\.servers takes resolver IP addresses/, line: at(2) },
    { name: 'an IPv6 link-local DNS server without its interface', yaml: 'dns:\n  servers: ["fe80::1"]\n', expect: /dns\.servers\.0: DNS server "fe80::1": .*link-local address without its interface: write it as \[fe80::1%eth0\]:53/, line: at(2) },
    { name: 'the broadcast address as DNS server', yaml: 'dns:\n  servers: ["127.0.0.1:53", "255.255.255.255:53"]\n', expect: /dns\.servers\.1: .*"255\.255\.255\.255" is the broadcast address/, line: at(2) },
    { name: 'a DNS server by name from the environment', yaml: '', env: { POSTERN_DNS_SERVERS: 'dns.example:53' }, expect: /^POSTERN_DNS_SERVERS: .*not an IP address/m },
    { name: 'a listen port out of range from the environment', yaml: '', env: { POSTERN_LISTEN: '127.0.0.1:99999' }, expect: /^POSTERN_LISTEN: port 99999 .* out of range/m },
    { name: 'garbage in POSTERN_PROXY_PROTOCOL_TRUSTED', yaml: '', env: { POSTERN_PROXY_PROTOCOL_TRUSTED: '10.0.0.0/8,garbage' }, expect: /^POSTERN_PROXY_PROTOCOL_TRUSTED: invalid IP address or CIDR "garbage"/m },
    { name: 'a CIDR with a bad prefix', yaml: 'xclient:\n  trusted: [10.0.0.0/33]\n', expect: /xclient\.trusted\.0: invalid IP address or CIDR "10\.0\.0\.0\/33"/, line: at(2) },
    { name: 'a misspelt POSTERN_ variable', yaml: '', env: { POSTERN_DOMIANS: 'example.org' }, expect: /^POSTERN_DOMIANS: unknown environment variable.*did you mean POSTERN_DOMAINS\?/m },
    { name: 'a misspelt key', yaml: 'backend:\n  hots: mail.example\n', expect: /backend\.hots: unknown key \(did you mean host\?\)/, line: at(2) },
    { name: 'a known key in the wrong place', yaml: 'maxMessageSize: 10MB\n', expect: /maxMessageSize: unknown key \(did you mean limits\.maxMessageSize\?\)/, line: at(1) },
    { name: 'an explicit policy folder that does not exist', yaml: `policies: ${path.join(dir, 'nope')}\n`, expect: /policies: cannot read policy folder/, line: at(1) },
    { name: 'a broken policy file', yaml: `policies: ${path.join(dir, 'badpolicy')}\n`, expect: /10-x\.yaml:4:\d+: .*spf/ },
    { name: 'an unquoted *.example.com in a policy file', yaml: `policies: ${path.join(dir, 'aliaspolicy')}\n`, expect: /10-y\.yaml:4:\d+: .*quote it: "\*\.example\.com"/ },
    { name: 'a missing allow list', yaml: `lists:\n  allow: ${path.join(dir, 'none.txt')}\n`, expect: /lists\.allow: cannot read list/, line: at(2) },
    { name: 'a bad entry in the block list', yaml: `lists:\n  block: ${path.join(dir, 'block.txt')}\n`, expect: /block\.txt:2:1: invalid IP address, CIDR or domain "not"|block\.txt:2:\d+: one entry per line/ },
    { name: 'decisions.file naming a folder', yaml: `decisions:\n  file: ${path.join(dir, 'adir')}\n`, expect: /decisions\.file: .*adir is a folder: name a file in it/, line: at(2) },
    { name: 'a garbage report signing key', yaml: `reports:\n  dmarc:\n    email: dmarc@example.net\n    signing:\n      domain: example.net\n      selector: s1\n      keyFile: ${path.join(dir, 'garbage.pem')}\n    failure:\n      enabled: true\n`, expect: /reports\.dmarc\.signing\.keyFile: cannot use .*garbage\.pem/, line: at(7) },
    { name: 'a Redis URL without a host', yaml: 'redis:\n  url: "redis://"\n', expect: /redis\.url: .*(not a valid URL|has no host)/, line: at(2) },
    { name: 'Sentinel without sentinels', yaml: 'redis:\n  sentinel:\n    masterName: mymaster\n', expect: /redis: Sentinel needs a master name and at least one sentinel/ },
    { name: 'a size with an unknown unit', yaml: 'limits:\n  maxMessageSize: 10XB\n', expect: /limits\.maxMessageSize: expected a size/, line: at(2) },
    { name: 'a duration with an unknown unit', yaml: 'limits:\n  socketTimeoutMs: 5 minutes\n', expect: /limits\.socketTimeoutMs: expected a duration/, line: at(2) },
    { name: 'a boolean that is not one', yaml: 'backend:\n  xclient: maybe\n', expect: /backend\.xclient: expected true or false/, line: at(2) },
    { name: 'a listener on an address this host does not have', yaml: 'listen: ["192.0.2.55:2525"]\ndomains: [example.net]\n', whole: true, expect: /listen: 192\.0\.2\.55:2525: 192\.0\.2\.55 is not an address of this host/, line: 1 },
    { name: 'a listener by host name', yaml: 'listen: ["localhost:2525"]\ndomains: [example.net]\n', whole: true, expect: /listen\.0: "localhost:2525": the host must be an IP address/, line: 1 },
    { name: 'two listeners on one port', yaml: `listen: ["0.0.0.0:${port}", "127.0.0.1:${port}"]\ndomains: [example.net]\n`, whole: true, expect: new RegExp(`listen\\.1: 127\\.0\\.0\\.1:${port} collides with 0\\.0\\.0\\.0:${port}`), line: 1 },
    { name: 'metrics on the SMTP port', yaml: `listen: ["127.0.0.1:${port}"]\nmetrics:\n  listen: "127.0.0.1:${port}"\ndomains: [example.net]\n`, whole: true, expect: new RegExp(`metrics\\.listen: 127\\.0\\.0\\.1:${port} collides`), line: 3 },
    { name: 'a backend that is Postern\'s own listener', yaml: `listen: ["0.0.0.0:${port}"]\nmetrics:\n  listen: "127.0.0.1:0"\nbackend:\n  port: ${port}\ndomains: [example.net]\n`, whole: true, expect: new RegExp(`backend\\.port: backend 127\\.0\\.0\\.1:${port} is Postern's own SMTP listener \\(listen: 0\\.0\\.0\\.0:${port}\\)`), line: 5 },
    { name: 'a config file that is a directory', yaml: '', env: { POSTERN_CONFIG: path.join(dir, 'adir') }, expect: /adir: cannot read config file: it is a directory/ },
  ];
  return { dir, cases };
}

const broken = await brokenCases();

/** One case: check-config and serve on the same configuration, side by side. */
async function checkBroken(c: Case, i: number): Promise<void> {
  const file = path.join(broken.dir, `case-${i}.yaml`);
  if (c.yaml !== '') fs.writeFileSync(file, c.whole ? c.yaml : BASE + c.yaml, { mode: 0o644 });
  const args = c.yaml !== '' ? ['--config', file] : [];
  const env = { ...(c.yaml === '' && !c.env?.POSTERN_CONFIG ? { POSTERN_DOMAINS: 'example.net', POSTERN_LISTEN: '127.0.0.1:0', POSTERN_METRICS_LISTEN: '127.0.0.1:0' } : {}), ...c.env };
  const opts: CliOptions = c.asUser && root ? { uid: 65534, gid: 65534 } : {};
  const [checked, served] = await Promise.all([runCli(['check-config', ...args], env, opts), serveUntil(args, env, { ...opts, timeoutMs: 60_000 })]);
  const where = c.yaml !== '' && c.line !== undefined ? `${file}:${c.line}:` : '';
  const problems = [
    checked.code !== 2 && `check-config exit ${checked.code}`,
    !c.expect.test(checked.stderr) && `check-config did not say ${c.expect}`,
    where && !checked.stderr.includes(where) && `check-config did not name ${where}`,
    served.started && 'serve started',
    (served.code === 0 || served.code === null) && `serve exit ${served.code}`,
    STACK.test(checked.stderr + checked.stdout) && 'stack trace from check-config',
    STACK.test(served.stderr) && 'stack trace from serve',
  ].filter(Boolean);
  assert.deepEqual(problems, [], `check-config: ${checked.stderr.trim()}\n  serve: ${served.stderr.trim()}`);
}

// Each case is its own test (its own time budget on a busy machine), a few at a time: each is
// two node processes.
describe('check-config refuses every config serve cannot start with', { concurrency: 4 }, () => {
  after(() => fs.rmSync(broken.dir, { recursive: true, force: true }));
  it('the table covers every class of start-up failure', () => assert.ok(broken.cases.length >= 30));
  broken.cases.forEach((c, i) => {
    it(`${c.name}: check-config exits 2 naming key, file and line; serve exits non-zero without listening; no stack trace`, () => checkBroken(c, i));
  });
});

describe('what check-config accepts, serve starts', { concurrency: 2 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-startup-ok-'));
  selfSignedPair(dir, 'ok'); // ok.crt, ok.key: named relative to the TLS config below
  const hasV6 = Object.values(os.networkInterfaces()).some((l) => l?.some((a) => a.address === '::1'));
  // the third element: what serve must warn about once it listens
  const configs: Array<[string, (port: number) => string, RegExp?]> = [
    ['wildcards and IDN in domains', () => 'listen: ["127.0.0.1:0"]\ndomains:\n  - example.net\n  - ".sub.example.net"\n  - "*.wild.example"\n  - bücher.example\n  - foo.github.io\n'],
    ['units and yes/no words', () => `listen: ["127.0.0.1:0"]\ndomains: [example.net]\nbackend:\n  xclient: yes\n  rejectUnauthorized: off\n  idleTimeoutMs: 30s\n  recipientCacheSeconds: 5m\nlimits:\n  maxMessageSize: 10MB\n  maxHeaderBytes: 512KiB\n  socketTimeoutMs: 5m\nreputation:\n  halfLifeHours: 3d\nlog:\n  pretty: no\n`],
    ['TLS named relative to the config, no policy folder beside it', () => `listen: ["127.0.0.1:0"]\ndomains: [example.net]\ntls:\n  cert: ok.crt\n  key: ok.key\n`],
    ['both families on one port', (port) => `listen: ["0.0.0.0:${port}"${hasV6 ? `, "[::]:${port}"` : ''}]\ndomains: [example.net]\n`],
    // a valid address the host has no route to: it starts (workers, so the primary too) and says so
    ['a DNS server the host cannot reach', () => 'listen: ["127.0.0.1:0"]\ndomains: [example.net]\nworkers: 2\ndns:\n  servers: ["[fe80::1%lo]:53"]\n', /no DNS resolver answers: fe80::1%lo:53 unreachable/],
  ];
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, text, warns] of configs) {
    it(`${name}: check-config says ok and serve starts`, async () => {
      const file = path.join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
      fs.writeFileSync(file, text(await freePort()) + 'metrics:\n  listen: "127.0.0.1:0"\n');
      const checked = await runCli(['check-config', '--config', file]);
      assert.equal(checked.code, 0, `${name}: ${checked.stderr}`);
      const served = await serveUntil(['--config', file], {});
      assert.ok(served.started, `${name}: serve did not start: ${served.stderr}`);
      assert.equal(served.code, 0, `${name}: drained and exited 0`);
      assert.doesNotMatch(served.stderr, STACK);
      if (warns) assert.match(served.stdout, warns);
    });
  }
});
