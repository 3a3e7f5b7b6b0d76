/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readAuthservId } from '../../../src/message/authserv-id.ts';
import { fieldValue, parseMessage, prependHeaders, removeForged, splitMessage } from '../../../src/message/headers.ts';

const OURS = 'mx.postern.test';

describe('splitMessage / parseMessage', () => {
  it('splits at the first blank line and keeps folded fields whole', () => {
    const msg = Buffer.from('Subject: one\r\n two\r\nFrom: a@example.com\r\n\r\nbody\r\n\r\nmore\r\n');
    const parsed = parseMessage(msg);
    assert.deepEqual(parsed.fields.map((f) => f.name), ['Subject', 'From']);
    assert.equal(parsed.fields[0]?.raw.toString(), 'Subject: one\r\n two\r\n');
    assert.equal(fieldValue(parsed.fields[0] ?? { name: "", raw: Buffer.alloc(0) }), 'one two');
    assert.equal(parsed.body?.toString(), 'body\r\n\r\nmore\r\n');
  });

  it('a message without a blank line has no body', () => {
    const { header, body } = splitMessage(Buffer.from('Subject: x\r\nFrom: a@b\r\n'));
    assert.equal(header.toString(), 'Subject: x\r\nFrom: a@b\r\n');
    assert.equal(body, null);
  });

  it('a message starting with a blank line has no header fields', () => {
    const parsed = parseMessage(Buffer.from('\r\nbody only\r\n'));
    assert.deepEqual(parsed.fields, []);
    assert.equal(parsed.body?.toString(), 'body only\r\n');
  });

  it('names allow WSP before the colon (RFC 5322 §4.5.1); a line without a colon has no name', () => {
    const parsed = parseMessage(Buffer.from('Subject : x\r\ngarbage line\r\n\r\n'));
    assert.deepEqual(parsed.fields.map((f) => f.name), ['Subject', '']);
  });
});

describe('readAuthservId', () => {
  it('reads tokens, quoted strings, and skips CFWS and comments', () => {
    assert.equal(readAuthservId(' mx.example.net; spf=pass', false), 'mx.example.net');
    assert.equal(readAuthservId('(comment (nested \\) x)) mx.example.net 1; none', false), 'mx.example.net');
    assert.equal(readAuthservId('"mx.example.net"; spf=pass', false), 'mx.example.net');
    assert.equal(readAuthservId('"mx.ex\\"ample"; spf=pass', false), 'mx.ex"ample');
    assert.equal(readAuthservId('mx.example.net;', false), 'mx.example.net');
  });
  it('skips the instance tag of ARC-Authentication-Results (RFC 8617 §4.1.1)', () => {
    assert.equal(readAuthservId('i=1; mx.example.net; spf=pass', true), 'mx.example.net');
    assert.equal(readAuthservId(' i = 12 ; (c) "mx.example.net"; spf=pass', true), 'mx.example.net');
  });
});

describe('removeForged (RFC 8601 §5)', () => {
  const message = Buffer.from(
    [
      `Authentication-Results: ${OURS}; spf=pass smtp.mailfrom=example.com`,
      'Authentication-Results: mx.google.com; dkim=pass header.d=example.com',
      'Authentication-Results:\r\n\tMX.Postern.TEST;\r\n dkim=pass',
      `Authentication-Results: (forged by a spammer) ${OURS}; dmarc=pass`,
      `authentication-results: "${OURS}"; dmarc=pass`,
      `Authentication-Results: ${OURS}.other.example; spf=pass`,
      `ARC-Authentication-Results: i=1; ${OURS}; spf=pass`,
      'ARC-Authentication-Results: i=1; lists.example.net; spf=pass',
      'X-Postern-Verdict: accept; rule=forged',
      'x-postern-quarantine: no',
      'X-Posterns-Other: kept',
      'Subject: hello',
      '',
      'body',
      '',
    ].join('\r\n'),
  );

  it('removes ours (folded, commented, quoted, ARC) and X-Postern-*, keeps the rest in order', () => {
    const parsed = parseMessage(message);
    const { kept, removed } = removeForged(parsed.fields, OURS);
    assert.deepEqual(
      kept.map((f) => f.raw.toString().trimEnd()),
      [
        'Authentication-Results: mx.google.com; dkim=pass header.d=example.com',
        `Authentication-Results: ${OURS}.other.example; spf=pass`,
        'ARC-Authentication-Results: i=1; lists.example.net; spf=pass',
        'X-Posterns-Other: kept',
        'Subject: hello',
      ],
    );
    assert.equal(removed.length, 7);
  });

  it('compares case-insensitively and ignores a trailing root dot in our id', () => {
    const parsed = parseMessage(message);
    assert.equal(removeForged(parsed.fields, 'MX.POSTERN.TEST.').removed.length, 7);
  });
});

describe('prependHeaders', () => {
  it('puts the new fields on top, keeps the kept fields and the body byte for byte', () => {
    const msg = Buffer.from(`Authentication-Results: ${OURS}; spf=pass\r\nSubject: hi\r\n\r\nbody\r\n`);
    const parsed = parseMessage(msg);
    const { kept } = removeForged(parsed.fields, OURS);
    const out = prependHeaders({ fields: kept, body: parsed.body }, [
      { name: 'Received', value: 'from a by b; Mon, 2 Jun 2025 10:00:00 +0000' },
      { name: 'Authentication-Results', value: `${OURS};\r\n spf=pass` },
    ]);
    assert.equal(
      out.toString(),
      'Received: from a by b; Mon, 2 Jun 2025 10:00:00 +0000\r\n' +
        `Authentication-Results: ${OURS};\r\n spf=pass\r\n` +
        'Subject: hi\r\n\r\nbody\r\n',
    );
  });

  it('a new value cannot inject a header line or end the header section', () => {
    const parsed = parseMessage(Buffer.from('Subject: hi\r\n\r\nbody\r\n'));
    const out = prependHeaders(parsed, [{ name: 'X-Postern-Verdict', value: 'tag\r\nBcc: victim@example.com\r\n\r\nevil' }]).toString();
    const header = out.slice(0, out.indexOf('\r\n\r\n'));
    assert.deepEqual(header.split('\r\n').map((l) => l.split(':')[0]), ['X-Postern-Verdict', 'Subject']);
  });

  it('a message with no body stays without one; a last field without CRLF gets one', () => {
    const out = prependHeaders(parseMessage(Buffer.from('Subject: hi')), [{ name: 'X-A', value: '1' }]);
    assert.equal(out.toString(), 'X-A: 1\r\nSubject: hi\r\n');
  });

  it('folds a long new field at 78 characters', () => {
    const value = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const out = prependHeaders({ fields: [], body: Buffer.from('b') }, [{ name: 'X-Long', value }]).toString();
    const lines = out.split('\r\n');
    assert.ok(lines.length > 3);
    for (const line of lines) assert.ok(line.length <= 78, line);
    assert.equal(out.replace(/\r\n(?=[ \t])/g, ''), `X-Long: ${value}\r\n\r\nb`);
  });
});
