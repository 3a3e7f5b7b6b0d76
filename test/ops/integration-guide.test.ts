/**
 * docs/integration.md is tested where a tool can test it: Postfix's postconf reads the main.cf
 * and master.cf blocks (an unknown parameter is a warning, and a failure here), postmap runs
 * the header_checks block and Pigeonhole's sieve-test the Sieve script against a message a real
 * Postern quarantined, the Postern YAML blocks load, and the Postern settings named in the
 * migration tables exist. postfix and dovecot-sieve are Debian packages `make test-deps`
 * installs (no service is configured or started).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { configLeaves } from '../../src/config/leaves.ts';
import { ACTIONS } from '../../src/core/verdict.ts';
import { loadPolicies } from '../../src/policy/load.ts';
import { matchSchema, MODES } from '../../src/policy/schema.ts';
import { message } from '../harness/mail.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';
import { ROOT, run } from './helpers/tools.ts';

const GUIDE = fs.readFileSync(path.join(ROOT, 'docs/integration.md'), 'utf8');

/** Fenced blocks by their info string ("master.cf", "master.cf amavis", "yaml postern", …). */
function blocks(info: string): string[] {
  const out: string[] = [];
  const re = /^( *)```([^\n]*)\n([\s\S]*?)^\1```$/gm;
  for (let m = re.exec(GUIDE); m; m = re.exec(GUIDE)) if (m[2]!.trim() === info) out.push(m[3]!.replace(new RegExp(`^${m[1]}`, 'gm'), ''));
  return out;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-guide-'));
fs.chmodSync(dir, 0o755); // sieve-test runs as nobody
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A Postfix config directory: the given main.cf, and Debian's master.cf with `extra` appended. */
function postfixDir(name: string, mainCf: string, extra: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'main.cf'), mainCf);
  fs.writeFileSync(path.join(d, 'master.cf'), fs.readFileSync('/usr/share/postfix/master.cf.dist', 'utf8') + '\n' + extra);
  return d;
}

