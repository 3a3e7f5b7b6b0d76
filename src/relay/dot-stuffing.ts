/**
 * The DATA transform towards the backend, applied chunk by chunk:
 * - every line ending becomes CRLF: CRLF stays, a bare LF or a bare CR becomes CRLF
 *   (RFC 5321 §2.3.8). Postfix ends DATA at "\n.\n", "\n.\r\n" and "\r\n.\n" for a client in
 *   mynetworks, so after this no such sequence can reach it un-stuffed;
 * - a line starting with '.' gets one more '.' (RFC 5321 §4.5.2);
 * - at the end a CRLF is added if the last line had none, then the terminator ".\r\n".
 * State carries across chunks: a CR at the end of one chunk may pair with a LF at the start
 * of the next, and a '.' at the start of a chunk may be at the start of a line.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export class DotStuffer {
  #atLineStart = true;
  /** The previous chunk ended with a CR whose LF, if any, is still to come. */
  #pendingCr = false;
  #ended = false;

  push(chunk: Uint8Array): Buffer {
    if (this.#ended) throw new Error('DotStuffer: push after end');
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const n = buf.length;
    // Worst case "\n." per 2 input bytes → "\r\n.." per 2: twice the size, plus a pending CR.
    const out = Buffer.allocUnsafe(n * 2 + 2);
    let o = 0;
    let i = 0;
    // Lines are copied in runs found with the native indexOf (the hot path: a CRLF message
    // is mostly copied, not walked byte by byte). The next CR and LF positions are cached so
    // a message without any CR (or LF) is still scanned once, not once per line.
    let nextCr = -2;
    let nextLf = -2;
    while (i < n) {
      if (this.#pendingCr) {
        this.#pendingCr = false;
        out[o++] = CR;
        out[o++] = LF;
        this.#atLineStart = true;
        if (buf[i] === LF) {
          i++; // the CR's own LF: one CRLF in all
          continue;
        }
      }
      if (this.#atLineStart && buf[i] === DOT) out[o++] = DOT;
      if (nextCr !== -1 && nextCr < i) nextCr = buf.indexOf(CR, i);
      if (nextLf !== -1 && nextLf < i) nextLf = buf.indexOf(LF, i);
      const end = Math.min(nextCr === -1 ? n : nextCr, nextLf === -1 ? n : nextLf);
      if (end > i) {
        o += buf.copy(out, o, i, end);
        this.#atLineStart = false;
      }
      if (end === n) break;
      if (buf[end] === CR) {
        this.#pendingCr = true; // resolved by the next byte (or the next chunk, or end())
        i = end + 1;
      } else {
        out[o++] = CR; // a bare LF
        out[o++] = LF;
        this.#atLineStart = true;
        i = end + 1;
      }
    }
    return out.subarray(0, o);
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
  return Buffer.concat([stuffer.push(message), stuffer.end()]);
}
