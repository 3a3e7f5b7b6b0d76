/**
 * A development backend for `make run`: an SMTP server on backend.host:port that accepts
 * everything and prints each message's envelope and header block, so a first-time user can
 * see what Postern delivers (Authentication-Results, Received, verdict headers) without a
 * Postfix. Never used by `serve` without --dev-backend.
 */
import { SMTPServer } from 'smtp-server';
import type { Logger } from 'pino';

export async function startDevBackend(host: string, port: number, logger: Logger): Promise<{ close(): Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const end = raw.indexOf('\r\n\r\n');
        const header = raw.subarray(0, end < 0 ? raw.length : end).toString('utf8');
        const id = `dev-${Date.now().toString(36)}`;
        logger.info({ id, from: session.envelope.mailFrom && session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address), bytes: raw.length }, 'dev backend received a message');
        process.stdout.write(`\n----- dev backend: message ${id} (${raw.length} bytes), header block -----\n${header}\n----- end of header block -----\n\n`);
        callback(null, `Ok: queued as ${id}`);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: Error) => reject(new Error(`development backend cannot listen on ${host}:${port}: ${err.message}`)));
    server.listen(port, host, () => resolve());
  });
  server.on('error', (err: Error) => logger.warn({ err: err.message }, 'dev backend error'));
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
