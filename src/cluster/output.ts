/**
 * Workers' stdout and stderr reach the primary through pipes and leave it whole line by whole
 * line, through one writer per stream: JSON log lines of several processes never interleave
 * mid-line, whatever the size of a batch (pipes are atomic only up to PIPE_BUF).
 */
import type { Readable } from 'node:stream';

/** A worker writing a megabyte without a newline gets it passed on anyway. */
const MAX_PARTIAL = 1024 * 1024;

export function forwardLines(from: Readable, write: (text: string) => void): void {
  let partial = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const text = partial + chunk;
    const end = text.lastIndexOf('\n');
    if (end < 0 && text.length < MAX_PARTIAL) {
      partial = text;
      return;
    }
    const cut = end < 0 ? text.length : end + 1;
    write(text.slice(0, cut));
    partial = text.slice(cut);
  });
  from.on('end', () => {
    if (partial) write(`${partial}\n`);
    partial = '';
  });
}
