/**
 * The header guard on its own: what reaches the verifier, chunk boundaries anywhere, and the
 * limit it reports. The SMTP-level behaviour (552 5.3.4, /healthz answering) is in
 * test/integration/hostile-headers.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderGuard, fieldKey, type HeaderLimits } from '../../../src/message/header-guard.ts';

const LIMITS: HeaderLimits = { maxHeaderBytes: 100_000, maxFields: 100, maxFieldLines: 50, maxLines: 500, maxDkimSignatures: 2, maxHeaderNames: 100 };

/** Feeds `input` in pieces of `size` bytes; resolves with the output, or the error. */
async function run(input: string, limits: HeaderLimits = LIMITS, size = 7): Promise<{ out: string; guard: HeaderGuard; error: Error | null }> {
  const guard = new HeaderGuard(limits);
  const parts: Buffer[] = [];
  const done = new Promise<Error | null>((resolve) => {
    guard.on('data', (c: Buffer) => parts.push(c));
    guard.on('end', () => resolve(null));
    guard.on('error', (err) => resolve(err));
  });
  const bytes = Buffer.from(input, 'latin1');
  for (let i = 0; i < bytes.length && !guard.destroyed; i += size) guard.write(bytes.subarray(i, i + size));
  if (!guard.destroyed) guard.end();
  const error = await done;
  return { out: Buffer.concat(parts).toString('latin1'), guard, error };
}

