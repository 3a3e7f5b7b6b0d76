/**
 * What the fuzzer sends (fast-check arbitraries): SMTP sessions built from commands with
 * hostile arguments, raw byte streams (CR, LF, NUL, 8-bit, long lines, pipelined commands,
 * end-of-data look-alikes), PROXY v1/v2 headers from a trusted and an untrusted peer, and
 * messages (header syntax, MIME trees, DKIM-Signature tags, forged trace and result fields).
 * Each input carries what the gateway must do with it where that is known (the oracle):
 * a forged From of a p=reject domain, a message without From and one whose first line starts
 * with whitespace must be refused, a benign message delivered unaltered.
 */
import fc from 'fast-check';

export const OUR_DOMAIN = 'example.net';
/** Publishes DMARC p=reject (test/harness/world.ts standardZone) and SPF for 127.0.0.1 only. */
export const REJECT_DOMAIN = 'good.example';
/** Publishes nothing: mail from it is accepted by the default policy. */
export const PLAIN_DOMAIN = 'plain.example';

/** One command line (no CR/LF inside) and, for RCPT, the address as written. */
export interface Command {
  readonly kind: 'cmd';
  readonly line: string;
  readonly rcpt?: string;
}

/**
 * A message for DATA, as content (the runner dot-stuffs CRLF-led dots and adds the terminator).
 * refuse: the end of DATA must not be 2xx: a forged From of REJECT_DOMAIN (no way to
 * authenticate), no From at all (no author to authenticate; a backend may add one from the
 * envelope sender), a first line starting with whitespace (it would continue our Received).
 * intact: CRLF-only, benign: when delivered, the backend's copy must hold it byte for byte.
 */
export interface MessageChunk {
  readonly kind: 'message';
  readonly content: Buffer;
  readonly expect: 'refuse' | 'intact' | 'any';
  /** What a refused message is, for the problem report. */
  readonly what?: string;
}

export interface StepInput {
  readonly mode: 'step';
  readonly peer: 'trusted' | 'untrusted';
  /** A PROXY header sent first, and the client address it validly claims (null: none valid). */
  /**
   * A PROXY header sent first, and the client address it validly claims: null when it claims
   * none (invalid, LOCAL, UNKNOWN: the socket's address stays), undefined when not known.
   */
  readonly proxy: { readonly bytes: Buffer; readonly claims: string | null | undefined } | null;
  readonly chunks: ReadonlyArray<Command | MessageChunk>;
}

export interface RawInput {
  readonly mode: 'raw';
  readonly peer: 'untrusted';
  /** Written as it is, in pieces, without waiting for replies (pipelining and worse). */
  readonly pieces: readonly Buffer[];
  /** Written before the greeting (an early talker, refused with 421) rather than after it. */
  readonly early: boolean;
  /** Starts with a PROXY header (which an untrusted peer may not send). */
  readonly proxied?: boolean;
}

export type FuzzInput = StepInput | RawInput;

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

// ---- addresses -------------------------------------------------------------------------------

const localPart = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,15}$/) },
  { weight: 2, arbitrary: fc.constantFrom('postmaster', 'User.Name', 'x+tag', 'a', '"user"', '"a b"') },
  // routing syntax a backend might honour (relaying for us), quoted or not
  { weight: 2, arbitrary: fc.constantFrom('user%foreign.example', 'user!foreign.example', '"user@foreign.example"', '"user%foreign.example"', 'us\\@er', '"a\\"b"', '@foreign.example:user', 'user@foreign.example', '', '.user', 'user.', 'üser') },
);
const domain = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(OUR_DOMAIN, 'EXAMPLE.NET', 'Example.Net', `${OUR_DOMAIN}.`) },
  { weight: 2, arbitrary: fc.constantFrom('foreign.example', `sub.${OUR_DOMAIN}`, `${OUR_DOMAIN}.foreign.example`, 'examp1e.net', '[127.0.0.1]', '[IPv6:::1]', 'localhost', `${'a'.repeat(64)}.${OUR_DOMAIN}`, `${OUR_DOMAIN}%foreign.example`) },
  { weight: 1, arbitrary: fc.domain() },
);
export const address = fc.tuple(localPart, domain).map(([l, d]) => `${l}@${d}`);

