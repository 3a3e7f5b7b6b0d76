import { Transform, type TransformCallback } from 'node:stream';
import { selectSignatures } from './dkim-selection.ts';
import { fieldKey } from './field-key.ts';

export { fieldKey };

/**
 * The header section on its way to the verifier (mailauth), bounded before mailauth sees it.
 *
 * mailauth's parseHeaders joins the continuation lines of a field with repeated
 * Array#concat and removes each one with Array#splice: its cost grows with (lines of a field)²
 * and with (continuation lines × fields). One field folded 30,000 times blocks the event loop
 * for seconds, a 1 MB header of short folded fields for minutes (docs/upstream/
 * mailauth-header-parser.md). This stream sits between the line-ending normaliser and the
 * verifier, scans the header section line by line (linear), holds its fields until the blank
 * line that ends it (mailauth parses nothing before that line either, and the fields are views
 * of the chunks the pipeline keeps anyway), and:
 * - stops at the first limit crossed (bytes, fields, lines per field, lines): it then feeds the
 *   verifier nothing more and is destroyed with a HeaderLimitError, so no parse and no DNS work
 *   is done for a message that will be refused; `breach` says which limit (552 5.3.4);
 * - withholds DKIM-Signature fields past `maxDkimSignatures` (RFC 6376 §6.1 lets a verifier
 *   limit the signatures it evaluates), those aligned with the From domain kept first, and
 *   signature fields whose h= lists more than `maxHeaderNames` names (message/dkim-selection.ts):
 *   they are never verified, only counted;
 * - stops when the message's first line starts with whitespace (`malformed`): RFC 5322 §2.2
 *   wants a header section to start with a field name; such a line could only continue a
 *   field we put on top (our Received), and moving it into the body instead would leave the
 *   message without its sender's header, From included (a backend adding a missing From
 *   would then make the envelope sender the author). The message is refused (550 5.6.0).
 * The bytes relayed are not this stream's output: the pipeline keeps its own copy.
 */

export interface HeaderLimits {
  /** Bytes of the header section (every field line with its CRLF, not the blank line). */
  readonly maxHeaderBytes: number;
  readonly maxFields: number;
  /** Physical lines of one field: its first line and its continuation lines. */
  readonly maxFieldLines: number;
  /** Physical lines of the whole header section. */
  readonly maxLines: number;
  /** DKIM-Signature fields handed to the verifier (aligned with From first); the others are withheld. */
  readonly maxDkimSignatures: number;
  /** h= names of a DKIM-Signature or ARC-Message-Signature; a field with more is withheld. */
  readonly maxHeaderNames: number;
}

/** Which limit a header crossed: a metric label and the subject of the 552 reply. */
export type HeaderLimit = 'header-bytes' | 'header-fields' | 'header-field-lines' | 'header-lines';

export interface HeaderBreach {
  readonly limit: HeaderLimit;
  readonly max: number;
}

/** What makes a header section unreadable as one, whatever its size: a metric-safe label. */
export type HeaderMalformation = 'leading-whitespace';

export class HeaderSyntaxError extends Error {
  readonly malformation: HeaderMalformation;
  constructor(malformation: HeaderMalformation) {
    super(`message header is malformed: ${malformation}`);
    this.name = 'HeaderSyntaxError';
    this.malformation = malformation;
  }
}

export class HeaderLimitError extends Error {
  readonly breach: HeaderBreach;
  constructor(breach: HeaderBreach) {
    super(`message header over its limit: ${breach.limit} > ${breach.max}`);
    this.name = 'HeaderLimitError';
    this.breach = breach;
  }
}

const LF = 0x0a;

/** RFC 5322 §2.2.3: a line starting with WSP continues the field above it. */
function isContinuation(line: Buffer): boolean {
  return line[0] === 0x20 || line[0] === 0x09;
}

/** The line is CRLF (or a lone LF): the blank line that ends the header section (RFC 5322 §2.1). */
function isBlank(line: Buffer): boolean {
  return (line.length === 2 && line[0] === 0x0d && line[1] === LF) || (line.length === 1 && line[0] === LF);
}

export class HeaderGuard extends Transform {
  readonly #limits: HeaderLimits;
  #state: 'header' | 'body' | 'stopped' = 'header';
  /** Bytes of a line whose LF has not arrived yet. */
  #partial: Buffer[] = [];
  /** The field being read: its lines, each with its line ending. */
  #field: Buffer[] = [];
  /** The fields read so far, handed on together once the header section ends. */
  #held: Buffer[][] = [];
  #bytes = 0;
  #fields = 0;
  #lines = 0;
  #withheld = { overCount: 0, overHeaderNames: 0 };
  #breach: HeaderBreach | null = null;
  #malformed: HeaderMalformation | null = null;

  constructor(limits: HeaderLimits) {
    super();
    this.#limits = limits;
    // The consumer (the verifier) listens for errors; without one, a breach must not be an
    // uncaught 'error' that ends the process.
    this.on('error', () => undefined);
  }

