/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authservIdCandidates } from '../../../src/message/authserv-id.ts';
import { forgedRanges, headerLength, rewriteMessage, rewrittenChunks } from '../../../src/message/headers.ts';

const OURS = 'mx.postern.test';

/** The fields a rewrite keeps, as text, with nothing added. */
function kept(message: string, ours = OURS): string {
  return rewriteMessage(Buffer.from(message, 'latin1'), ours, []).toString('latin1');
}

describe('headerLength', () => {
  it('ends after the CRLF of the last field; 0 for an empty header section; all without a blank line', () => {
    assert.equal(headerLength(Buffer.from('Subject: one\r\n two\r\nFrom: a@example.com\r\n\r\nbody\r\n\r\nmore\r\n')), 41);
    assert.equal(headerLength(Buffer.from('\r\nbody only\r\n')), 0);
    assert.equal(headerLength(Buffer.from('Subject: x\r\nFrom: a@b\r\n')), 23);
  });
});

describe('authservIdCandidates', () => {
  it('reads tokens, quoted strings, and skips CFWS and comments', () => {
    assert.deepEqual(authservIdCandidates(' mx.example.net; spf=pass'), ['mx.example.net']);
    assert.deepEqual(authservIdCandidates('(comment (nested \\) x)) mx.example.net 1; none'), ['mx.example.net']);
    assert.deepEqual(authservIdCandidates('"mx.example.net"; spf=pass'), ['mx.example.net']);
    assert.deepEqual(authservIdCandidates('mx.example.net;'), ['mx.example.net']);
  });
  it('ends the id where a host name cannot continue: NUL, "/", NBSP, a soft hyphen', () => {
    for (const v of ['mx.example.net\0; x', 'mx.example.net\0junk; x', 'mx.example.net/1; x', 'mx.example.net\u00a0; x', 'mx.example.net\u00ad; x', '\0mx.example.net; x']) {
      assert.deepEqual(authservIdCandidates(v), ['mx.example.net'], JSON.stringify(v));
    }
  });
  it('after an instance tag, well-formed or not, also reads what follows it (RFC 8617 §4.1.1)', () => {
    assert.ok(authservIdCandidates('i=1; mx.example.net; spf=pass').includes('mx.example.net'));
    assert.ok(authservIdCandidates(' i = 12 ; (c) "mx.example.net"; spf=pass').includes('mx.example.net'));
    for (const v of ['i=x; mx.example.net; a', 'i=; mx.example.net; a', 'i=1 2; mx.example.net; a', 'i=1 mx.example.net; a', 'I\t=\t99999; mx.example.net']) {
      assert.ok(authservIdCandidates(v).includes('mx.example.net'), JSON.stringify(v));
    }
  });
});

describe('forged Authentication-Results and X-Postern-* (RFC 8601 §5)', () => {
  const message = [
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
  ].join('\r\n');

  it('removes ours (folded, commented, quoted, ARC) and X-Postern-*, keeps the rest in order, body byte for byte', () => {
    assert.equal(kept(message), [
      'Authentication-Results: mx.google.com; dkim=pass header.d=example.com',
      `Authentication-Results: ${OURS}.other.example; spf=pass`,
      'ARC-Authentication-Results: i=1; lists.example.net; spf=pass',
      'X-Posterns-Other: kept',
      'Subject: hello',
      '',
      'body',
      '',
    ].join('\r\n'));
    assert.equal(forgedRanges(Buffer.from(message), OURS).length, 7);
  });

  it('compares case-insensitively and ignores a trailing root dot in our id', () => {
    assert.equal(forgedRanges(Buffer.from(message), 'MX.POSTERN.TEST.').length, 7);
  });

  const variants: Array<[string, string]> = [
    ['whitespace before the colon', `Authentication-Results : ${OURS}; dkim=pass`],
    ['a tab before the colon', `Authentication-Results\t: ${OURS}; dkim=pass`],
    ['a fold before the colon', `Authentication-Results\r\n : ${OURS}; dkim=pass`],
    ['the colon on a line of its own (mailauth joins it)', `Authentication-Results\r\n: ${OURS}; dkim=pass`],
    ['a control character in the name', `Authentication-Results\0: ${OURS}; dkim=pass`],
    ['the id followed by a NUL', `Authentication-Results: ${OURS}\0; dkim=pass`],
    ['the id followed by a NUL and more', `Authentication-Results: ${OURS}\0junk; dkim=pass`],
    ['the id followed by "/"', `Authentication-Results: ${OURS}/1; dkim=pass`],
    ['the id in U+00A0-padded quotes (latin1)', `Authentication-Results: "\u00a0${OURS}\u00a0"; dkim=pass`],
    ['the id in U+00A0-padded quotes (UTF-8)', `Authentication-Results: "${Buffer.from('\u00a0', 'utf8').toString('latin1')}${OURS}"; dkim=pass`],
    ['ARC with a non-numeric i=', `ARC-Authentication-Results: i=x; ${OURS}; dmarc=pass`],
    ['ARC with an empty i=', `ARC-Authentication-Results: i=; ${OURS}; dmarc=pass`],
    ['ARC with i= of two numbers', `ARC-Authentication-Results: i=1 2; ${OURS}; dmarc=pass`],
    ['ARC with i= and no ";" after it', `ARC-Authentication-Results: i=1 ${OURS}; dmarc=pass`],
    ['ARC without i=', `ARC-Authentication-Results: ${OURS}; dmarc=pass`],
    ['plain A-R with an instance tag', `Authentication-Results: i=1; ${OURS}; dmarc=pass`],
  ];
  for (const [what, field] of variants) {
    it(`removes a forgery with ${what}`, () => {
      const out = kept(`${field}\r\nSubject: x\r\n\r\nbody\r\n`);
      assert.equal(out, 'Subject: x\r\n\r\nbody\r\n');
    });
  }

  it('removes our IDN authserv-id written in U-labels (UTF-8)', () => {
    const field = Buffer.from('Authentication-Results: b\u00fccher.example; dkim=pass\r\n', 'utf8').toString('latin1');
    assert.equal(kept(`${field}Subject: x\r\n\r\nbody\r\n`, 'xn--bcher-kva.example'), 'Subject: x\r\n\r\nbody\r\n');
  });

  it('drops the lines mailauth joins to a forged field with it, and nothing else', () => {
    assert.equal(kept(`Subject: a\r\nAuthentication-Results: ${OURS}; dkim=pass\r\ngarbage\r\n more\r\nTo: b\r\n\r\nx`), 'Subject: a\r\nTo: b\r\n\r\nx');
  });

  it('keeps a header that only looks like ours inside the body', () => {
    const msg = `Subject: a\r\n\r\nAuthentication-Results: ${OURS}; dkim=pass\r\n`;
    assert.equal(kept(msg), msg);
  });
});

