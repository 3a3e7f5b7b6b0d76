/**
 * The DATA transform towards the backend, applied chunk by chunk:
 * - every line ending becomes CRLF: CRLF stays, a bare LF or a bare CR becomes CRLF
 *   (RFC 5321 §2.3.8). Postfix ends DATA at "\n.\n", "\n.\r\n" and "\r\n.\n" for a client in
 *   mynetworks, so after this no such sequence can reach it un-stuffed;
 * - a line starting with '.' gets one more '.' (RFC 5321 §4.5.2);
 * - at the end a CRLF is added if the last line had none, then the terminator ".\r\n".
 * State carries across chunks: a CR at the end of one chunk may pair with a LF at the start
 * of the next, and a '.' at the start of a chunk may be at the start of a line.
 *
 * Nothing is copied: the output is the input's own bytes as subarrays, with the few inserted
 * bytes (a '.', a CRLF) between them, for the socket to write in one writev. The usual chunk
 * (CRLF only, the pipeline has normalised it) is checked with one regular expression over its
 * latin1 text and its dots found with one search for "\n."; only a chunk with a bare CR or LF
 * (or a CRLF cut by a chunk boundary) is walked line by line.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n', 'latin1');
const ONE_DOT = Buffer.from('.', 'latin1');
/** A CR not before a LF, or a LF not after a CR (a chunk's edges count as neither). */
const BARE = /\r(?!\n)|(?<!\r)\n/;

export class DotStuffer {
  #atLineStart = true;
  /** The previous chunk ended with a CR whose LF, if any, is still to come. */
  #pendingCr = false;
  #ended = false;

  /** The bytes to send for `chunk`, in order: subarrays of it and inserted line endings/dots. */
  push(chunk: Uint8Array): Buffer[] {
    if (this.#ended) throw new Error('DotStuffer: push after end');
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (buf.length === 0) return [];
    if (!this.#pendingCr && !BARE.test(buf.toString('latin1'))) return this.#clean(buf);
    return this.#repair(buf);
  }

  /** A chunk of CRLF lines only: stuff the dots at line starts. */
  #clean(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let segStart = 0;
    if (this.#atLineStart && buf[0] === DOT) out.push(ONE_DOT);
    for (let i = buf.indexOf('\n.', 0, 'latin1'); i >= 0; i = buf.indexOf('\n.', i + 2, 'latin1')) {
      out.push(buf.subarray(segStart, i + 1), ONE_DOT);
      segStart = i + 1; // the line's own dot starts the next piece
    }
    out.push(buf.subarray(segStart));
    this.#atLineStart = buf[buf.length - 1] === LF;
    return out;
  }

  /** The general case: line by line, repairing bare CR and LF. */
  #repair(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = buf.length;
    let segStart = 0;
    let i = 0;
    if (this.#pendingCr) {
      this.#pendingCr = false;
      out.push(CRLF);
      this.#atLineStart = true;
      if (buf[0] === LF) i = segStart = 1; // the CR's own LF: one CRLF in all
    }
    // The next CR and LF positions are cached, so a chunk without any CR (or LF) is still
    // searched once, not once per line.
    let nextCr = -2;
    let nextLf = -2;
    while (i < n) {
      if (this.#atLineStart && buf[i] === DOT) {
        out.push(buf.subarray(segStart, i), ONE_DOT);
        segStart = i;
      }
      if (nextCr !== -1 && nextCr < i) nextCr = buf.indexOf(CR, i);
      if (nextLf !== -1 && nextLf < i) nextLf = buf.indexOf(LF, i);
      const end = Math.min(nextCr === -1 ? n : nextCr, nextLf === -1 ? n : nextLf);
      this.#atLineStart = false;
      if (end === n) break;
      this.#atLineStart = true;
      if (buf[end] === CR && end === n - 1) {
        out.push(buf.subarray(segStart, end)); // resolved by the next chunk, or end()
        this.#pendingCr = true;
        return out;
      }
      if (buf[end] === CR && buf[end + 1] === LF) {
        i = end + 2; // a proper CRLF stays inside the piece
        continue;
      }
      out.push(buf.subarray(segStart, end), CRLF); // a bare CR or LF
      segStart = i = end + 1;
    }
    if (segStart < n) out.push(buf.subarray(segStart));
    return out;
  }

  /** Closes the message: the pending line ending, a final CRLF if missing, and ".\r\n". */
  end(): Buffer {
    if (this.#ended) throw new Error('DotStuffer: end called twice');
    this.#ended = true;
    const lineOpen = this.#pendingCr || !this.#atLineStart;
    return Buffer.from(lineOpen ? '\r\n.\r\n' : '.\r\n', 'latin1');
  }
}

/** The whole transform on one buffer, terminator included (tests and small messages). */
export function dotStuff(message: Uint8Array): Buffer {
  const stuffer = new DotStuffer();
  return Buffer.concat([...stuffer.push(message), stuffer.end()]);
}
