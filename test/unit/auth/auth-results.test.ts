/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildAuthResults, formatAuthservId } from '../../../src/auth/auth-results.ts';

describe('formatAuthservId (RFC 8601 §2.5)', () => {
  it('a host name is a token and stays as is', () => {
    assert.equal(formatAuthservId('mx.example.net'), 'mx.example.net');
    assert.equal(formatAuthservId(' mx.example.net '), 'mx.example.net');
  });
  it('an IDN becomes its A-label', () => {
    assert.equal(formatAuthservId('mx.bücher.example'), 'mx.xn--bcher-kva.example');
  });
  it('anything else is a quoted-string', () => {
    assert.equal(formatAuthservId('mx example; dkim=pass'), '"mx example; dkim=pass"');
    assert.equal(formatAuthservId('a"b\\c'), '"a\\"b\\\\c"');
  });
  it('empty or control characters are a configuration error', () => {
    assert.throws(() => formatAuthservId(''), TypeError);
    assert.throws(() => formatAuthservId('mx\r\nX-Evil: 1'), TypeError);
  });
});

describe('buildAuthResults', () => {
  it('writes every method on its own continuation line', () => {
    const value = buildAuthResults('mx.example.net', {
      spf: 'spf=pass smtp.mailfrom=example.com',
      dkim: ['dkim=pass header.d=example.com', 'dkim=fail header.d=other.example'],
      arc: 'arc=none',
      dmarc: 'dmarc=pass header.from=example.com',
    });
    assert.equal(
      value,
      'mx.example.net;\r\n spf=pass smtp.mailfrom=example.com;\r\n dkim=pass header.d=example.com;\r\n' +
        ' dkim=fail header.d=other.example;\r\n arc=none;\r\n dmarc=pass header.from=example.com',
    );
  });

  it('no signature is dkim=none', () => {
    const value = buildAuthResults('mx.example.net', { spf: 'spf=none', dkim: [], arc: 'arc=none', dmarc: 'dmarc=none' });
    assert.equal(value, 'mx.example.net;\r\n spf=none;\r\n dkim=none;\r\n arc=none;\r\n dmarc=none');
  });

  it('folds long entries at whitespace and strips injected line breaks', () => {
    const long = `spf=fail (${'word '.repeat(60).trim()}) smtp.mailfrom=example.com`;
    const value = buildAuthResults('mx.example.net', { spf: long, dkim: ['dkim=none\r\nX-Evil: 1'], arc: 'arc=none', dmarc: 'dmarc=none' });
    const lines = value.split('\r\n');
    for (const line of lines) assert.ok(line.length <= 78, line);
    for (const line of lines.slice(1)) assert.ok(line.startsWith(' '), line);
    assert.ok(!lines.some((l) => l.startsWith('X-Evil')));
    assert.equal(value.replace(/\r\n(?=[ \t])/g, '').includes(long), true, 'unfolding gives back the text');
    assert.match(value, /\r\n dkim=none  X-Evil: 1;\r\n/);
  });
});
