/**
 * A backend (smtp-server, standing in for Postfix) that holds its reply to the end of DATA
 * until the test releases it: the window in which a transaction is in flight at the gateway.
 * Records each message it accepted, bytes included.
 */
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';

export interface HeldBackend {
  readonly port: number;
  readonly messages: Array<{ readonly from: string; readonly to: readonly string[]; readonly raw: Buffer }>;
  /** Whether replies are held (default) or given at once. */
  hold: boolean;
  /** Resolves once a message has been received in full and its reply is being held. */
  held(): Promise<void>;
  /** Answers 250 to every held message. */
  release(): void;
  close(): Promise<void>;
}

export async function startHeldBackend(): Promise<HeldBackend> {
  const messages: HeldBackend['messages'] = [];
  const pending: Array<() => void> = [];
  const waiters: Array<() => void> = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    size: 10_240_000,
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        pending.push(() => {
          messages.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw });
          callback(null, `2.0.0 Ok: queued as H${messages.length}`);
        });
        for (const w of waiters.splice(0)) w();
        if (!backend.hold) backend.release();
      });
    },
  });
  server.on('error', () => undefined); // the gateway closing its pooled connection is not a failure
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const backend: HeldBackend = {
    port: (server.server.address() as { port: number }).port,
    messages,
    hold: true,
    held: () => new Promise<void>((resolve) => (pending.length > 0 ? resolve() : waiters.push(resolve))),
    release() {
      for (const answer of pending.splice(0)) answer();
    },
    close() {
      this.release();
      for (const c of server.connections) c._socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return backend;
}