async function postconf(d: string, flag: string): Promise<string> {
  const r = await run('postconf', ['-c', d, flag]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', `postconf ${flag} warns about the guide's settings`);
  return r.stdout;
}

describe('docs/integration.md: Postfix', () => {
  it('main.cf and the Postern listener in master.cf pass postconf without a warning', async () => {
    const [mainCf] = blocks('main.cf');
    const [master] = blocks('master.cf');
    assert.ok(mainCf && master, 'the guide has a main.cf and a master.cf block');
    const d = postfixDir('plain', mainCf, master);
    const n = await postconf(d, '-n');
    assert.match(n, /^mynetworks = 127\.0\.0\.0\/8 \[::1\]\/128$/m);
    assert.match(n, /^message_size_limit = 10240000$/m);
    const p = await postconf(d, '-P');
    // the listener on Postern's default backend port, with the overrides the guide explains
    const port = loadConfig({ env: {} }).config.backend.port;
    for (const line of ['smtpd_milters =', 'mynetworks = 127.0.0.0/8', 'smtpd_authorized_xclient_hosts = 127.0.0.1', 'smtpd_reject_unlisted_recipient = yes', 'local_header_rewrite_clients =']) {
      assert.ok(p.includes(`127.0.0.1:${port}/inet/${line}`), `master.cf: -o ${line} on 127.0.0.1:${port}`);
    }
    assert.match(await postconf(d, '-M'), new RegExp(`^127\\.0\\.0\\.1:${port} +inet `, 'm'));
  });

  it('postconf would catch a misspelt parameter (the check is not a no-op)', async () => {
    const d = postfixDir('misspelt', 'mynetwork = 127.0.0.0/8\n', '127.0.0.1:10025 inet n - n - - smtpd\n  -o smtpd_miltres=\n');
    assert.match((await run('postconf', ['-c', d, '-P'])).stderr, /unused parameter: smtpd_miltres=/);
    assert.match((await run('postconf', ['-c', d, '-n'])).stderr, /unused parameter: mynetwork=/);
  });

  it('the amavis variant uses another port than amavis\'s 10025, the one its Postern YAML names', async () => {
    const [master] = blocks('master.cf amavis');
    const [yaml] = blocks('yaml postern');
    assert.ok(master && yaml);
    const p = await postconf(postfixDir('amavis', '', master), '-P');
    const port = Number(/^127\.0\.0\.1:(\d+)\/inet\/smtpd_milters =$/m.exec(p)?.[1]);
    assert.notEqual(port, 10025);
    // a missing From is never completed from the envelope sender on Postern's listener
    assert.ok(p.includes(`127.0.0.1:${port}/inet/local_header_rewrite_clients =\n`), 'amavis listener: -o local_header_rewrite_clients=');
    const file = path.join(dir, 'amavis.yaml');
    fs.writeFileSync(file, yaml + 'domains: [example.com]\n');
    assert.equal(loadConfig({ file, env: {} }).config.backend.port, port);
  });
});

describe('docs/integration.md: acting on X-Postern-Quarantine', () => {
  let w: World;
  let quarantined: Buffer;
  let delivered: Buffer;
  before(async () => {
    w = await startWorld({ policies: { '10-q.yaml': 'rules:\n  - name: review\n    match:\n      from_domain: quarantine.example\n    action: quarantine\n' } });
    for (const from of ['bob@quarantine.example', 'bob@good.example']) {
      const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: message({ from }) });
      assert.equal(r.data?.code, 250);
    }
    [quarantined, delivered] = w.sink.messages.map((m) => m.raw) as [Buffer, Buffer];
    assert.match(quarantined.toString(), /^X-Postern-Quarantine: yes; rule=review\r$/m);
  });
  after(() => w.close());

  it('the header_checks line holds the message Postern quarantined, and only that one', async () => {
    const [checks] = blocks('header_checks');
    assert.ok(checks);
    const file = path.join(dir, 'postern_header_checks');
    fs.writeFileSync(file, checks);
    const field = /^X-Postern-Quarantine: .*$/m.exec(quarantined.toString().replace(/\r/g, ''))![0];
    const conf = postfixDir('postmap', '', '');
    const postmap = (key: string) => run('postmap', ['-c', conf, '-q', key, `regexp:${file}`]);
    const hit = await postmap(field);
    assert.equal(hit.code, 0, hit.stderr);
    assert.match(hit.stdout, /^HOLD /);
    const subject = /^Subject: .*$/m.exec(delivered.toString().replace(/\r/g, ''))![0];
    assert.equal((await postmap(subject)).code, 1, 'no match: delivered normally');
  });

  it('the Sieve script files it into Junk, and leaves other mail in INBOX', async () => {
    const [script] = blocks('sieve');
    assert.ok(script);
    fs.mkdirSync(path.join(dir, 'maildir'));
    fs.writeFileSync(path.join(dir, 'dovecot.conf'), `mail_uid = nobody\nmail_gid = nogroup\nmail_location = maildir:${path.join(dir, 'maildir')}\n`);
    fs.writeFileSync(path.join(dir, 'q.sieve'), script);
    fs.writeFileSync(path.join(dir, 'quarantined.eml'), quarantined);
    fs.writeFileSync(path.join(dir, 'delivered.eml'), delivered);
    const test = (eml: string) => run('sieve-test', ['-c', path.join(dir, 'dovecot.conf'), path.join(dir, 'q.sieve'), path.join(dir, eml)]);
    const q = await test('quarantined.eml');
    assert.match(q.stdout, /store message in folder: Junk/, q.stdout + q.stderr);
    const d = await test('delivered.eml');
    assert.match(d.stdout, /store message in folder: INBOX/, d.stdout + d.stderr);
  });
});

describe('docs/integration.md: migration tables', () => {
  it('every Postern setting, rule key, action and shipped rule named there exists', async () => {
    const keys = new Set(configLeaves().flatMap((l) => l.path.map((_, i) => l.path.slice(0, i + 1).join('.'))));
    const matchKeys = new Set(Object.keys(matchSchema.shape));
    const shipped = new Set((await loadPolicies(path.join(ROOT, 'policies'))).rules.map((r) => r.name));
    const section = GUIDE.slice(GUIDE.indexOf('## Moving from the OpenDKIM'), GUIDE.indexOf('## Microsoft Exchange'));
    const cells = [...section.matchAll(/^\| `[^|]*\| (.*) \|$/gm)].map((m) => m[1]!);
    assert.ok(cells.length >= 12, `found ${cells.length} rows`);
    const unknown: string[] = [];
    let checked = 0;
    for (const cell of cells) {
      for (const [, token] of cell.matchAll(/`([^`]+)`/g)) {
        const pair = /^(action|mode): (\w+)$/.exec(token!);
        const known = pair ? (pair[1] === 'action' ? (ACTIONS as readonly string[]) : MODES).includes(pair[2]!)
          : /^[a-z][\w.-]*$/i.test(token!) ? keys.has(token!) || matchKeys.has(token!) || shipped.has(token!) || (ACTIONS as readonly string[]).includes(token!)
          : true; // a reply or a value, not a name
        if (!known) unknown.push(token!);
        checked++;
      }
    }
    assert.deepEqual(unknown, []);
    assert.ok(checked >= 15, `${checked} names checked`);
  });
});
