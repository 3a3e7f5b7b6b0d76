/**
 * A scripted backend for the cases a well-behaved SMTP server library will not produce: a
 * slow MAIL reply, an idle 421 racing our MAIL, a 250 to DATA. Line-based, one handler per
 * command; records every line and whether each connection is still open.
 */
import net from 'node:net';

export type Handler = (line: string, conn: number) => string | null | Promise<string | null>;

export interface FakeBackend {
  readonly port: number;
  /** Every command line received, prefixed with its connection number: "1 MAIL FROM:<…>". */
  readonly lines: string[];
  /** Connections accepted so far and how many are still open. */
  connections(): { total: number; open: number };
  close(): Promise<void>;
}

/** `handler` returns the reply (CRLF added) or null for the default; DATA content is swallowed up to the dot. */
export async function startFakeBackend(handler: Handler): Promise<FakeBackend> {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  let total = 0;
  const defaults = (line: string): string => {
    const verb = line.split(/[\s:]/)[0]!.toUpperCase();
    if (verb === 'EHLO') return '250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME';
    if (verb === 'DATA') return '354 go ahead';
    if (verb === 'QUIT') return '221 bye';
    return '250 2.0.0 ok';
  };
  const server = net.createServer((socket) => {
    const conn = ++total;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 fake.test ESMTP\r\n');
    let buffer = '';
    let inData = false;
    let chain = Promise.resolve();
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      let nl: number;
      while ((nl = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        if (inData) {
          if (line !== '.') continue;
          inData = false;
        }
        const label = inData ? line : line === '.' ? '.' : line;
        lines.push(`${conn} ${label}`);
        chain = chain.then(async () => {
          const reply = (await handler(label, conn)) ?? (label === '.' ? '250 2.0.0 queued' : defaults(label));
          if (label.toUpperCase() === 'DATA' && reply.startsWith('354')) inData = true;
          if (!socket.destroyed) socket.write(reply + '\r\n');
          if (reply.startsWith('421') || label.toUpperCase() === 'QUIT') socket.end();
        });
        if (line.toUpperCase() === 'DATA') inData = true; // content follows without waiting for our 354
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    lines,
    connections: () => ({ total, open: sockets.size }),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
