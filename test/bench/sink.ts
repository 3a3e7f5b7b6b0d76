/**
 * A backend sink for load: smtp-server on 127.0.0.1:0 that answers 250 and remembers only each
 * message's envelope sender and whether the header block carries our authentication results.
 * (test/harness/sink.ts keeps every byte received, which is right for tests and would hold
 * gigabytes after a benchmark run.)
 */
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';

export interface SinkRecord {
  readonly sender: string;
  /** An Authentication-Results field with dkim=pass and dmarc=pass is in the header block. */
  readonly authenticated: boolean;
}

export interface BenchSink {
  readonly port: number;
  /** Returns the messages received since the previous call and forgets them. */
  take(): SinkRecord[];
  close(): Promise<void>;
}

/** Enough to hold the header block: our Received and Authentication-Results fields come first. */
const HEAD_BYTES = 16 * 1024;

/** RFC 8601 §2.2: results are "method=result" pairs in one (possibly folded) field. */
export function authenticated(head: string): boolean {
  const end = head.indexOf('\r\n\r\n');
  const header = (end >= 0 ? head.slice(0, end) : head).replace(/\r\n[ \t]+/g, ' ');
  return header.split('\r\n').some((field) =>
    /^authentication-results:/i.test(field) && /\bdkim=pass\b/.test(field) && /\bdmarc=pass\b/.test(field));
}

export async function startBenchSink(): Promise<BenchSink> {
  let records: SinkRecord[] = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    size: 10_240_000, // as Postfix advertises by default
    onData(stream: SMTPServerDataStream, session, callback) {
      const head: Buffer[] = [];
      let headBytes = 0;
      stream.on('data', (chunk: Buffer) => {
        if (headBytes >= HEAD_BYTES) return;
        head.push(chunk);
        headBytes += chunk.length;
      });
      stream.on('end', () => {
        const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        records.push({ sender, authenticated: authenticated(Buffer.concat(head).toString('latin1')) });
        callback(null, `2.0.0 Ok: queued as B${records.length}`);
      });
    },
  });
  server.on('error', () => undefined); // a client resetting its connection is not a sink failure
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('sink: no TCP address');
  return {
    port: address.port,
    take() {
      const out = records;
      records = [];
      return out;
    },
    close: () => new Promise<void>((resolve) => {
      for (const connection of server.connections) connection._socket.destroy();
      server.close(() => resolve());
    }),
  };
}
