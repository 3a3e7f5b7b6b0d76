/**
 * The lifecycle an operator drives with signals, on the real CLI in a child process:
 * - SIGTERM during a 100 KB transaction: the transaction completes (250, the message at the
 *   backend), a new connection meanwhile gets 421 4.3.2, and the process exits 0.
 * - SIGHUP with a broken policy file: refused, logged with file:line, counted in /metrics, the
 *   old policy stays in force; a fixed file is then taken.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { message } from '../harness/mail.ts';
import { sendMail, SmtpTestClient } from '../harness/smtp-client.ts';
import type { ChildGateway } from '../harness/child-gateway.ts';
import type { HeldBackend } from './helpers/held-backend.ts';
import { atData, startSignalWorld, type SignalWorld } from './helpers/signal-world.ts';

const GOOD = { from: 'bob@good.example', to: ['user@example.net'] };

/** A message of about `kb` KB (76-character lines), ending with a marker line. */
function bigMessage(kb: number, marker: string): string {
  const line = 'x'.repeat(76) + '\r\n';
  return message({ from: GOOD.from, body: line.repeat(Math.ceil((kb * 1024) / line.length)) + marker + '\r\n' });
}

async function metric(port: number, series: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

describe('signals on the real CLI', () => {
  let world: SignalWorld;
  let backend: HeldBackend;
  const start = (extra: Record<string, string> = {}): Promise<ChildGateway> => world.start(extra);
  before(async () => {
    world = await startSignalWorld();
    backend = world.backend;
  });
  after(() => world.close());

  it('SIGTERM mid-transaction: the 100 KB message is delivered (250), new connections get 421, exit 0', async () => {
    const gw = await start({ POSTERN_POLICIES: path.resolve(import.meta.dirname, '../../policies') });
    const client = await atData(gw.smtpPort, GOOD.from, GOOD.to[0]!);
    try {
      const marker = `end-of-message-${process.pid}`;
      const body = bigMessage(100, marker);
      assert.ok(body.length >= 100 * 1024);
      const final = client.data(body, 20_000);

      // The gateway has relayed the whole message and waits for the backend's verdict.
      await backend.held();
      gw.signal('SIGTERM');
      await gw.waitForLog((l) => l.msg === 'draining' && l.signal === 'SIGTERM');

      const late = await SmtpTestClient.connect(gw.smtpPort);
      assert.equal(late.greeting.code, 421);
      assert.match(late.greeting.text, /^4\.3\.2 Service shutting down/);
      late.client.destroy();
      assert.equal(backend.messages.length, 0, 'the backend has not answered yet');

      backend.release();
      const reply = await final;
      assert.equal(reply.code, 250, reply.lines.join('\n'));
      assert.match(reply.text, /^2\.0\.0 Ok: queued as H1/);
      assert.equal(backend.messages.length, 1);
      const got = backend.messages[0]!;
      assert.deepEqual([got.from, got.to], [GOOD.from, GOOD.to]);
      assert.ok(got.raw.length > 100 * 1024, `${got.raw.length} bytes at the backend`);
      assert.ok(got.raw.toString('latin1').endsWith(`\r\n${marker}\r\n`), 'the whole message, up to its last line');
    } finally {
      client.destroy();
    }
    assert.equal(await gw.exited, 0);
    assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
    const decisions = gw.logs.filter((l) => l.event === 'decision');
    assert.deepEqual(decisions.map((l) => [l.action, l.backend]), [['accept', '250 2.0.0 Ok: queued as H1']]);
  });

  it('SIGHUP with a broken policy file: refused with file:line, counted, old policy enforced; a fixed file is taken', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-sighup-'));
    world.keep(dir);
    const file = path.join(dir, '10-main.yaml');
    fs.writeFileSync(file, 'rules:\n  - name: reject-all\n    match: {}\n    action: reject\n');
    backend.hold = false;
    const gw = await start({ POSTERN_POLICIES: dir });
    const send = (): ReturnType<typeof sendMail> => sendMail(gw.smtpPort, { ...GOOD, message: message({ from: GOOD.from }) });
    assert.equal((await send()).mail.code, 550, 'reject-all in force before the reload');

    fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: acept\n');
    gw.signal('SIGHUP');
    const failed = await gw.waitForLog((l) => l.msg === 'reload failed (policy, list or config), keeping the previous one');
    assert.equal(failed.level, 50);
    assert.match(String(failed.err), new RegExp(`${file.replaceAll('.', '\\.')}:4:\\d+: .*action`));
    assert.equal((await send()).mail.code, 550, 'the old policy (reject-all) is still enforced');
    assert.equal(await metric(gw.httpPort, 'postern_policy_reloads_total{outcome="failed"}'), 1);
    assert.equal(await metric(gw.httpPort, 'postern_policy_reloads_total{outcome="ok"}'), 1, 'only the initial load');

    fs.writeFileSync(file, 'rules:\n  - name: accept-all\n    match: {}\n    action: accept\n');
    gw.signal('SIGHUP');
    await gw.waitForLog((l) => l.msg === 'configuration and policies reloaded');
    const r = await send();
    assert.equal(r.mail.code, 250);
    assert.equal(r.data?.code, 250);
    assert.equal(await metric(gw.httpPort, 'postern_policy_reloads_total{outcome="ok"}'), 2);

    gw.signal('SIGTERM');
    assert.equal(await gw.exited, 0);
  });
});
