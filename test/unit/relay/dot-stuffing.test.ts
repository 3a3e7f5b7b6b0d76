import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dotStuff, DotStuffer } from '../../../src/relay/dot-stuffing.ts';

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (b: Buffer): string => b.toString('latin1');

/** The transform fed in pieces cut at the given offsets. */
function stuffInPieces(input: string, cuts: readonly number[]): string {
  const stuffer = new DotStuffer();
  const bytes = latin1(input);
  const out: Buffer[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...stuffer.push(bytes.subarray(start, cut)));
    start = cut;
  }
  out.push(stuffer.end());
  return text(Buffer.concat(out));
}

describe('dotStuff', () => {
  const cases: Array<[string, string, string]> = [
    ['plain CRLF message', 'a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
    ['missing final CRLF', 'a\r\nb', 'a\r\nb\r\n.\r\n'],
    ['empty message', '', '.\r\n'],
    ['leading dot on the first line', '.hidden\r\n', '..hidden\r\n.\r\n'],
    ['a line that is a lone dot', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['bare LF', 'a\nb\n', 'a\r\nb\r\n.\r\n'],
    ['bare CR', 'a\rb\r', 'a\r\nb\r\n.\r\n'],
    ['CR CR LF', 'a\r\r\nb', 'a\r\n\r\nb\r\n.\r\n'],
    ['LF CR (two endings)', 'a\n\rb', 'a\r\n\r\nb\r\n.\r\n'],
    ['smuggling \\n.\\n', 'a\n.\nMAIL FROM:<x@evil>\n', 'a\r\n..\r\nMAIL FROM:<x@evil>\r\n.\r\n'],
    ['smuggling \\n.\\r\\n', 'a\n.\r\nRCPT', 'a\r\n..\r\nRCPT\r\n.\r\n'],
    ['smuggling \\r\\n.\\n', 'a\r\n.\nRCPT', 'a\r\n..\r\nRCPT\r\n.\r\n'],
    ['smuggling \\r.\\r', 'a\r.\rRCPT', 'a\r\n..\r\nRCPT\r\n.\r\n'],
    ['dots not at line start are untouched', 'a.b\r\n x.\r\n', 'a.b\r\n x.\r\n.\r\n'],
    ['already stuffed dots are stuffed again', '..x\r\n', '...x\r\n.\r\n'],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => {
      assert.equal(text(dotStuff(latin1(input))), expected);
    });
  }

  it('gives the same bytes for every way of cutting the input in two or three', () => {
    const input = 'x\r\n.a\n.\r\r\n..\r.\nend.\r';
    const whole = text(dotStuff(latin1(input)));
    for (let i = 0; i <= input.length; i++) {
      assert.equal(stuffInPieces(input, [i]), whole, `cut at ${i}`);
      for (let j = i; j <= input.length; j++) assert.equal(stuffInPieces(input, [i, j]), whole, `cuts at ${i},${j}`);
    }
  });

  it('pairs a CR ending one chunk with the LF starting the next, and stuffs a dot starting a chunk', () => {
    assert.equal(stuffInPieces('a\r\n.b', [2]), 'a\r\n..b\r\n.\r\n');
    assert.equal(stuffInPieces('a\r\n.b', [3]), 'a\r\n..b\r\n.\r\n');
    assert.equal(stuffInPieces('a\r.b', [2]), 'a\r\n..b\r\n.\r\n');
  });

  it('never emits a bare CR or LF, nor an unstuffed dot line, on random input', () => {
    const alphabet = '\r\n.a';
    let seed = 42;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % 4; // deterministic LCG
    for (let round = 0; round < 300; round++) {
      let input = '';
      for (let k = 0; k < 40; k++) input += alphabet[next()];
      const body = text(dotStuff(latin1(input))).slice(0, -3); // without the terminator
      assert.doesNotMatch(body, /\r(?!\n)|(?<!\r)\n/, JSON.stringify(input));
      for (const line of body.split('\r\n').slice(0, -1)) assert.ok(!line.startsWith('.') || line.startsWith('..'), JSON.stringify(input));
    }
  });

  it('CRLF-only input (the usual case): dots stuffed at every line start, in any cutting, without copying the input', () => {
    let seed = 7;
    const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let round = 0; round < 300; round++) {
      const lines = Array.from({ length: 1 + next(6) }, () => ['', '.', '..', 'a', '.a', 'a.'][next(6)]!);
      const ending = next(2) ? '\r\n' : '';
      const input = lines.join('\r\n') + ending;
      const body = lines.map((l) => (l.startsWith('.') ? '.' + l : l)).join('\r\n') + ending;
      const expected = (body === '' || body.endsWith('\r\n') ? body : body + '\r\n') + '.\r\n';
      assert.equal(text(dotStuff(latin1(input))), expected, JSON.stringify(input));
      const cut = next(input.length + 1);
      assert.equal(stuffInPieces(input, [cut]), expected, `${JSON.stringify(input)} cut at ${cut}`);
    }
    const bytes = latin1('a\r\n.b\r\nc\r\n');
    const pieces = new DotStuffer().push(bytes);
    assert.deepEqual(pieces.map(text), ['a\r\n', '.', '.b\r\nc\r\n']);
    assert.ok(pieces.filter((p) => p.length > 1).every((p) => p.buffer === bytes.buffer), 'subarrays of the input');
  });

  it('refuses use after end', () => {
    const stuffer = new DotStuffer();
    stuffer.end();
    assert.throws(() => stuffer.push(latin1('x')), /after end/);
  });
});