/** The parts of a recipient as a relay would read them: the domain after the last "@". */
export function splitAddress(a: string): { local: string; domain: string } {
  const at = a.lastIndexOf('@');
  return at < 0 ? { local: a, domain: '' } : { local: a.slice(0, at), domain: a.slice(at + 1) };
}

/**
 * May a recipient get 250? Only in our domain, and only without routing syntax in the local
 * part (%, !, @, :, a backslash; quoted or not: DESIGN.md "RCPT TO"). A source route before it
 * ("@relay.example:user@…") is ignored, as RFC 5321 Appendix C tells servers to do: the mailbox
 * after it is the recipient (the backend is asked about that one, and checked apart).
 */
export function mayAccept(rcpt: string): boolean {
  const { local, domain: d } = splitAddress(rcpt.trim().replace(/^<|>$/g, '').replace(/^@[^:]*:/, ''));
  return d.toLowerCase().replace(/\.$/, '') === OUR_DOMAIN && !/[%!@:\\]/.test(local) && local.length > 0;
}

// ---- commands --------------------------------------------------------------------------------

/** Printable noise, 8-bit and NUL, never CR or LF (those would split the line). */
const lineNoise = fc.string({ unit: fc.oneof(fc.constantFrom('\x00', '\x7f', '\xff', '\xe9', '<', '>', ':', '@', ' ', '\t', '"', '\\'), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }).filter((c) => c !== '\r' && c !== '\n')), maxLength: 40 });

const params = fc.array(fc.constantFrom(' SIZE=1000', ' BODY=8BITMIME', ' SMTPUTF8', ' RET=HDRS', ' ENVID=x', ' NOTIFY=NEVER', ' ORCPT=rfc822;x@foreign.example', ' SIZE=99999999999', ' FOO=BAR', ' AUTH=<>'), { maxLength: 2 }).map((p) => p.join(''));

const helo = fc.oneof(fc.constantFrom('EHLO client.fuzz.test', 'HELO client.fuzz.test', 'EHLO [127.0.0.1]', 'EHLO', 'ehlo x'), lineNoise.map((n) => `EHLO ${n}`));

const mailFrom = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(`MAIL FROM:<bounce@${PLAIN_DOMAIN}>`, 'MAIL FROM:<>') },
  { weight: 2, arbitrary: fc.tuple(address, params).map(([a, p]) => `MAIL FROM:<${a}>${p}`) },
  { weight: 1, arbitrary: lineNoise.map((n) => `MAIL FROM:${n}`) },
);

/** `rcpt` only where the address is bracketed: without brackets what the server reads as the address is its guess. */
const rcptTo = fc.tuple(address, params, fc.constantFrom('RCPT TO:<%>', 'RCPT TO: <%>', 'rcpt to:<%>', 'RCPT TO:%', 'RCPT  TO:<%>'))
  .map(([a, p, form]): Command => ({ kind: 'cmd', line: form.replace('%', a) + p, ...(form.includes('<') ? { rcpt: a } : {}) }));

const otherCommand = fc.oneof(
  fc.constantFrom('NOOP', 'RSET', 'HELP', 'VRFY postmaster', `EXPN list@${OUR_DOMAIN}`, 'STARTTLS', 'AUTH PLAIN AGFiYwBkZWY=', 'BDAT 10 LAST', 'XCLIENT ADDR=192.0.2.1', 'ETRN example.net', 'TURN', 'DATA', 'QUIT', '.', '', 'MAIL FROM:<x@y> BODY=BINARYMIME'),
  lineNoise,
  fc.integer({ min: 500, max: 20_000 }).map((n) => `NOOP ${'x'.repeat(n)}`),
);

