/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { LineEndingNormaliser, normaliseLineEndings } from '../../../src/message/line-endings.ts';

async function throughStream(chunks: string[]): Promise<{ out: string; bareLf: number; bareCr: number }> {
  const normaliser = new LineEndingNormaliser();
  const collected = buffer(normaliser);
  await pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), normaliser);
  const out = (await collected).toString('latin1');
  return { out, ...normaliser.counts };
}

describe('normaliseLineEndings', () => {
  it('leaves CRLF text untouched and uncopied', () => {
    const input = Buffer.from('a\r\nb\r\n\r\nc\r\n');
    const result = normaliseLineEndings(input);
    assert.equal(result.data, input, 'same buffer: no copy when nothing is repaired');
    assert.equal(result.bareLf, 0);
    assert.equal(result.bareCr, 0);
  });

  it('repairs bare LF and bare CR and counts them', () => {
    const result = normaliseLineEndings(Buffer.from('a\nb\rc\r\nd\n\re'));
    assert.equal(result.data.toString(), 'a\r\nb\r\nc\r\nd\r\n\r\ne');
    assert.equal(result.bareLf, 2);
    assert.equal(result.bareCr, 2);
  });

  it('a trailing CR is a bare CR', () => {
    const result = normaliseLineEndings(Buffer.from('a\r'));
    assert.equal(result.data.toString(), 'a\r\n');
    assert.equal(result.bareCr, 1);
  });

  it('turns the smuggling sequences into plain CRLF lines (DESIGN: Postfix ends DATA at \\n.\\n)', () => {
    const result = normaliseLineEndings(Buffer.from('x\n.\nMAIL FROM:<a@b>\r\n.\r\nRCPT TO:<c@d>\r\n'));
    assert.equal(result.data.toString(), 'x\r\n.\r\nMAIL FROM:<a@b>\r\n.\r\nRCPT TO:<c@d>\r\n');
    assert.equal(result.bareLf, 2);
  });

  it('empty input', () => {
    assert.equal(normaliseLineEndings(Buffer.alloc(0)).data.length, 0);
  });
});

describe('LineEndingNormaliser (streaming)', () => {
  it('a CRLF split across chunks stays one CRLF', async () => {
    const r = await throughStream(['line one\r', '\nline two\r\n']);
    assert.equal(r.out, 'line one\r\nline two\r\n');
    assert.deepEqual([r.bareLf, r.bareCr], [0, 0]);
  });

  it('a CR at a chunk end followed by text is a bare CR', async () => {
    const r = await throughStream(['a\r', 'b']);
    assert.equal(r.out, 'a\r\nb');
    assert.deepEqual([r.bareLf, r.bareCr], [0, 1]);
  });

  it('CR CR across chunks: the first is bare, the second pairs with the LF', async () => {
    const r = await throughStream(['a\r', '\r', '\nb']);
    assert.equal(r.out, 'a\r\n\r\nb');
    assert.deepEqual([r.bareLf, r.bareCr], [0, 1]);
  });

  it('a bare LF at a chunk start and a CR at the very end of the stream', async () => {
    const r = await throughStream(['a', '\nb', '\r']);
    assert.equal(r.out, 'a\r\nb\r\n');
    assert.deepEqual([r.bareLf, r.bareCr], [1, 1]);
  });

  it('gives the same bytes as the pure function for every split point', async () => {
    const text = 'H: v\r\nX: \ry\n\r\n\rbody\n.\n\r\r\n';
    const expected = normaliseLineEndings(Buffer.from(text, 'latin1'));
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) {
        const r = await throughStream([text.slice(0, i), text.slice(i, j), text.slice(j)]);
        assert.equal(r.out, expected.data.toString('latin1'), `split at ${i},${j}`);
        assert.deepEqual([r.bareLf, r.bareCr], [expected.bareLf, expected.bareCr], `counts at ${i},${j}`);
      }
    }
  });

  it('one-byte chunks', async () => {
    const text = 'a\nb\r\nc\rd';
    const r = await throughStream([...text]);
    assert.equal(r.out, 'a\r\nb\r\nc\r\nd');
    assert.deepEqual([r.bareLf, r.bareCr], [1, 1]);
  });
});