describe('rewriteMessage', () => {
  it('puts the new fields on top and keeps the rest byte for byte', () => {
    const out = rewriteMessage(Buffer.from(`Authentication-Results: ${OURS}; spf=pass\r\nSubject: hi\r\n\r\nbody\r\n`), OURS, [
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
    const out = rewriteMessage(Buffer.from('Subject: hi\r\n\r\nbody\r\n'), OURS, [{ name: 'X-Postern-Verdict', value: 'tag\r\nBcc: victim@example.com\r\n\r\nevil' }]).toString();
    const header = out.slice(0, out.indexOf('\r\n\r\n'));
    assert.deepEqual(header.split('\r\n').map((l) => l.split(':')[0]), ['X-Postern-Verdict', 'Subject']);
  });

  it('a message with no body stays without one; a last field without CRLF gets one', () => {
    assert.equal(rewriteMessage(Buffer.from('Subject: hi'), OURS, [{ name: 'X-A', value: '1' }]).toString(), 'X-A: 1\r\nSubject: hi\r\n');
    assert.equal(rewriteMessage(Buffer.from('Subject: hi\r\n'), OURS, [{ name: 'X-A', value: '1' }]).toString(), 'X-A: 1\r\nSubject: hi\r\n');
  });

  it('a first line starting with whitespace cannot continue our last field: the header section ends before it (as Postfix)', () => {
    const out = rewriteMessage(Buffer.from(' by evil.example; forged trace\r\nFrom: a@b\r\n\r\nbody\r\n'), OURS, [{ name: 'Received', value: 'from x by y; date' }]).toString();
    assert.equal(out, 'Received: from x by y; date\r\n\r\n by evil.example; forged trace\r\nFrom: a@b\r\n\r\nbody\r\n');
  });

  it('an empty header section stays empty', () => {
    assert.equal(rewriteMessage(Buffer.from('\r\nbody\r\n'), OURS, [{ name: 'X-A', value: '1' }]).toString(), 'X-A: 1\r\n\r\nbody\r\n');
  });

  it('folds a long new field at 78 characters', () => {
    const value = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const out = rewriteMessage(Buffer.from('\r\nb'), OURS, [{ name: 'X-Long', value }]).toString();
    const lines = out.split('\r\n');
    assert.ok(lines.length > 3);
    for (const line of lines) assert.ok(line.length <= 78, line);
    assert.equal(out.replace(/\r\n(?=[ \t])/g, ''), `X-Long: ${value}\r\n\r\nb`);
  });
});

describe('rewrittenChunks', () => {
  it('gives the same bytes as rewriteMessage, wherever the message was cut into chunks, and passes the body chunks on uncopied', () => {
    const samples = [
      `Authentication-Results: ${OURS}; spf=pass\r\nSubject: hi\r\n\r\nbody line\r\nmore\r\n`,
      'Subject: no body',
      '\r\nbody without header\r\n',
      ' leading whitespace\r\nSubject: x\r\n\r\nb\r\n',
      `Subject: a\r\nAuthentication-Results : ${OURS}; dkim=pass\r\n\r\n\r\n`,
    ];
    const add = [{ name: 'X-A', value: '1' }];
    for (const text of samples) {
      const whole = Buffer.from(text, 'latin1');
      const expected = rewriteMessage(whole, OURS, add).toString('latin1');
      for (let a = 0; a <= whole.length; a++) {
        for (let b = a; b <= whole.length; b += 3) {
          const chunks = [whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)].filter((c) => c.length > 0);
          const out = rewrittenChunks(chunks, OURS, add);
          assert.equal(Buffer.concat(out).toString('latin1'), expected, `${JSON.stringify(text)} cut at ${a}, ${b}`);
        }
      }
    }
    const body = Buffer.from('a large body chunk\r\n');
    const out = rewrittenChunks([Buffer.from('Subject: s\r\n\r\n'), body], OURS, []);
    assert.equal(out.at(-1), body, 'the same Buffer, not a copy');
  });
});
