/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { sealMessage } from 'mailauth';
import { authenticateMessage, type MessageAuthOutcome } from '../../../src/auth/message.ts';
import { checkSpf } from '../../../src/auth/spf.ts';
import { ed25519Key, rsaKey, sign, type TestKey } from './keys.ts';
import { txt, zoneResolver, type Zone } from './zone.ts';

const HOST = 'mx.postern.test';
const IP = '192.0.2.1';

let rsa: TestKey;
let ed: TestKey;
let small: TestKey;

before(() => {
  rsa = rsaKey(2048);
  ed = ed25519Key();
  small = rsaKey(1024);
});

function message(from = 'Alice <alice@example.com>', extra = ''): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: bob@example.org\r\nSubject: Quarterly figures\r\n` +
      `Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <abc.123@example.com>\r\n${extra}\r\n` +
      'Hello Bob,\r\nthe figures are attached.\r\n',
  );
}

/** RFC 5322 §2.2.3 unfolding. */
const unfold = (value: string): string => value.replace(/\r\n(?=[ \t])/g, '');

/** A zone where example.com publishes SPF for 192.0.2.1 and the DKIM keys. */
function baseZone(): Zone {
  return {
    'TXT example.com': txt('v=spf1 ip4:192.0.2.1 -all'),
    'TXT other.example': txt('v=spf1 -all'),
    'TXT rsa._domainkey.example.com': txt(rsa.record),
    'TXT ed._domainkey.example.com': txt(ed.record),
    'TXT small._domainkey.example.com': txt(small.record),
    'TXT rsa._domainkey.mail.example.com': txt(rsa.record),
    'TXT _dmarc.example.com': txt('v=DMARC1; p=reject'),
  };
}

async function authenticate(
  msg: Buffer | Readable,
  opts: { zone?: Zone; sender?: string; minBitLength?: number; now?: number } = {},
): Promise<MessageAuthOutcome> {
  const { resolver } = zoneResolver(opts.zone ?? baseZone());
  const sender = opts.sender ?? 'bounce@other.example';
  const spf = await checkSpf({ ip: IP, helo: 'client.example.com', sender, hostname: HOST, resolver, strict: true });
  return authenticateMessage({
    message: msg, ip: IP, sender, spf, hostname: HOST, resolver, strict: true, minBitLength: opts.minBitLength ?? 1024,
    ...(opts.now !== undefined ? { now: opts.now } : {}),
  });
}

describe('DKIM through authenticateMessage (strict)', () => {
  it('rsa-sha256 signature passes and aligns', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa }));
    assert.deepEqual(out.dkim, [
      { result: 'pass', domain: 'example.com', selector: 'rsa', algorithm: 'rsa-sha256', aligned: true, reason: '' },
    ]);
  });

  it('ed25519-sha256 signature passes (RFC 8463)', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'ed', key: ed }));
    assert.equal(out.dkim.length, 1);
    assert.equal(out.dkim[0]?.result, 'pass');
    assert.equal(out.dkim[0]?.algorithm, 'ed25519-sha256');
  });

  it('altered body fails (RFC 6376 §6.1.3: body hash mismatch is a PERMFAIL, reported as fail)', async () => {
    const signed = await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa });
    const altered = Buffer.from(signed.toString().replace('the figures are attached', 'the figures are ATTACHED'));
    const out = await authenticate(altered);
    assert.equal(out.dkim[0]?.result, 'fail');
    assert.equal(out.dkim[0]?.reason, 'body hash did not verify');
  });

  it('altered signed header fails with a bad signature', async () => {
    const signed = await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa });
    const altered = Buffer.from(signed.toString().replace('Subject: Quarterly figures', 'Subject: Urgent wire transfer'));
    const out = await authenticate(altered);
    assert.equal(out.dkim[0]?.result, 'fail');
    assert.equal(out.dkim[0]?.reason, 'bad signature');
  });

  it('missing key record: mailauth strict reports neutral "no key" (RFC 8601 §2.7.1: not able to be processed)', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'gone', key: rsa }));
    assert.equal(out.dkim[0]?.result, 'neutral');
    assert.equal(out.dkim[0]?.reason, 'no key');
  });

  it('x= in the past is neutral "expired"; the injected clock decides what "now" is', async () => {
    const t = Date.UTC(2025, 0, 1);
    const signed = await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa, signTime: new Date(t), expires: new Date(t + 3600_000) });
    const late = await authenticate(signed, { now: t + 7200_000 });
    assert.equal(late.dkim[0]?.result, 'neutral');
    assert.equal(late.dkim[0]?.reason, 'expired');
    const inTime = await authenticate(signed, { now: t + 60_000 });
    assert.equal(inTime.dkim[0]?.result, 'pass');
  });

  it('key lookup timeout is temperror', async () => {
    const zone = { ...baseZone(), 'TXT rsa._domainkey.example.com': 'ETIMEOUT' as const };
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa }), { zone });
    assert.equal(out.dkim[0]?.result, 'temperror');
  });

  it('rsa-sha1 under strict is policy (RFC 8301 §3.1 weak-algorithm)', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa, algorithm: 'rsa-sha1' }));
    assert.equal(out.dkim[0]?.result, 'policy');
    assert.equal(out.dkim[0]?.reason, 'weak algorithm; dkim-rules=weak-algorithm');
    // aligned describes the domains (d= is the From domain); DMARC does not count the signature
    assert.equal(out.dkim[0]?.aligned, true);
    assert.equal(out.dmarc?.dkimAligned, false);
    assert.equal(out.dmarc?.result, 'fail');
  });

  it('a key shorter than minBitLength is policy (weak-key)', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'small', key: small }), { minBitLength: 2048 });
    assert.equal(out.dkim[0]?.result, 'policy');
    assert.equal(out.dkim[0]?.reason, 'dkim-rules=weak-key');
  });

  it('unsigned message: no signature facts, dkim=none in the header', async () => {
    const out = await authenticate(message());
    assert.deepEqual(out.dkim, []);
    assert.match(out.authResults, /\r\n dkim=none \(message not signed\);\r\n/);
  });

  it('reads a stream as well as a buffer', async () => {
    const signed = await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa });
    const out = await authenticate(Readable.from([signed.subarray(0, 100), signed.subarray(100)]));
    assert.equal(out.dkim[0]?.result, 'pass');
  });
});

describe('DMARC through authenticateMessage', () => {
  it('passes through SPF alignment (relaxed, RFC 9989 §4.4.2)', async () => {
    const zone = { ...baseZone(), 'TXT mail.example.com': txt('v=spf1 ip4:192.0.2.1 -all') };
    const out = await authenticate(message(), { zone, sender: 'bounce@mail.example.com' });
    assert.deepEqual(out.dmarc, {
      result: 'pass', domain: 'example.com', policy: 'reject', spfAligned: true, dkimAligned: false,
      applied: { tag: 'p', value: 'reject' },
      reason: 'p=REJECT arc=none; dmarc=reject',
      // the applied record, for aggregate reports (RFC 9990 §2.1 policy_published)
      published: { domain: 'example.com', p: 'reject', sp: null, np: null, adkim: 'r', aspf: 'r', testing: false, psd: 'u', fo: null, discovery: 'treewalk', rua: [], ruf: [] },
    });
    assert.equal(out.fromDomain, 'example.com');
  });

  it('passes through DKIM alignment while SPF fails', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa }));
    assert.equal(out.dmarc?.result, 'pass');
    assert.equal(out.dmarc?.dkimAligned, true);
    assert.equal(out.dmarc?.spfAligned, false);
  });

  for (const p of ['reject', 'quarantine', 'none'] as const) {
    it(`fails with p=${p} and reports that policy`, async () => {
      const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt(`v=DMARC1; p=${p}`) };
      const out = await authenticate(message(), { zone });
      assert.equal(out.dmarc?.result, 'fail');
      assert.equal(out.dmarc?.policy, p);
      assert.equal(out.dmarc?.domain, 'example.com');
      assert.match(unfold(out.authResults), new RegExp(` dmarc=fail \\(p=${p.toUpperCase()} arc=none\\) policy\\.dmarc=${p} header\\.from=example\\.com$`));
    });
  }

  it('applies sp= to a subdomain author (RFC 9989 §4.10.1)', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt('v=DMARC1; p=reject; sp=quarantine') };
    const out = await authenticate(message('news@news.example.com'), { zone });
    assert.equal(out.fromDomain, 'news.example.com');
    assert.equal(out.dmarc?.result, 'fail');
    assert.equal(out.dmarc?.policy, 'quarantine');
    // the record that decided is the organizational domain's, and what applied there is sp=
    assert.equal(out.dmarc?.published?.domain, 'example.com');
    assert.deepEqual(out.dmarc?.applied, { tag: 'sp', value: 'quarantine' });
  });

  it('a subdomain without sp= inherits p=, and says so', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt('v=DMARC1; p=reject') };
    const out = await authenticate(message('news@news.example.com'), { zone });
    assert.equal(out.dmarc?.published?.domain, 'example.com');
    assert.deepEqual(out.dmarc?.applied, { tag: 'p', value: 'reject' });
  });

  it('t=y: the published value is reported, the applied policy is one step weaker', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt('v=DMARC1; p=reject; t=y') };
    const out = await authenticate(message(), { zone });
    assert.equal(out.dmarc?.policy, 'quarantine');
    assert.deepEqual(out.dmarc?.applied, { tag: 'p', value: 'reject' });
  });

  it('applies np= to a non-existent subdomain', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt('v=DMARC1; p=none; sp=none; np=reject') };
    const out = await authenticate(message('ceo@nowhere.example.com'), { zone });
    assert.equal(out.dmarc?.policy, 'reject');
    assert.equal(out.dmarc?.published?.domain, 'example.com');
    assert.deepEqual(out.dmarc?.applied, { tag: 'np', value: 'reject' });
  });

  it('none with no policy when no record is published', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': 'ENODATA' as const };
    const out = await authenticate(message(), { zone });
    assert.equal(out.dmarc?.result, 'none');
    assert.equal(out.dmarc?.policy, null);
    assert.match(unfold(out.authResults), / dmarc=none header\.from=example\.com$/);
  });

  it('temperror when the record lookup times out', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': 'ETIMEOUT' as const };
    const out = await authenticate(message(), { zone });
    assert.equal(out.dmarc?.result, 'temperror');
    assert.equal(out.dmarc?.policy, null);
  });

  it('adkim=s: a passing signature of a subdomain is not aligned (authenticate() fix-up)', async () => {
    const zone = { ...baseZone(), 'TXT _dmarc.example.com': txt('v=DMARC1; p=reject; adkim=s') };
    const out = await authenticate(await sign(message(), { domain: 'mail.example.com', selector: 'rsa', key: rsa }), { zone });
    assert.equal(out.dkim[0]?.result, 'pass');
    assert.equal(out.dkim[0]?.aligned, false);
    assert.equal(out.dmarc?.result, 'fail');
  });

  it('no From field: dmarc null, reason no-author-domain', async () => {
    const msg = Buffer.from('To: bob@example.org\r\nSubject: x\r\n\r\nbody\r\n');
    const out = await authenticate(msg);
    assert.equal(out.dmarc, null);
    assert.equal(out.fromDomain, null);
    assert.equal(out.dmarcSkipReason, 'no-author-domain');
    assert.match(unfold(out.authResults), / dmarc=permerror \(no-author-domain\)$/);
  });

  it('two From fields: dmarc null, reason multiple-from-fields', async () => {
    const out = await authenticate(message('alice@example.com', 'From: mallory@evil.example\r\n'));
    assert.equal(out.dmarc, null);
    assert.equal(out.fromDomain, null);
    assert.equal(out.dmarcSkipReason, 'multiple-from-fields');
  });
});

describe('broken DNS never rejects', () => {
  it('a resolver that throws synchronously gives temperror results', async () => {
    const signed = await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa });
    const resolver = (): Promise<string[][]> => {
      throw Object.assign(new Error('socket closed'), { code: 'ECONNREFUSED' });
    };
    const spf = await checkSpf({ ip: IP, helo: 'c.example', sender: 'a@example.com', hostname: HOST, resolver, strict: true });
    const out = await authenticateMessage({ message: signed, ip: IP, sender: 'a@example.com', spf, hostname: HOST, resolver, strict: true, minBitLength: 1024 });
    assert.deepEqual([spf.facts.result, out.dkim[0]?.result, out.dmarc?.result], ['temperror', 'temperror', 'temperror']);
  });
});

describe('ARC and the Authentication-Results value', () => {
  it('arc=none for a message without a chain, and all four methods under our authserv-id', async () => {
    const out = await authenticate(await sign(message(), { domain: 'example.com', selector: 'rsa', key: rsa }));
    assert.deepEqual(out.arc, { result: 'none', reason: '' });
    const lines = out.authResults.split('\r\n');
    assert.equal(lines[0], `${HOST};`);
    assert.match(lines[1] ?? '', /^ spf=fail \(/);
    const methods = out.authResults.replace(/\r\n/g, '').split(';').map((e) => /^\s*(\w+)=/.exec(e)?.[1]).filter(Boolean);
    assert.deepEqual(methods, ['spf', 'dkim', 'arc', 'dmarc']);
    assert.match(out.authResults, /\r\n arc=none smtp\.remote-ip=192\.0\.2\.1;\r\n/);
    for (const line of lines.slice(1)) {
      assert.ok(line.startsWith(' ') || line.startsWith('\t'), `continuation line: ${line}`);
      assert.ok(line.length <= 78 || !/\s/.test(line.trim()), `folded: ${line}`);
    }
    assert.equal(out.messageId, '<abc.123@example.com>');
  });

  it('arc=pass for a chain sealed by a trusted intermediary', async () => {
    const zone = { ...baseZone(), 'TXT arc._domainkey.lists.example.net': txt(rsa.record) };
    const original = message();
    const seal = await sealMessage(original, {
      signingDomain: 'lists.example.net', selector: 'arc', privateKey: rsa.privateKeyPem, cv: 'none',
      authResults: 'lists.example.net; spf=pass smtp.mailfrom=example.com',
    });
    const out = await authenticate(Buffer.concat([seal, original]), { zone });
    assert.equal(out.arc.result, 'pass');
  });
});
