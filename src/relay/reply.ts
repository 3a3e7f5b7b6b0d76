/**
 * SMTP reply parsing (RFC 5321 §4.2). Replies are read as bytes and split at LF (a CR before
 * it is dropped); anything that is not "NNN", "NNN text" or "NNN-text" is a protocol error,
 * as is a multi-line reply whose lines disagree on the code.
 */
import { BackendError } from './backend-error.ts';

export interface SmtpResponse {
  readonly code: number;
  /** RFC 3463 enhanced status code of the first line ("5.1.1"), or null when there is none. */
  readonly enhanced: string | null;
  /** The lines' texts without codes, joined with one space: what we mirror to our client. */
  readonly text: string;
  /** Each line's text without the reply code and without the enhanced code. */
  readonly lines: readonly string[];
}

// RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; we are lenient but bounded.
const MAX_LINE_LENGTH = 8192;
const MAX_LINES = 256;
// RFC 5321 §4.2: the first digit is 2 to 5 (1yz is not used in SMTP).
const REPLY_LINE = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s;
// RFC 3463 §2 / RFC 2034 §4: class.subject.detail, then a space or the end of the line.
const ENHANCED = /^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: +|$)/;

export function formatResponse(reply: SmtpResponse): string {
  return [String(reply.code), reply.enhanced, reply.text].filter((p) => p !== null && p !== '').join(' ');
}

export function isPositive(reply: SmtpResponse): boolean {
  return reply.code >= 200 && reply.code < 300;
}

/** Assembles replies from the bytes of a connection, across any chunking. */
export class ReplyReader {
  #partial = '';
  #code: number | null = null;
  #texts: string[] = [];

  /** True while a line or a multi-line reply is incomplete (STARTTLS must see none: RFC 3207 §4.2). */
  get pending(): boolean {
    return this.#partial.length > 0 || this.#texts.length > 0;
  }

  /** Returns the replies completed by this chunk; throws BackendError('protocol') on garbage. */
  push(chunk: Buffer): SmtpResponse[] {
    // latin1 maps bytes 1:1, so splitting never breaks a UTF-8 sequence; lines are decoded whole.
    const data = this.#partial + chunk.toString('latin1');
    const replies: SmtpResponse[] = [];
    let start = 0;
    for (let nl = data.indexOf('\n', start); nl >= 0; nl = data.indexOf('\n', start)) {
      const end = nl > start && data.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      const reply = this.#line(data.slice(start, end));
      start = nl + 1;
      if (reply) replies.push(reply);
    }
    this.#partial = data.slice(start);
    if (this.#partial.length > MAX_LINE_LENGTH) throw protocolError('reply line too long');
    return replies;
  }

  #line(raw: string): SmtpResponse | null {
    if (raw.length > MAX_LINE_LENGTH) throw protocolError('reply line too long');
    const line = Buffer.from(raw, 'latin1').toString('utf8');
    const match = REPLY_LINE.exec(line);
    if (!match) throw protocolError(`malformed reply line ${JSON.stringify(line.slice(0, 80))}`);
    const code = Number(match[1]);
    if (this.#code !== null && this.#code !== code) {
      throw protocolError(`multi-line reply changes code from ${this.#code} to ${code}`);
    }
    this.#code = code;
    this.#texts.push(match[3] ?? '');
    if (this.#texts.length > MAX_LINES) throw protocolError('multi-line reply too long');
    if (match[2] === '-') return null;
    const reply = buildResponse(code, this.#texts);
    this.#code = null;
    this.#texts = [];
    return reply;
  }
}

/** Splits enhanced codes off the lines: only codes whose class matches the reply's (2xx ↔ 2.x.x). */
export function buildResponse(code: number, texts: readonly string[]): SmtpResponse {
  const klass = String(code)[0];
  let enhanced: string | null = null;
  const lines = texts.map((text, i) => {
    const match = ENHANCED.exec(text);
    if (!match?.[1] || match[1][0] !== klass) return text;
    if (i === 0) enhanced = match[1];
    return text.slice(match[0].length);
  });
  return { code, enhanced, text: lines.join(' ').trim(), lines };
}

function protocolError(message: string): BackendError {
  return new BackendError('protocol', `backend protocol error: ${message}`);
}
