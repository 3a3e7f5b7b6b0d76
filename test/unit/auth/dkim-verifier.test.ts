/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * The faster parts of our DKIM verifier against mailauth's own (differential: the same chunks
 * through both, the same output and carry-over state), and the key memo: parsed once per DNS
 * answer, never past it.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { before, describe, it } from 'node:test';
import { createKeyMemo } from '../../../src/auth/dkim-keys.ts';
import { ensureLinebreaks, processChunk, type ParserState } from '../../../src/auth/dkim-verifier.ts';
import { authenticateMessage } from '../../../src/auth/message.ts';
import { checkSpf } from '../../../src/auth/spf.ts';
import { rsaKey, sign, type TestKey } from './keys.ts';
import { txt, zoneResolver, type Zone } from './zone.ts';

const require = createRequire(import.meta.url);
const { MessageParser } = require('mailauth/lib/dkim/message-parser.js') as {
  MessageParser: new () => ParserState & { ensureLinebreaks(input: Buffer): Generator<Buffer>; processChunk(chunk: Buffer): Promise<void> };
};

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes rich in what matters here: CR, LF, empty lines, header-looking text. */
function sample(random: () => number, length: number): Buffer {
  const alphabet = [0x0d, 0x0a, 0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x41, 0x62, 0x2e];
  return Buffer.from(Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]!));
}

function split(random: () => number, data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < data.length;) {
    const n = 1 + Math.floor(random() * 12);
    chunks.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return chunks;
}

/** Records what a parser hands on: the header block when it ends, then body chunks. */
function recording(parser: ParserState): { header: Buffer | null; body: Buffer[] } {
  const seen: { header: Buffer | null; body: Buffer[] } = { header: null, body: [] };
  parser.emitHeaders = (chunk?: Buffer) => {
    parser.state = 'body';
    if (chunk) parser.headerChunks.push(chunk);
    seen.header = Buffer.concat(parser.headerChunks);
    return Promise.resolve();
  };
  parser.nextChunk = (chunk: Buffer) => {
    seen.body.push(Buffer.from(chunk));
    return Promise.resolve();
  };
  return seen;
}

describe('DKIM verifier parts, against mailauth 7 (MessageParser)', () => {
  it('ensureLinebreaks yields the same pieces and keeps the same lastByte, chunk by chunk', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = prng(seed);
      const theirs = new MessageParser();
      const ours: { lastByte?: number } = {};
      for (const chunk of split(random, sample(random, 200))) {
        const expected = [...theirs.ensureLinebreaks(chunk)].map((b) => b.toString('latin1'));
        const got = [...ensureLinebreaks(ours, chunk)].map((b) => b.toString('latin1'));
        assert.deepEqual(got, expected, `seed ${seed}`);
        assert.equal(ours.lastByte, theirs.lastByte, `seed ${seed}: lastByte`);
      }
    }
  });

  it('processChunk finds the same end of the header section, with the same carry-over', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = prng(seed);
      const data = sample(random, 20 + Math.floor(random() * 120));
      const theirs = new MessageParser();
      const ours = new MessageParser();
      const a = recording(theirs);
      const b = recording(ours);
      for (const chunk of split(random, data)) {
        await theirs.processChunk(chunk);
        await processChunk(ours, chunk);
        assert.equal(ours.state, theirs.state, `seed ${seed}: state`);
        if (theirs.state === 'header') {
          assert.deepEqual(ours.stateBytes, theirs.stateBytes, `seed ${seed}: stateBytes`);
          assert.equal(ours.headerBytes, theirs.headerBytes, `seed ${seed}: headerBytes`);
        }
      }
      assert.deepEqual(b.header, a.header, `seed ${seed}: header block`);
      assert.equal(Buffer.concat(b.body).toString('latin1'), Buffer.concat(a.body).toString('latin1'), `seed ${seed}: body`);
    }
  });
});

describe('DKIM keys parsed once per DNS answer (KeyMemo)', () => {
  let first: TestKey;
  let second: TestKey;
  before(() => {
    first = rsaKey(2048);
    second = rsaKey(2048);
  });

  const message = (n: number): Buffer => Buffer.from(
    `From: alice@example.com\r\nTo: bob@example.org\r\nSubject: n${n}\r\nMessage-ID: <${n}@example.com>\r\n\r\nHello ${n}\r\n`);

  async function check(zone: Zone, memo: ReturnType<typeof createKeyMemo>, raw: Buffer): Promise<{ result: string; queries: string[] }> {
    const { resolver, queries } = zoneResolver(zone);
    const spf = await checkSpf({ ip: '192.0.2.1', helo: 'client.example.com', sender: 'alice@example.com', hostname: 'mx.test', resolver, strict: true });
    const out = await authenticateMessage({ message: raw, ip: '192.0.2.1', sender: 'alice@example.com', spf, hostname: 'mx.test', resolver, strict: true, minBitLength: 1024, keys: memo });
    return { result: out.dkim[0]?.result ?? 'none', queries: queries.filter((q) => q.includes('_domainkey')) };
  }

  it('asks the DNS for every message but parses an unchanged answer once; a new answer is parsed anew', async () => {
    const memo = createKeyMemo();
    const zone: Zone = { 'TXT sel._domainkey.example.com': txt(first.record) };
    for (let n = 0; n < 3; n++) {
      const { result, queries } = await check(zone, memo, await sign(message(n), { domain: 'example.com', selector: 'sel', key: first }));
      assert.equal(result, 'pass');
      assert.deepEqual(queries, ['TXT sel._domainkey.example.com'], 'the key record is looked up for each message');
    }
    assert.equal(memo.size, 1, 'one parsed key for three messages');

    // The domain rotates its key under the same selector: the old signature no longer verifies.
    zone['TXT sel._domainkey.example.com'] = txt(second.record);
    assert.equal((await check(zone, memo, await sign(message(3), { domain: 'example.com', selector: 'sel', key: first }))).result, 'fail');
    assert.equal((await check(zone, memo, await sign(message(4), { domain: 'example.com', selector: 'sel', key: second }))).result, 'pass');
    assert.equal(memo.size, 2);

    // Revoked (empty p=): no key, whatever was parsed before.
    zone['TXT sel._domainkey.example.com'] = txt('v=DKIM1; p=');
    assert.equal((await check(zone, memo, await sign(message(5), { domain: 'example.com', selector: 'sel', key: second }))).result, 'neutral');
  });

  it('a DNS failure is not remembered: the next message asks again and passes', async () => {
    const memo = createKeyMemo();
    const zone: Zone = { 'TXT sel._domainkey.example.com': 'ESERVFAIL' };
    assert.equal((await check(zone, memo, await sign(message(1), { domain: 'example.com', selector: 'sel', key: first }))).result, 'temperror');
    zone['TXT sel._domainkey.example.com'] = txt(first.record);
    assert.equal((await check(zone, memo, await sign(message(2), { domain: 'example.com', selector: 'sel', key: first }))).result, 'pass');
  });
});
