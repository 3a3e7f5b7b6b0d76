/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildReceived, formatRfc5322Date, protocolKeyword, type ReceivedInput } from '../../../src/message/received.ts';
import { rewriteMessage } from '../../../src/message/headers.ts';

const DATE = new Date(Date.UTC(2025, 5, 2, 9, 5, 7));

function input(over: Partial<ReceivedInput> = {}): ReceivedInput {
  return {
    helo: 'mail.example.com', ehlo: true, ptr: 'mail.example.com', ip: '192.0.2.1', hostname: 'mx.postern.test',
    tls: null, sessionId: 'a1B2c3', recipients: ['bob@example.org'], date: DATE, ...over,
  };
}

describe('buildReceived (RFC 5321 §4.4)', () => {
  it('plain ESMTP with one recipient', () => {
    assert.deepEqual(buildReceived(input()), {
      name: 'Received',
      value: 'from mail.example.com (mail.example.com [192.0.2.1]) by mx.postern.test (Postern) with ESMTP id a1B2c3 for <bob@example.org>; Mon, 2 Jun 2025 09:05:07 +0000',
    });
  });

  it('TLS, no PTR, IPv6, several recipients (no "for")', () => {
    const { value } = buildReceived(input({
      ptr: null, ip: '2001:db8::1', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, recipients: ['a@x.example', 'b@x.example'],
    }));
    assert.equal(value, 'from mail.example.com (unknown [IPv6:2001:db8::1]) by mx.postern.test (Postern) with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384) id a1B2c3; Mon, 2 Jun 2025 09:05:07 +0000');
  });

  it('protocol keywords (RFC 3848, RFC 6531)', () => {
    assert.equal(protocolKeyword({ ehlo: false, tls: null }), 'SMTP');
    assert.equal(protocolKeyword({ ehlo: true, tls: null }), 'ESMTP');
    assert.equal(protocolKeyword({ ehlo: true, tls: {} }), 'ESMTPS');
    assert.equal(protocolKeyword({ ehlo: true, tls: {}, authenticated: true }), 'ESMTPSA');
    assert.equal(protocolKeyword({ ehlo: true, tls: null, authenticated: true }), 'ESMTPA');
    assert.equal(protocolKeyword({ ehlo: true, tls: {}, smtputf8: true }), 'UTF8SMTPS');
  });

  it('a HELO with CRLF cannot inject a header line, a comment or the date separator', () => {
    const field = buildReceived(input({ helo: 'evil.example\r\nX-Injected: yes (;)', recipients: ['x@y.example>\r\nBcc: z@w'] }));
    assert.equal(
      field.value,
      'from evil.example__X-Injected:_yes____ (mail.example.com [192.0.2.1]) by mx.postern.test (Postern) with ESMTP id a1B2c3; Mon, 2 Jun 2025 09:05:07 +0000',
    );
    const out = rewriteMessage(Buffer.from('Subject: s\r\n\r\nb'), 'mx.postern.test', [field]).toString();
    const header = out.slice(0, out.indexOf('\r\n\r\n'));
    assert.deepEqual(header.split('\r\n').filter((l) => /^\S/.test(l)).map((l) => l.split(':')[0]), ['Received', 'Subject']);
  });

  it('an empty HELO is written as unknown', () => {
    assert.match(buildReceived(input({ helo: '' })).value, /^from unknown \(/);
  });

  it('dates are RFC 5322 in UTC whatever the time zone', () => {
    assert.equal(formatRfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 59, 59))), 'Thu, 29 Feb 2024 23:59:59 +0000');
  });
});
