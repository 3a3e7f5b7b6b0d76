import { Transform, type TransformCallback } from 'node:stream';

/**
 * Line-ending normalisation of message data. A bare LF or bare CR becomes CRLF, CRLF stays.
 * The backend (Postfix, DESIGN "Facts about Postfix") ends DATA at "\n.\n" and friends and
 * exempts us from its bare-LF defence, so after this step the only line ending left is CRLF and
 * the relay's dot-stuffing (RFC 5321 §4.5.2) covers every line. Counts are kept so that the
 * caller can refuse such a message instead (`bareLineEndings: 'reject'`).
 */

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export interface LineEndingCounts {
  /** LFs not preceded by CR, each replaced by CRLF. */
  readonly bareLf: number;
  /** CRs not followed by LF, each replaced by CRLF. */
  readonly bareCr: number;
}

/** Carry-over between chunks: a CR at the end of a chunk waits for the next one's first byte. */
interface State {
  pendingCr: boolean;
  bareLf: number;
  bareCr: number;
}

/** A CR not before a LF, or a LF not after a CR (a chunk's edges count as neither). */
const BARE = /\r(?!\n)|(?<!\r)\n/;

function normaliseChunk(state: State, chunk: Buffer): Buffer {
  // an empty chunk must not resolve a pending CR: the LF may still come
  if (chunk.length === 0) return chunk;
  // The usual chunk has CRLF only: one regular expression over its latin1 text says so, where
  // the search below would stop at every line. A CR at its end, or a LF at its start, is left
  // to the search (it pairs across chunks).
  if (!state.pendingCr && !BARE.test(chunk.toString('latin1'))) return chunk;
  const parts: Buffer[] = [];
  let segStart = 0;
  if (state.pendingCr) {
    state.pendingCr = false;
    parts.push(CRLF);
    if (chunk[0] === LF) {
      segStart = 1;
    } else {
      state.bareCr++;
    }
  }
  let nextCr = chunk.indexOf(CR, segStart);
  let nextLf = chunk.indexOf(LF, segStart);
  while (nextCr >= 0 || nextLf >= 0) {
    if (nextLf >= 0 && (nextCr < 0 || nextLf < nextCr)) {
      // an LF whose CR was not right before it (a CRLF's LF is consumed with its CR below)
      parts.push(chunk.subarray(segStart, nextLf), CRLF);
      state.bareLf++;
      segStart = nextLf + 1;
      nextLf = chunk.indexOf(LF, segStart);
    } else if (nextCr === chunk.length - 1) {
      // the LF that would complete it can only be in the next chunk
      parts.push(chunk.subarray(segStart, nextCr));
      state.pendingCr = true;
      segStart = chunk.length;
      break;
    } else if (chunk[nextCr + 1] === LF) {
      // a proper CRLF stays inside the current segment
      nextLf = chunk.indexOf(LF, nextCr + 2);
      nextCr = chunk.indexOf(CR, nextCr + 2);
    } else {
      parts.push(chunk.subarray(segStart, nextCr), CRLF);
      state.bareCr++;
      segStart = nextCr + 1;
      nextCr = chunk.indexOf(CR, segStart);
    }
  }
  if (parts.length === 0) return chunk; // nothing repaired: no copy
  if (segStart < chunk.length) parts.push(chunk.subarray(segStart));
  return Buffer.concat(parts);
}

function finish(state: State): Buffer | null {
  if (!state.pendingCr) return null;
  state.pendingCr = false;
  state.bareCr++;
  return CRLF;
}

/** Normalises a whole buffer at once. */
export function normaliseLineEndings(data: Buffer): LineEndingCounts & { data: Buffer } {
  const state: State = { pendingCr: false, bareLf: 0, bareCr: 0 };
  const body = normaliseChunk(state, data);
  const tail = finish(state);
  return { data: tail ? Buffer.concat([body, tail]) : body, bareLf: state.bareLf, bareCr: state.bareCr };
}

/** Streaming form: correct across chunk boundaries; read the counts after 'end'. */
export class LineEndingNormaliser extends Transform {
  readonly #state: State = { pendingCr: false, bareLf: 0, bareCr: 0 };

  get counts(): LineEndingCounts {
    return { bareLf: this.#state.bareLf, bareCr: this.#state.bareCr };
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    const out = normaliseChunk(this.#state, data);
    if (out.length > 0) this.push(out);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const tail = finish(this.#state);
    if (tail) this.push(tail);
    callback();
  }
}
