import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendError } from '../../../src/relay/backend-error.ts';
import { formatResponse, ReplyReader } from '../../../src/relay/reply.ts';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('ReplyReader', () => {
  it('parses a single-line reply with an enhanced code', () => {
    const replies = new ReplyReader().push(bytes('550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown\r\n'));
    assert.deepEqual(replies, [{
      code: 550, enhanced: '5.1.1',
      text: '<nobody@example.org>: Recipient address rejected: User unknown',
      lines: ['<nobody@example.org>: Recipient address rejected: User unknown'],
    }]);
  });

  it('parses a multi-line EHLO reply split across chunks, keeping each line', () => {
    const reader = new ReplyReader();
    assert.deepEqual(reader.push(bytes('250-mx.example.org\r\n250-PIPEL')), []);
    assert.equal(reader.pending, true);
    assert.deepEqual(reader.push(bytes('INING\r\n250-SIZE 10240000\r')), []);
    const [reply] = reader.push(bytes('\n250 8BITMIME\r\n'));
    assert.deepEqual(reply, {
      code: 250, enhanced: null, text: 'mx.example.org PIPELINING SIZE 10240000 8BITMIME',
      lines: ['mx.example.org', 'PIPELINING', 'SIZE 10240000', '8BITMIME'],
    });
    assert.equal(reader.pending, false);
  });

  it('strips the enhanced code from every line of a multi-line reply', () => {
    const [reply] = new ReplyReader().push(bytes('452-4.5.3 Too many\r\n452 4.5.3 recipients\r\n'));
    assert.deepEqual(reply, { code: 452, enhanced: '4.5.3', text: 'Too many recipients', lines: ['Too many', 'recipients'] });
  });

  it('ignores an "enhanced code" whose class differs from the reply code', () => {
    const [reply] = new ReplyReader().push(bytes('250 5.1.1 odd\r\n'));
    assert.equal(reply?.enhanced, null);
    assert.equal(reply?.text, '5.1.1 odd');
  });

  it('accepts a bare code, a bare LF and returns several replies from one chunk', () => {
    const replies = new ReplyReader().push(bytes('250\n221 2.0.0 Bye\r\n'));
    assert.deepEqual(replies.map(formatResponse), ['250', '221 2.0.0 Bye']);
  });

  it('decodes UTF-8 text split across chunks', () => {
    const reader = new ReplyReader();
    const line = bytes('550 5.1.1 Empfänger unbekannt\r\n');
    const cut = line.indexOf(0xa4); // inside the two bytes of "ä"
    assert.deepEqual(reader.push(line.subarray(0, cut)), []);
    assert.equal(reader.push(line.subarray(cut))[0]?.text, 'Empfänger unbekannt');
  });

  for (const [name, input] of [
    ['garbage', 'HTTP/1.1 400 Bad Request\r\n'],
    ['a two-digit code', '25 ok\r\n'],
    ['a 1yz code', '150 ok\r\n'],
    ['a wrong separator', '250_ok\r\n'],
    ['a code change inside a multi-line reply', '250-first\r\n251 second\r\n'],
  ] as const) {
    it(`rejects ${name} as a protocol error`, () => {
      assert.throws(() => new ReplyReader().push(bytes(input)), (err: unknown) => err instanceof BackendError && err.kind === 'protocol');
    });
  }

  it('rejects an endless line', () => {
    assert.throws(() => new ReplyReader().push(Buffer.alloc(9000, 0x41)), (err: unknown) => err instanceof BackendError && err.kind === 'protocol');
  });
});
