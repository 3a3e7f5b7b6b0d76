import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeXtext, HELO_CAPABILITIES, mailParameters, parseCapabilities, rcptParameters, xclientArguments, type Capabilities,
} from '../../../src/relay/extensions.ts';
import { buildResponse } from '../../../src/relay/reply.ts';

const POSTFIX_EHLO = buildResponse(250, [
  'mx.example.org', 'PIPELINING', 'SIZE 10240000', 'VRFY', 'ETRN', 'STARTTLS', 'ENHANCEDSTATUSCODES', '8BITMIME',
  'DSN', 'SMTPUTF8', 'CHUNKING', 'XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT',
]);
const ALL: Capabilities = parseCapabilities(POSTFIX_EHLO);
const NONE: Capabilities = { ...parseCapabilities(buildResponse(250, ['mx.example.org'])) };

describe('parseCapabilities', () => {
  it('reads what Postfix 3.7 advertises', () => {
    assert.deepEqual({ ...ALL, xclient: [...(ALL.xclient ?? [])] }, {
      esmtp: true, size: 10240000, eightBitMime: true, smtpUtf8: true, dsn: true, pipelining: true,
      enhancedStatusCodes: true, starttls: true,
      xclient: ['NAME', 'ADDR', 'PROTO', 'HELO', 'REVERSE_NAME', 'PORT', 'LOGIN', 'DESTADDR', 'DESTPORT'],
    });
  });

  it('treats SIZE without a number as "no limit declared" and absent SIZE as null', () => {
    assert.equal(parseCapabilities(buildResponse(250, ['x', 'size'])).size, 0);
    assert.equal(NONE.size, null);
    assert.equal(NONE.xclient, null);
    assert.equal(HELO_CAPABILITIES.esmtp, false);
  });
});

describe('encodeXtext', () => {
  it('encodes +, =, space, controls and non-ASCII bytes (RFC 3461 §4)', () => {
    assert.equal(encodeXtext('a+b=c d\r\né'), 'a+2Bb+3Dc+20d+0D+0A+C3+A9');
    assert.equal(encodeXtext('[UNAVAILABLE]'), '[UNAVAILABLE]');
  });
});

describe('mailParameters', () => {
  const raw = { size: '12345', BODY: '8bitmime', SMTPUTF8: true, RET: 'hdrs', ENVID: 'id+1 x', AUTH: '<>', 'X-FOO': 'bar' } as const;

  it('passes what the backend advertised, normalised and re-encoded', () => {
    assert.deepEqual(mailParameters(raw, ALL), ['SIZE=12345', 'BODY=8BITMIME', 'SMTPUTF8', 'RET=HDRS', 'ENVID=id+2B1+20x']);
  });

  it('drops everything the backend did not advertise', () => {
    assert.deepEqual(mailParameters(raw, NONE), []);
  });

  it('drops values that are not valid for the keyword (no injection through a value)', () => {
    const bad = { SIZE: '12 NOTIFY=NEVER', BODY: 'BINARYMIME', SMTPUTF8: 'yes', RET: 'ALL', ENVID: 'x'.repeat(101) };
    assert.deepEqual(mailParameters(bad, ALL), []);
  });
});

describe('rcptParameters', () => {
  it('passes NOTIFY and ORCPT only with DSN, ORCPT re-encoded as xtext', () => {
    const raw = { notify: 'success,failure', ORCPT: 'rfc822;user+tag@example.org', FOO: 'x' };
    assert.deepEqual(rcptParameters(raw, ALL), ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;user+2Btag@example.org']);
    assert.deepEqual(rcptParameters(raw, NONE), []);
  });

  it('drops malformed NOTIFY and ORCPT', () => {
    assert.deepEqual(rcptParameters({ NOTIFY: 'NEVER,SUCCESS', ORCPT: 'no-type' }, ALL), []);
  });
});

describe('xclientArguments', () => {
  const offered = ALL.xclient ?? new Set<string>();

  it('sends ADDR, NAME, PROTO and HELO, xtext-encoded, IPv6 prefixed', () => {
    assert.deepEqual(
      xclientArguments({ addr: '2001:db8::1', name: 'mail.example.net', helo: 'odd=helo', proto: 'ESMTP' }, offered),
      ['ADDR=IPV6:2001:db8::1', 'NAME=mail.example.net', 'PROTO=ESMTP', 'HELO=odd+3Dhelo'],
    );
  });

  it('says [UNAVAILABLE] for a missing reverse name and an empty HELO', () => {
    assert.deepEqual(xclientArguments({ addr: '192.0.2.7', name: null, helo: '', port: 4025 }, offered),
      ['ADDR=192.0.2.7', 'NAME=[UNAVAILABLE]', 'PORT=4025', 'HELO=[UNAVAILABLE]']);
  });

  it('sends only the attributes the backend offered', () => {
    assert.deepEqual(xclientArguments({ addr: '192.0.2.7', name: 'x.example', helo: 'h', proto: 'SMTP' }, new Set(['ADDR', 'HELO'])),
      ['ADDR=192.0.2.7', 'HELO=h']);
  });
});
