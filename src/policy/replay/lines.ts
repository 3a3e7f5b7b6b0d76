/**
 * Lines of log and decision files, streamed: plain or gzip (recognised by its magic bytes,
 * RFC 1952 §2.3.1, whatever the file is called; concatenated members as logrotate and
 * rotating-file-stream write them). One line in memory at a time, however large the file.
 */
import fs from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

async function isGzip(file: string): Promise<boolean> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** Every line of `file` (without its line ending). Rejects when the file cannot be read or unzipped. */
export async function* fileLines(file: string): AsyncGenerator<string> {
  const gzip = await isGzip(file); // also the first read: a missing file rejects here
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  let input: Readable = raw;
  if (gzip) {
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    input = raw.pipe(gunzip);
  }
  const lines = createInterface({ input, crlfDelay: Infinity });
  // readline does not pass on errors of its input: surface them to the reader of the lines
  const failed: { error?: Error } = {};
  input.on('error', (err: Error) => {
    failed.error = err;
    lines.close();
  });
  try {
    for await (const line of lines) yield line;
  } finally {
    raw.destroy();
  }
  if (failed.error) throw failed.error;
}