describe('header guard', () => {
  it('passes a message through unchanged, at any chunk size', async () => {
    const msg = 'From: a@b.example\r\nSubject: hello\r\n folded\r\n\tagain\r\n\r\nbody line\r\n\r\nFrom: not a header\r\n';
    for (const size of [1, 2, 3, 5, 64, 4096]) {
      const { out, guard, error } = await run(msg, LIMITS, size);
      assert.equal(error, null);
      assert.equal(out, msg, `chunk size ${size}`);
      assert.equal(guard.breach, null);
    }
  });

  it('passes a message without a body (no blank line) and one without a final CRLF', async () => {
    for (const msg of ['From: a@b.example\r\nSubject: x\r\n', 'From: a@b.example\r\nSubject: x']) {
      const { out, error } = await run(msg);
      assert.equal(error, null);
      assert.equal(out, msg);
    }
  });

  it('withholds DKIM-Signature fields after the first maxDkimSignatures, whatever their spelling', async () => {
    const sig = (n: number): string => `DKIM-Signature: v=1; d=d${n}.example; s=s;\r\n b=abc${n}\r\n`;
    const msg = sig(1) + 'dkim-signature : v=1; d=d2.example\r\n' + sig(3) + 'DKIM-Signature\r\n : v=1; d=d4.example\r\n' + 'From: a@b.example\r\n\r\nbody\r\n';
    const { out, guard } = await run(msg);
    assert.equal(guard.withheldSignatures, 2);
    assert.match(out, /d1\.example/);
    assert.match(out, /d2\.example/);
    assert.doesNotMatch(out, /d3\.example|d4\.example/);
    assert.match(out, /From: a@b\.example\r\n\r\nbody\r\n$/);
  });

  it('past the cap, keeps the signatures aligned with the From domain (relaxed) first, then top down; header order unchanged', async () => {
    const sig = (d: string): string => `DKIM-Signature: v=1; a=rsa-sha256; d=${d}; s=s;\r\n h=from:to; b=abc\r\n`;
    const top = ['junk1.example', 'junk2.example', 'junk3.example'].map(sig).join('');
    for (const [author, kept] of [
      ['a@b.example', ['junk1.example', 'b.example']],
      ['"A" <a@news.b.example>', ['junk1.example', 'b.example']], // same organizational domain
      ['a@b.example.evil.example', ['junk1.example', 'junk2.example']], // not aligned: top down
      ['undisclosed-recipients:;', ['junk1.example', 'junk2.example']], // no author
    ] as const) {
      const { out, guard } = await run(`${top}Received: x\r\n${sig('b.example')}From: ${author}\r\n\r\nbody\r\n`, LIMITS, 5);
      assert.equal(guard.withheldSignatures, 2, author);
      assert.deepEqual([...out.matchAll(/d=([a-z0-9.]+);/g)].map((m) => m[1]), kept, author);
      assert.match(out, /^DKIM-Signature: [^]*Received: x\r\n(DKIM-Signature: [^]*)?From: /, 'the fields keep their order');
    }
    const sub = await run(`${sig('x.example')}${sig('y.example')}${sig('mail.b.example')}From: a@b.example\r\n\r\n`);
    assert.deepEqual([...sub.out.matchAll(/d=([a-z0-9.]+);/g)].map((m) => m[1]), ['x.example', 'mail.b.example'], 'a subdomain signer aligns too');
  });

  it('withholds signatures whose h= lists more than maxHeaderNames names (folded or not, DKIM and ARC), without a place among the verified', async () => {
    const names = (n: number): string => Array.from({ length: n }, (_, i) => `x${i}`).join(':');
    const msg = [
      `DKIM-Signature: v=1; d=bomb1.example; s=s; h=${names(101)}; b=a`,
      `DKIM-Signature: v=1; d=bomb2.example; s=s; h=${names(60)}:\r\n\t${names(41)}; b=a`,
      `ARC-Message-Signature: i=1; d=bomb3.example; s=s; h=${names(500)}; b=a`,
      `DKIM-Signature: v=1; d=ok1.example; s=s; h=${names(100)}; b=a`,
      `ARC-Message-Signature: i=1; d=ok2.example; s=s; h = from : to ; b=a`,
      `DKIM-Signature: v=1; d=ok3.example; s=s; h=from; b=a`,
      'From: a@b.example', '', 'body', '',
    ].join('\r\n');
    const { out, guard } = await run(msg, LIMITS, 64);
    assert.equal(guard.oversignedSignatures, 2, 'DKIM-Signatures only: the withheld ARC-Message-Signature is not a DKIM result');
    assert.equal(guard.withheldSignatures, 0, 'the two reasonable DKIM signatures fit under maxDkimSignatures 2');
    assert.deepEqual([...out.matchAll(/d=([a-z0-9.]+);/g)].map((m) => m[1]), ['ok1.example', 'ok2.example', 'ok3.example']);
  });

  it('stops, feeding nothing, when the first line starts with whitespace (space or tab, even split over chunks)', async () => {
    for (const msg of [' Subject: continues something\r\nFrom: a@b.example\r\n\r\nbody\r\n', '\tx\r\nFrom: a@b.example\r\n\r\n', ' ']) {
      const { out, guard, error } = await run(msg);
      assert.equal(guard.malformed, 'leading-whitespace', JSON.stringify(msg));
      assert.equal(guard.breach, null);
      assert.equal(out, '');
      assert.equal(error?.name, 'HeaderSyntaxError');
    }
    const later = await run('From: a@b.example\r\n continued\r\n\r\n body may start with a space\r\n');
    assert.equal(later.guard.malformed, null, 'whitespace after the first line is a fold, or body');
    assert.equal(later.error, null);
  });

  const cases: Array<[string, string, keyof HeaderLimits | null, string]> = [
    ['header-field-lines', 'X-Long: a\r\n' + ' b\r\n'.repeat(50) + '\r\nbody\r\n', 'maxFieldLines', 'X-Long: a\r\n' + ' b\r\n'.repeat(49) + '\r\nbody\r\n'],
    ['header-fields', Array.from({ length: 101 }, (_, i) => `X-${i}: v\r\n`).join('') + '\r\nbody\r\n', 'maxFields', Array.from({ length: 100 }, (_, i) => `X-${i}: v\r\n`).join('') + '\r\nbody\r\n'],
    ['header-lines', Array.from({ length: 20 }, (_, i) => `X-${i}: v\r\n` + ' w\r\n'.repeat(25)).join('') + '\r\n', 'maxLines', ''],
    ['header-bytes', `X-Big: ${'x'.repeat(100_001)}\r\n\r\nbody\r\n`, 'maxHeaderBytes', ''],
  ];
  for (const [limit, over, key, atLimit] of cases) {
    it(`stops at ${limit}, feeding nothing more, and errors the verifier's input`, async () => {
      const { guard, error } = await run(over);
      assert.deepEqual(guard.breach, { limit, max: LIMITS[key!] });
      assert.equal(error?.name, 'HeaderLimitError');
      if (atLimit) {
        const ok = await run(atLimit);
        assert.equal(ok.error, null, `${limit}: exactly at the limit passes`);
      }
    });
  }

  it('detects an over-long header line before its end arrives', async () => {
    const guard = new HeaderGuard({ ...LIMITS, maxHeaderBytes: 1024 });
    const failed = new Promise<void>((resolve) => guard.on('error', () => resolve()));
    guard.write(Buffer.from('X-Big: '));
    for (let i = 0; i < 10 && !guard.destroyed; i++) guard.write(Buffer.alloc(200, 0x61));
    await failed;
    assert.deepEqual(guard.breach, { limit: 'header-bytes', max: 1024 });
  });

  it('reads a field name as mailauth does: folds before the colon, WSP trimmed, lower-cased', () => {
    assert.equal(fieldKey([Buffer.from('DKIM-Signature\r\n'), Buffer.from(' : v=1\r\n')]), 'dkim-signature');
    assert.equal(fieldKey([Buffer.from('From \t: x\r\n')]), 'from');
    assert.equal(fieldKey([Buffer.from('no colon\r\n')]), 'no colon');
  });
});