const cmd = (a: fc.Arbitrary<string>): fc.Arbitrary<Command> => a.map((line) => ({ kind: 'cmd', line }));

// ---- messages --------------------------------------------------------------------------------

const FORGED_FROM = [
  `From: <ceo@${REJECT_DOMAIN}>`, `From: ceo@${REJECT_DOMAIN}`, `From: "CEO" <ceo@${REJECT_DOMAIN}>`,
  `From: CEO <ceo@GOOD.EXAMPLE>`, `From: ceo@${REJECT_DOMAIN} (the CEO)`, `From:ceo@${REJECT_DOMAIN}`,
  `FROM: ceo@${REJECT_DOMAIN}`, `from: <ceo@${REJECT_DOMAIN}>`, `From: =?utf-8?q?C=C3=89O?= <ceo@${REJECT_DOMAIN}>`,
  `From: "CEO"\r\n <ceo@${REJECT_DOMAIN}>`, `From: "billing@${PLAIN_DOMAIN}" <ceo@${REJECT_DOMAIN}>`, `From:\t<ceo@${REJECT_DOMAIN}>`,
  // several authors, one of them the p=reject domain (DMARC composition attacks; refused by the default policy)
  `From: <ceo@${REJECT_DOMAIN}>\r\nFrom: <news@${PLAIN_DOMAIN}>`, `From: <news@${PLAIN_DOMAIN}>\r\nFrom: <ceo@${REJECT_DOMAIN}>`,
  `From: ceo@${REJECT_DOMAIN}, news@${PLAIN_DOMAIN}`, `From: news@${PLAIN_DOMAIN}, ceo@${REJECT_DOMAIN}`, `From: <ceo@${REJECT_DOMAIN}>\rFrom: <news@${PLAIN_DOMAIN}>`,
];

const headerValue = fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((s) => s.replace(/[\r\n]/g, ' ')),
  fc.constantFrom('=?utf-8?b?w6nDqQ==?=', '=?iso-8859-1?q?caf=E9?=', 'Grüße', '', ' ', '\t', 'a\r\n continued', 'x'.repeat(2_000)),
);

const dkimTag = fc.oneof(
  fc.constantFrom('v=1', 'v=2', 'a=rsa-sha256', 'a=ed25519-sha256', 'a=rsa-sha1', 'a=hmac', `d=${REJECT_DOMAIN}`, `d=sub.${REJECT_DOMAIN}`, `d=${PLAIN_DOMAIN}`, 's=s1', 's=s2', 's=missing', 's=',
    'c=relaxed/relaxed', 'c=simple', 'c=bogus/x', 'h=from:to:subject', 'h=from:from', 'h=', 'bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'bh=!!',
    'b=', 'l=0', 'l=-1', 'l=99999999999', 'q=dns/txt', 'q=http', 't=0', 't=99999999999', 'x=1', `i=@${REJECT_DOMAIN}`, `i=x@${PLAIN_DOMAIN}`, 'z=From:x', ';', '=', 'b=\r\n\tAAAA'),
  fc.tuple(fc.constantFrom('b', 'bh', 'd', 's', 'h', 'a'), fc.base64String({ maxLength: 80 })).map(([k, v]) => `${k}=${v}`),
);
const dkimSignature = fc.array(dkimTag, { minLength: 1, maxLength: 12 }).map((tags) => `DKIM-Signature: ${tags.join('; ')}`);

/** Fields a forger adds: signatures, results and trace fields claiming to be ours, and any other field but From. */
const forgedHeader = fc.oneof(
  dkimSignature,
  fc.constantFrom(
    'Authentication-Results: mx.postern.test; dkim=pass; dmarc=pass', 'Authentication-Results : mx.postern.test; dmarc=pass',
    'ARC-Authentication-Results: i=1; mx.postern.test; dmarc=pass', 'X-Postern-Verdict: accept; rule=fake', 'Received: from forged (forged [192.0.2.1]) by mx.postern.test',
    'Sender: <ceo@good.example>', 'Reply-To: x@foreign.example', 'MIME-Version: 1.0', 'Content-Transfer-Encoding: 8bit',
  ),
  fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/).filter((n) => n.toLowerCase() !== 'from'), headerValue).map(([n, v]) => `${n}: ${v}`),
);
/** And what breaks the header syntax itself (where the header section ends is then the reader's guess). */
const extraHeader = fc.oneof(forgedHeader, fc.constantFrom('No colon here', ' leading whitespace line', ':empty name', 'From: a@b, c@d', 'From:'));