  /** The limit crossed, or null. Set as soon as the line that crossed it arrives. */
  get breach(): HeaderBreach | null {
    return this.#breach;
  }

  /** Why the header section is not one (the verifier was given none of it), or null. */
  get malformed(): HeaderMalformation | null {
    return this.#malformed;
  }

  /** DKIM-Signature fields not handed to the verifier (over maxDkimSignatures); known once the header section ended. */
  get withheldSignatures(): number {
    return this.#withheld.overCount;
  }

  /** DKIM-Signature and ARC-Message-Signature fields not handed on for their h= (over maxHeaderNames). */
  get oversignedSignatures(): number {
    return this.#withheld.overHeaderNames;
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (this.#state === 'body') {
      this.push(data);
    } else if (this.#state === 'header') {
      const out: Buffer[] = [];
      this.#scan(data, out);
      if (out.length > 0 && !this.#stopped()) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state === 'header') {
      // a header section without a blank line (no body): its last line may lack its CRLF
      const out: Buffer[] = [];
      if (this.#partial.length > 0) this.#line(Buffer.concat(this.#partial), out);
      this.#partial = [];
      if (!this.#stopped()) {
        this.#endField();
        this.#release(out);
      }
      if (!this.#stopped() && out.length > 0) this.push(Buffer.concat(out));
    }
    callback();
  }

  /** Splits `data` into lines; header lines go through #line, the rest is body. */
  #scan(data: Buffer, out: Buffer[]): void {
    let start = 0;
    while (this.#state === 'header' && start < data.length) {
      const lf = data.indexOf(LF, start);
      const end = lf < 0 ? data.length : lf + 1;
      // counted as they arrive, so that a line without an end cannot grow past the limit
      this.#bytes += end - start;
      if (lf < 0) {
        this.#partial.push(data.subarray(start));
        // the blank line that ends the section (CRLF, maybe split here) is not part of its size
        if (this.#bytes > this.#limits.maxHeaderBytes + 2) this.#stop('header-bytes', this.#limits.maxHeaderBytes);
        return;
      }
      const piece = data.subarray(start, end);
      const line = this.#partial.length > 0 ? Buffer.concat([...this.#partial, piece]) : piece;
      this.#partial = [];
      start = end;
      this.#line(line, out);
    }
    if (this.#state === 'body' && start < data.length) out.push(data.subarray(start));
  }

  #line(line: Buffer, out: Buffer[]): void {
    const first = this.#lines === 0 && this.#field.length === 0;
    if (isBlank(line)) {
      this.#endField();
      this.#release(out);
      out.push(line);
      this.#state = 'body';
      return;
    }
    if (first && isContinuation(line)) {
      // Nothing above it to continue but the relay's own fields (trace forgery). Postfix's
      // smtpd inserts an empty line here; that turns the sender's header into body and leaves
      // a message without From, which a backend may then complete with the envelope sender.
      this.#malformed = 'leading-whitespace';
      this.#end(new HeaderSyntaxError('leading-whitespace'));
      return;
    }
    if (this.#bytes > this.#limits.maxHeaderBytes) return this.#stop('header-bytes', this.#limits.maxHeaderBytes);
    this.#lines++;
    if (this.#lines > this.#limits.maxLines) return this.#stop('header-lines', this.#limits.maxLines);
    if (isContinuation(line) && this.#field.length > 0) {
      this.#field.push(line);
      if (this.#field.length > this.#limits.maxFieldLines) this.#stop('header-field-lines', this.#limits.maxFieldLines);
      return;
    }
    this.#endField();
    this.#fields++;
    if (this.#fields > this.#limits.maxFields) return this.#stop('header-fields', this.#limits.maxFields);
    this.#field = [line];
  }

  /** The field read so far is complete: held until the header section ends. */
  #endField(): void {
    if (this.#field.length === 0) return;
    this.#held.push(this.#field);
    this.#field = [];
  }

  /** The header section ended: its fields go on, in order, but for the signatures withheld. */
  #release(out: Buffer[]): void {
    const fields = this.#held;
    this.#held = [];
    const selection = selectSignatures(fields, this.#limits);
    this.#withheld = { overCount: selection.overCount, overHeaderNames: selection.overHeaderNames };
    fields.forEach((field, i) => {
      if (!selection.withheld.has(i)) out.push(...field);
    });
  }

  /** A method, not a field test, so that TypeScript does not narrow #state across the calls that change it. */
  #stopped(): boolean {
    return this.#state === 'stopped';
  }

  #stop(limit: HeaderLimit, max: number): void {
    this.#breach = { limit, max };
    this.emit('breach', this.#breach);
    this.#end(new HeaderLimitError(this.#breach));
  }

  /** Feeds the verifier nothing more and errors its input, so it gives up at once. */
  #end(error: Error): void {
    this.#state = 'stopped';
    this.#partial = [];
    this.#field = [];
    this.#held = [];
    this.destroy(error);
  }
}
