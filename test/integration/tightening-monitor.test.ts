/**
 * The tightening recipe (README "Tightening weak domains") through the gateway: the shipped
 * 60-tighten-weak-domains.yaml.sample, in monitor mode as shipped, with weak.example (p=none)
 * listed. Spoofed mail of weak.example is accepted, and both signals the README points to say
 * what enforcing would do: `would_have` in the decision line and
 * postern_monitor_would_have_total. Then `mode: monitor` is deleted and the policies reloaded:
 * the same mail is refused with the rule's reply.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { shippedWithSample } from '../harness/gateway.ts';
import { message } from '../harness/mail.ts';
import { changes, scrape } from '../harness/metrics.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { startWorld, type World } from '../harness/world.ts';

describe('tightening a p=none domain: monitor mode through the gateway, then enforced', () => {
  let w: World;
  let policies: string;
  const METRICS = ['postern_monitor_would_have_total'];

  before(async () => {
    policies = shippedWithSample('postern-tighten-', '60-tighten-weak-domains.yaml', 'tighten-reject.txt', 'weak.example');
    w = await startWorld({
      policies,
      zone: {
        'weak.example': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
        '_dmarc.weak.example': [{ TXT: 'v=DMARC1; p=none' }],
      },
    });
  });
  after(async () => {
    await w.close();
    fs.rmSync(policies, { recursive: true, force: true });
  });

  const spoof = () => sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@weak.example' }) });

  it('monitor mode: accepted; would_have in the decision line; postern_monitor_would_have_total counts it', async () => {
    const before = await scrape(w.gw.httpPort);
    const r = await spoof();
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const d = w.gw.decisions().at(-1)!;
    assert.equal(d.from_domain, 'weak.example');
    assert.deepEqual([d.action, d.rule], ['accept', 'tighten-reject']);
    assert.deepEqual(d.would_have, { action: 'reject', rule: 'tighten-reject' });
    assert.deepEqual(changes(before, await scrape(w.gw.httpPort), METRICS), { 'postern_monitor_would_have_total{action="reject",rule="tighten-reject"}': 1 });
  });

  it('mail of an unlisted p=none domain is not counted', async () => {
    const before = await scrape(w.gw.httpPort);
    const r = await sendMail(w.gw.port, { from: 'x@other.example', to: ['user@example.net'], message: message({ from: 'ceo@other.example' }) });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    assert.equal(w.gw.decisions().at(-1)!.would_have, undefined);
    assert.deepEqual(changes(before, await scrape(w.gw.httpPort), METRICS), {});
  });

  it('enforced (mode: monitor deleted, reloaded): the same mail is refused with the rule reply, no would_have', async () => {
    const file = path.join(policies, '60-tighten-weak-domains.yaml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^mode: monitor$/m, ''));
    await w.gw.gateway.reload();
    const before = await scrape(w.gw.httpPort);
    const r = await spoof();
    assert.equal(r.data?.code, 550);
    assert.match(r.data.text, /^5\.7\.1 Rejected by local policy: mail from weak\.example must pass DMARC here/);
    const d = w.gw.decisions().at(-1)!;
    assert.deepEqual([d.action, d.rule, d.would_have], ['reject', 'tighten-reject', undefined]);
    assert.deepEqual(changes(before, await scrape(w.gw.httpPort), METRICS), {});
  });
});
