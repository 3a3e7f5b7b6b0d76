/**
 * Forwarding done right, through the gateway with real ARC seals (and, at the end, a trusted
 * forwarder that does not seal, named by its IP address). good.example (p=reject)
 * signs a message; a mailing list authenticates it, tags the subject, adds a footer (the
 * author's DKIM breaks, SPF is the list's: DMARC fails) and ARC-seals it. With the shipped
 * 00-a-forwarders.yaml.sample in place and lists.example in lists/trusted-sealers.txt:
 * accepted, recorded as a local-policy override naming the sealer, counted. Any other sealer,
 * a broken chain, or a sealer that saw DMARC fail: the published p=reject applies.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { forwardThroughList, loopbackResolver } from '../harness/arc.ts';
import { shippedWithSample } from '../harness/gateway.ts';
import { dkimKey, message, sign, type DkimKey } from '../harness/mail.ts';
import { changes, scrape } from '../harness/metrics.ts';
import { sendMail } from '../harness/smtp-client.ts';
import { headerValue, startWorld, type World } from '../harness/world.ts';

describe('ARC trusted sealers through the gateway', () => {
  let w: World;
  let policies: string;
  const lists = { trusted: dkimKey('rsa'), other: dkimKey('ed25519') } satisfies Record<string, DkimKey>;

  before(async () => {
    policies = shippedWithSample('postern-arc-', '00-a-forwarders.yaml', 'trusted-sealers.txt', 'lists.example');
    w = await startWorld({
      policies,
      zone: {
        'lists.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }],
        'arc1._domainkey.lists.example': [{ TXT: lists.trusted.record }],
        'other-list.example': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }],
        'arc1._domainkey.other-list.example': [{ TXT: lists.other.record }],
      },
    });
  });
  after(async () => {
    await w.close();
    fs.rmSync(policies, { recursive: true, force: true });
  });
  beforeEach(() => {
    w.sink.messages.length = 0;
  });

  /** A message of good.example, signed, as it leaves the list sealed by `domain`. */
  const viaList = async (domain: string, key: DkimKey, authResults?: string): Promise<string> => {
    const original = await sign(message({ from: 'alice@good.example', subject: 'minutes' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
    return forwardThroughList(original, {
      resolver: loopbackResolver(w.dns.port), domain, selector: 'arc1', key,
      received: { ip: '127.0.0.1', helo: 'mx.good.example', sender: 'alice@good.example' },
      ...(authResults ? { authResults } : {}),
    });
  };
  const send = (raw: string, from = 'bounce@lists.example') => sendMail(w.gw.port, { from, to: ['user@example.net'], message: raw });
  const overrides = async (): Promise<string> => {
    const text = await (await fetch(`http://127.0.0.1:${w.gw.httpPort}/metrics`)).text();
    return /^postern_policy_overrides_total\{by="arc",policy="reject"\} (\d+)$/m.exec(text)?.[1] ?? '0';
  };

  it('a trusted sealer that saw DMARC pass: accepted, DMARC still fail in the header, recorded as an override with the sealer, counted', async () => {
    const r = await send(await viaList('lists.example', lists.trusted));
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const [m] = await w.sink.waitFor(1);
    const ar = headerValue(m!.raw, 'Authentication-Results') ?? '';
    assert.match(ar, /dkim=fail[^;]*header\.d=good\.example/, ar);
    assert.match(ar, /arc=pass/, ar);
    assert.match(ar, /dmarc=fail[^;]*header\.from=good\.example/, ar);
    const d = w.gw.decisions().at(-1)!;
    assert.deepEqual(d.verdict, { action: 'accept', rule: 'arc-trusted-sealer', reason: 'dmarc-policy' });
    assert.deepEqual(d.override, { type: 'local_policy', by: 'arc', policy: 'reject', rule: 'arc-trusted-sealer', sealer: 'lists.example', comment: 'arc=pass as[1].d=lists.example as[1].s=arc1' });
    assert.deepEqual((d.auth as { arc: unknown }).arc, { result: 'pass', reason: 'i=1 spf=pass dkim=pass dkdomain=good.example dmarc=pass fromdomain=good.example', sealers: ['lists.example'], selectors: ['arc1'], sealer_dmarc: { result: 'pass', from_domain: 'good.example' } });
    const dmarc = (d.auth as { dmarc: { applied: unknown; published: { domain: string; p: string } } }).dmarc;
    assert.deepEqual([dmarc.applied, dmarc.published.domain, dmarc.published.p], [{ tag: 'p', value: 'reject' }, 'good.example', 'reject']);
    assert.equal(await overrides(), '1');
  });

  it('an untrusted sealer: the chain validates, but p=reject applies (550 5.7.1), no override', async () => {
    const r = await send(await viaList('other-list.example', lists.other), 'bounce@other-list.example');
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    assert.match(r.data.text, /^5\.7\.1 Rejected by DMARC policy: good\.example publishes p=reject/);
    const d = w.gw.decisions().at(-1)!;
    assert.equal((d.auth as { arc: { result: string; sealers: string[] } }).arc.result, 'pass');
    assert.deepEqual((d.auth as { arc: { sealers: string[] } }).arc.sealers, ['other-list.example']);
    assert.equal(d.override, undefined);
    assert.equal(w.sink.messages.length, 0);
  });

  it('a broken chain (changed after sealing) from the trusted sealer: arc=fail, p=reject applies', async () => {
    const sealed = await viaList('lists.example', lists.trusted);
    const r = await send(sealed.replace('You are subscribed', 'You were subscribed'));
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    const d = w.gw.decisions().at(-1)!;
    assert.equal((d.auth as { arc: { result: string } }).arc.result, 'fail');
    assert.deepEqual(d.verdict, { action: 'reject', rule: 'dmarc-reject', reason: 'dmarc-policy' });
  });

  it('the trusted sealer recorded DMARC fail: it is not taken at its word, p=reject applies', async () => {
    const r = await send(await viaList('lists.example', lists.trusted, 'lists.example; spf=fail smtp.mailfrom=good.example; dkim=fail header.d=good.example; dmarc=fail header.from=good.example'));
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    const d = w.gw.decisions().at(-1)!;
    assert.deepEqual((d.auth as { arc: { sealer_dmarc: unknown } }).arc.sealer_dmarc, { result: 'fail', from_domain: 'good.example' });
    assert.equal(d.rule, 'dmarc-reject');
  });

  it('the trusted sealer vouched for another From domain: not for this one', async () => {
    const r = await send(await viaList('lists.example', lists.trusted, 'lists.example; spf=pass smtp.mailfrom=bank.example; dmarc=pass header.from=bank.example'));
    assert.equal(r.data?.code, 550, r.data?.lines.join('|'));
    assert.equal(w.gw.decisions().at(-1)!.rule, 'dmarc-reject');
    assert.equal(await overrides(), '1', 'only the first test overrode');
  });
});

describe('a trusted forwarder by IP through the gateway', () => {
  let w: World;
  let policies: string;

  before(async () => {
    // the test client connects from 127.0.0.1: it is the forwarder
    policies = shippedWithSample('postern-fwd-', '00-a-forwarders.yaml', 'trusted-forwarders.txt', '127.0.0.1');
    w = await startWorld({ policies });
  });
  after(async () => {
    await w.close();
    fs.rmSync(policies, { recursive: true, force: true });
  });

  it('mail of a p=reject domain it forwarded (SPF not aligned, no signature): accepted, recorded as override by forwarder, counted', async () => {
    const before = await scrape(w.gw.httpPort);
    const r = await sendMail(w.gw.port, { from: 'forwarded@alias.example', to: ['user@example.net'], message: message({ from: 'alice@good.example' }) });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const [m] = await w.sink.waitFor(1);
    assert.match(headerValue(m!.raw, 'Authentication-Results') ?? '', /dmarc=fail[^;]*header\.from=good\.example/, 'the header still tells the truth');
    const d = w.gw.decisions().at(-1)!;
    assert.deepEqual(d.verdict, { action: 'accept', rule: 'trusted-forwarder-ip', reason: 'dmarc-policy' });
    assert.deepEqual(d.override, { type: 'trusted_forwarder', by: 'forwarder', policy: 'reject', rule: 'trusted-forwarder-ip', comment: 'rule=trusted-forwarder-ip ip=127.0.0.1' });
    assert.deepEqual(changes(before, await scrape(w.gw.httpPort), ['postern_policy_overrides_total']), { 'postern_policy_overrides_total{by="forwarder",policy="reject"}': 1 });
  });

  it('its mail that passes DMARC is no override: nothing recorded, nothing counted', async () => {
    const before = await scrape(w.gw.httpPort);
    const signed = await sign(message({ from: 'bob@good.example' }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });
    const r = await sendMail(w.gw.port, { from: 'bob@good.example', to: ['user@example.net'], message: signed });
    assert.equal(r.data?.code, 250, r.data?.lines.join('|'));
    const d = w.gw.decisions().at(-1)!;
    assert.deepEqual([d.rule, d.override], ['', undefined]);
    assert.deepEqual(changes(before, await scrape(w.gw.httpPort), ['postern_policy_overrides_total']), {});
  });
});