/** A MIME tree of depth ≤ 3, CRLF only. */
const mime: fc.Arbitrary<string> = fc.letrec<{ part: string }>((tie) => ({
  part: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(fc.constantFrom('text/plain; charset=utf-8', 'text/html', 'application/octet-stream', 'message/rfc822', 'text/plain; charset=iso-8859-1'), fc.constantFrom('7bit', '8bit', 'base64', 'quoted-printable', 'x-bogus'), fc.lorem({ maxCount: 20 }))
      .map(([type, cte, text]) => `Content-Type: ${type}\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${cte === 'base64' ? Buffer.from(text).toString('base64') : text}\r\n`),
    fc.tuple(fc.stringMatching(/^[A-Za-z0-9'()+_,.\/:=?-]{1,30}$/), fc.array(tie('part'), { minLength: 0, maxLength: 3 }), fc.boolean())
      .map(([boundary, parts, closed]) => `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\npreamble\r\n${parts.map((p) => `--${boundary}\r\n${p}`).join('')}${closed ? `--${boundary}--\r\n` : ''}`),
  ),
})).part;

/** Body text with the sequences that end DATA at Postfix but not at us, and other hostile bytes. */
const hostileBody = fc.array(fc.oneof(
  fc.lorem({ maxCount: 8 }),
  fc.constantFrom('\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '\r\n.\r\n', '\r\n..\r\n', '.\r\n', '\r\n.', '\x00', '\r', '\n', '\r\r\n', '\xff\xfe', 'é', '\r\nMAIL FROM:<smuggled@foreign.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nsmuggled\r\n'),
  fc.integer({ min: 990, max: 20_000 }).map((n) => 'L'.repeat(n)),
), { maxLength: 12 }).map((parts) => parts.join(''));

const plainBody = fc.oneof(mime.map((m) => `MIME-Version: 1.0\r\n${m}`), fc.lorem({ maxCount: 40 }).map((t) => `Subject: plain\r\n\r\n${t.replace(/\r?\n/g, '\r\n')}\r\n`));

export const forgedMessage: fc.Arbitrary<MessageChunk> = fc.tuple(fc.constantFrom(...FORGED_FROM), fc.array(forgedHeader, { maxLength: 4 }), hostileBody)
  .map(([from, extra, body]) => ({ kind: 'message', expect: 'refuse', what: 'a forged From of a p=reject domain', content: b(`${[...extra, from, `To: <user@${OUR_DOMAIN}>`, 'Subject: invoice'].join('\r\n')}\r\n\r\n${body}\r\n`) }));

/** No From field anywhere in the header (forgedHeader never writes one), or no header section at all. */
export const noFromMessage: fc.Arbitrary<MessageChunk> = fc.tuple(fc.array(forgedHeader, { maxLength: 5 }), fc.oneof(hostileBody.map((body) => `\r\n${body}\r\n`), plainBody))
  .map(([extra, rest]) => ({ kind: 'message', expect: 'refuse', what: 'a message without From', content: b(`${[...extra, `To: <user@${OUR_DOMAIN}>`].join('\r\n')}\r\n${rest}`) }));

/** A first line starting with SP or HTAB before an otherwise deliverable (or forged) message. */
export const leadingWhitespaceMessage: fc.Arbitrary<MessageChunk> = fc.tuple(
  fc.constantFrom(' ', '\t', '  \t'),
  fc.oneof(fc.constantFrom('', 'x', 'by mx.postern.test (Postern) with ESMTPS id trusted', `From: <ceo@${REJECT_DOMAIN}>`), fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ' '))),
  fc.constantFrom(`From: <news@${PLAIN_DOMAIN}>`, `From: <ceo@${REJECT_DOMAIN}>`),
  plainBody,
).map(([wsp, rest, from, body]) => ({ kind: 'message', expect: 'refuse', what: 'a message whose first line starts with whitespace', content: b(`${wsp}${rest}\r\n${from}\r\nTo: <user@${OUR_DOMAIN}>\r\n${body}`) }));

/** From PLAIN_DOMAIN (no DMARC), CRLF-only, no dot-only lines: delivered, it must arrive unaltered. */
export const benignMessage: fc.Arbitrary<MessageChunk> = fc.tuple(fc.integer({ min: 0, max: 1e9 }), plainBody)
  .map(([n, body]) => ({ kind: 'message', expect: 'intact', content: b(`From: <news@${PLAIN_DOMAIN}>\r\nTo: <user@${OUR_DOMAIN}>\r\nMessage-ID: <fuzz-${n}@${PLAIN_DOMAIN}>\r\n${body}`) }));

const anyMessage: fc.Arbitrary<MessageChunk> = fc.tuple(fc.array(extraHeader, { maxLength: 8 }), fc.oneof(hostileBody, plainBody))
  .map(([headers, body]) => ({ kind: 'message', expect: 'any', content: b(`${headers.join('\r\n')}\r\n\r\n${body}`) }));

// ---- sessions --------------------------------------------------------------------------------

/** MAIL, RCPT…, DATA and a message, with other commands mixed in (the runner skips the message unless DATA got 354). */
const transaction = (message: fc.Arbitrary<MessageChunk>): fc.Arbitrary<Array<Command | MessageChunk>> =>
  fc.tuple(cmd(mailFrom), fc.array(rcptTo, { maxLength: 3 }), fc.nat(3), fc.array(cmd(otherCommand), { maxLength: 2 }), message)
    .map(([mail, rcpts, at, others, msg]) => {
      // one recipient of ours among the others, so that most transactions reach DATA
      const all = [...rcpts];
      all.splice(Math.min(at, all.length), 0, { kind: 'cmd', line: `RCPT TO:<user@${OUR_DOMAIN}>`, rcpt: `user@${OUR_DOMAIN}` });
      return [mail, ...all, ...others, { kind: 'cmd', line: 'DATA' }, msg];
    });

/** A delivery that should get through: our recipient, a benign message. */
const cleanTransaction = fc.tuple(fc.constantFrom('user', 'postmaster', 'info'), benignMessage)
  .map(([local, msg]): Array<Command | MessageChunk> => [{ kind: 'cmd', line: `MAIL FROM:<bounce@${PLAIN_DOMAIN}>` }, { kind: 'cmd', line: `RCPT TO:<${local}@${OUR_DOMAIN}>`, rcpt: `${local}@${OUR_DOMAIN}` }, { kind: 'cmd', line: 'DATA' }, msg]);

const session = fc.tuple(cmd(helo), fc.array(fc.oneof(
  { weight: 3, arbitrary: transaction(fc.oneof(forgedMessage, benignMessage, anyMessage, noFromMessage, leadingWhitespaceMessage)) },
  { weight: 1, arbitrary: cleanTransaction },
  { weight: 1, arbitrary: fc.array(cmd(otherCommand), { minLength: 1, maxLength: 3 }) },
), { minLength: 1, maxLength: 3 })).map(([h, parts]) => [h, ...parts.flat()]);

// ---- PROXY headers ---------------------------------------------------------------------------

const ipv4 = fc.ipV4();
const proxyHeader: fc.Arbitrary<{ bytes: Buffer; claims: string | null | undefined }> = fc.oneof(
  ipv4.map((ip) => ({ bytes: b(`PROXY TCP4 ${ip} 127.0.0.1 40000 25\r\n`), claims: ip })),
  fc.ipV6().map((ip) => ({ bytes: b(`PROXY TCP6 ${ip} ::1 40000 25\r\n`), claims: ip })),
  ipv4.map((ip) => ({ bytes: proxyV2(ip), claims: ip })),
  fc.constantFrom('PROXY UNKNOWN\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY TCP4 999.1.1.1 127.0.0.1 1 25\r\n', 'PROXY TCP4 ::1 127.0.0.1 1 25\r\n', 'PROXY TCP4 1.2.3.4\r\n',
    'PROXY TCP4 1.2.3.4 127.0.0.1 99999 25\r\n', `PROXY ${'x'.repeat(200)}\r\n`, 'PROXY TCP4 1.2.3.4 127.0.0.1 1 25', 'proxy tcp4 1.2.3.4 127.0.0.1 1 25\r\n', 'EHLO not-a-proxy\r\n')
    .map((s) => ({ bytes: b(s), claims: s === 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n' ? '1.2.3.4' : null })),
  fc.uint8Array({ maxLength: 60 }).map((junk) => ({ bytes: Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from(junk)]), claims: undefined })),
);

/** PROXY v2, PROXY command, TCP over IPv4 (spec §2.2). */
function proxyV2(ip: string): Buffer {
  const head = Buffer.from('0d0a0d0a000d0a515549540a2111000c', 'hex');
  const addr = Buffer.alloc(12);
  ip.split('.').forEach((o, i) => addr.writeUInt8(Number(o), i));
  addr.writeUInt8(127, 4); addr.writeUInt8(1, 7);
  addr.writeUInt16BE(40000, 8); addr.writeUInt16BE(25, 10);
  return Buffer.concat([head, addr]);
}

// ---- raw streams -----------------------------------------------------------------------------

const rawPiece = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  fc.constantFrom('\r\n', '\n', '\r', '\x00', 'EHLO x\r\n', 'MAIL FROM:<a@b>\r\n', `RCPT TO:<user@${OUR_DOMAIN}>\r\n`, 'RCPT TO:<user@foreign.example>\r\n', 'DATA\r\n', '.\r\n', 'RSET\r\n', 'BDAT 5\r\n', '\r\n.\r\n', '\n.\n', 'QUIT\r\n').map(b),
  fc.integer({ min: 1_000, max: 40_000 }).map((n) => b('A'.repeat(n))),
  session.map(sessionBytes),
);

/** A session's chunks as one pipelined byte stream (messages terminated as they are, not stuffed). */
function sessionBytes(chunks: ReadonlyArray<Command | MessageChunk>): Buffer {
  return b(chunks.map((c) => (c.kind === 'cmd' ? `${c.line}\r\n` : `${c.content.toString('latin1')}\r\n.\r\n`)).join(''));
}

export const fuzzInput: fc.Arbitrary<FuzzInput> = fc.oneof(
  { weight: 5, arbitrary: session.map((chunks): FuzzInput => ({ mode: 'step', peer: 'untrusted', proxy: null, chunks })) },
  // from an untrusted peer a PROXY header is just bytes of the session (after the greeting)
  { weight: 1, arbitrary: fc.tuple(proxyHeader, session).map(([proxy, chunks]): FuzzInput => ({ mode: 'raw', peer: 'untrusted', pieces: [proxy.bytes, sessionBytes(chunks)], early: false, proxied: true })) },
  { weight: 2, arbitrary: fc.tuple(proxyHeader, fc.oneof(session, cleanTransaction.map((t) => [{ kind: 'cmd' as const, line: 'EHLO proxied.fuzz.test' }, ...t])))
    .map(([proxy, chunks]): FuzzInput => ({ mode: 'step', peer: 'trusted', proxy, chunks })) },
  { weight: 3, arbitrary: fc.tuple(fc.array(rawPiece, { minLength: 1, maxLength: 8 }), fc.nat(7)).map(([pieces, n]): FuzzInput => ({ mode: 'raw', peer: 'untrusted', pieces, early: n === 0 })) },
);
