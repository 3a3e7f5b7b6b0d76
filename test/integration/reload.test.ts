/**
 * SIGHUP on a real gateway process: the config file, the policies and the allow/block lists
 * are re-read; hot settings apply to the next transaction, restart-only ones are named; a
 * file check-config would refuse is refused and the running configuration stays.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startDnsServer, type DnsTestServer } from '../harness/dns-server.ts';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { startSink, type Sink } from '../harness/sink.ts';
import { SHIPPED_POLICIES } from '../harness/gateway.ts';
import { startChildGateway, type ChildGateway, type LogLine } from '../harness/child-gateway.ts';

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('SIGHUP reload of config and lists', () => {
  let dir: string;
  let dns: DnsTestServer;
  let sink: Sink;
  let gw: ChildGateway;
  const configFile = (): string => path.join(dir, 'postern.yaml');
  const writeConfig = (domains: string[], listen = '127.0.0.1:0'): void => {
    fs.writeFileSync(configFile(), stringify({
      listen: [listen], domains, backend: { port: sink.port }, dns: { servers: [`127.0.0.1:${dns.port}`] },
      metrics: { listen: '127.0.0.1:0' }, policies: SHIPPED_POLICIES, lists: { block: path.join(dir, 'block.txt') },
    }));
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-reload-'));
    dns = await startDnsServer({ 'good.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }] });
    sink = await startSink();
    fs.writeFileSync(path.join(dir, 'block.txt'), '# nobody blocked yet\n');
    writeConfig(['a.example']);
    gw = await startChildGateway({ POSTERN_CONFIG: configFile() });
  });
  after(async () => {
    await gw.kill();
    await sink.close();
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const rcpt = async (address: string): Promise<number> => {
    const { client } = await SmtpTestClient.connect(gw.smtpPort);
    try {
      await client.cmd('EHLO client.example');
      await client.cmd('MAIL FROM:<bob@good.example>');
      return (await client.cmd(`RCPT TO:<${address}>`)).code;
    } finally {
      await client.quit();
    }
  };
  const reloaded = async (n: number): Promise<void> => {
    gw.signal('SIGHUP');
    await gw.waitForLog((l) => l.msg === 'configuration and policies reloaded' && gw.logs.filter((x) => x.msg === l.msg).length >= n);
  };

  it('a new domain is accepted after SIGHUP, a changed listener is named as needing a restart', async () => {
    assert.equal(await rcpt('user@b.example'), 550);
    writeConfig(['a.example', 'b.example'], '127.0.0.1:1');
    await reloaded(1);
    assert.equal(await rcpt('user@b.example'), 250);
    const warning = await gw.waitForLog((l) => /take effect only after a restart/.test(String(l.msg)));
    assert.deepEqual(warning.keys, ['listen']);
  });

  it('a reload check-config would refuse (no domains, a public suffix) is refused: the running config stays, logged with file:line and counted', async () => {
    const failures = (): LogLine[] => gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('reload failed'));
    const refused = async (n: number): Promise<string> => {
      gw.signal('SIGHUP');
      await gw.waitForLog(() => failures().length >= n);
      return String(failures()[n - 1]?.err);
    };
    writeConfig([]);
    assert.match(await refused(1), new RegExp(`^${escape(configFile())}:\\d+:\\d+: domains: no recipient domains configured`));
    assert.equal(await rcpt('user@a.example'), 250, 'the running domains stay');

    writeConfig(['a.example', '.com']);
    assert.match(await refused(2), new RegExp(`^${escape(configFile())}:\\d+:\\d+: domains\\.1: "\\.com" covers the public suffix "com"`));
    assert.equal(await rcpt('user@gmail.com'), 550, 'never an open relay');
    assert.equal(await rcpt('user@b.example'), 250);

    const metrics = await (await fetch(`http://127.0.0.1:${gw.httpPort}/metrics`)).text();
    assert.match(metrics, /^postern_policy_reloads_total\{outcome="failed"\} 2$/m);
    assert.equal(gw.logs.filter((l) => l.msg === 'configuration and policies reloaded').length, 1, 'no reload applied');
    writeConfig(['a.example', 'b.example'], '127.0.0.1:1'); // as the first test left it
  });

  it('an address added to the block list is refused at the greeting after SIGHUP', async () => {
    fs.writeFileSync(path.join(dir, 'block.txt'), '127.0.0.1\n');
    await reloaded(2);
    const { client, greeting } = await SmtpTestClient.connect(gw.smtpPort);
    client.destroy();
    assert.equal(greeting.code, 421);
    assert.match(greeting.text, /^4\.7\.0 Mail from your address is not accepted at this time/);
  });
});
