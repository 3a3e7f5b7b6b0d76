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
    // Worst case "\n." per 2 input bytes → "\r\n.." per 2: twice the size, plus a pending CR.
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        out[o++] = CR;
        out[o++] = LF;
        this.#atLineStart = true;
        if (byte === LF) continue; // the CR's own LF: one CRLF in all
      }
      if (byte === CR) {
        this.#pendingCr = true;
      } else if (byte === LF) {
        out[o++] = CR;
        out[o++] = LF;
        this.#atLineStart = true;
      } else {
        if (this.#atLineStart && byte === DOT) out[o++] = DOT;
        out[o++] = byte;
        this.#atLineStart = false;
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
