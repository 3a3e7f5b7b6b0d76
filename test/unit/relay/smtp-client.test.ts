import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BackendError, connectSmtp, type SmtpClient, type SmtpClientOptions } from '../../../src/relay/smtp-client.ts';
import { startSink, type Sink } from '../../harness/sink.ts';

function options(port: number, over: Partial<SmtpClientOptions> = {}): SmtpClientOptions {
  return {
    host: '127.0.0.1', port, hostname: 'postern.test', tls: 'none', rejectUnauthorized: true,
    connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataTimeoutMs: 2000, ...over,
  };
}

const isKind = (kind: BackendError['kind']) => (err: unknown): boolean => {
  assert.ok(err instanceof BackendError, `expected BackendError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  return true;
};

/** A one-connection server that answers each command line with what `script` returns. */
async function scripted(greeting: string | null, script: (line: string) => string | null = () => null): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    if (greeting !== null) socket.write(greeting);
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
        const answer = script(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 2);
        if (answer !== null) socket.write(answer);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function deliver(client: SmtpClient, message: string | Buffer, to = 'user@example.org'): Promise<string> {
  assert.equal((await client.mail('sender@example.net', {})).code, 250);
  assert.equal((await client.rcpt(to, {})).code, 250);
  const reply = await client.data(typeof message === 'string' ? Buffer.from(message, 'latin1') : message);
  return `${reply.code} ${reply.enhanced ?? ''}`;
}

describe('SmtpClient against the sink', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink();
  });
  after(() => sink.close());

  it('reads the capabilities the sink advertises', async () => {
    const client = await connectSmtp(options(sink.port));
    assert.equal(client.capabilities.size, 10240000);
    assert.equal(client.capabilities.pipelining, true);
    assert.equal(client.capabilities.eightBitMime, true);
    assert.equal(client.capabilities.smtpUtf8, true);
    assert.equal(client.capabilities.dsn, false);
    assert.equal(client.capabilities.xclient, null);
    assert.equal((await client.quit()).code, 221);
    assert.equal(client.usable, false);
  });

  it('mirrors the envelope: each RCPT reply is returned, refused ones are not delivered', async () => {
    sink.messages.length = 0;
    sink.behaviour = { rcpt: (a) => (a.startsWith('nobody@') ? { code: 550, message: '5.1.1 User unknown in local recipient table' } : undefined) };
    const client = await connectSmtp(options(sink.port));
    assert.equal((await client.mail('', {})).code, 250);
    assert.equal(client.inTransaction, true);
    const refused = await client.rcpt('nobody@example.org', {});
    assert.deepEqual(refused, { code: 550, enhanced: '5.1.1', text: 'User unknown in local recipient table', lines: ['User unknown in local recipient table'] });
    assert.equal((await client.rcpt('user@example.org', {})).code, 250);
    const final = await client.data(Buffer.from('Subject: hi\r\n\r\nbody\r\n'));
    assert.equal(final.code, 250);
    assert.equal(client.inTransaction, false);
    const [message] = await sink.waitFor(1);
    assert.equal(message?.mailFrom, '');
    assert.deepEqual(message?.rcptTo, ['user@example.org']);
    assert.equal(message?.helo, 'postern.test');
    assert.equal(message?.raw.toString(), 'Subject: hi\r\n\r\nbody\r\n');
    await client.quit();
    sink.behaviour = {};
  });

  it('returns 451 and 550 final replies as responses and stays usable', async () => {
    sink.messages.length = 0;
    const client = await connectSmtp(options(sink.port));
    sink.behaviour = { data: () => ({ code: 451, message: '4.3.0 Temporary lookup failure' }) };
    assert.equal(await deliver(client, 'x\r\n'), '451 4.3.0');
    sink.behaviour = { data: () => ({ code: 550, message: '5.7.1 Content rejected' }) };
    assert.equal(await deliver(client, 'x\r\n'), '550 5.7.1');
    assert.equal(client.usable, true);
    assert.equal(client.inTransaction, false);
    assert.equal(sink.messages.length, 0);
    sink.behaviour = {};
    await client.quit();
  });

  it('cannot be smuggled through: "\\n.\\n" arrives stuffed, as content of exactly one message', async () => {
    sink.messages.length = 0;
    const before = sink.received().length;
    const client = await connectSmtp(options(sink.port));
    const attack = 'Subject: x\n\nhello\n.\nMAIL FROM:<a@evil.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nevil\r.\r\n.\r\n';
    assert.equal(await deliver(client, attack), '250 2.0.0');
    assert.equal((await client.noop()).code, 250);
    await client.quit();
    const [message] = await sink.waitFor(1);
    assert.equal(sink.messages.length, 1);
    assert.equal(message?.raw.toString('latin1'),
      'Subject: x\r\n\r\nhello\r\n.\r\nMAIL FROM:<a@evil.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nevil\r\n.\r\n.\r\n');
    // What Postfix would have read: no bare CR/LF, every dot line stuffed, one terminator.
    const wire = sink.received().subarray(before).toString('latin1');
    const data = wire.slice(wire.indexOf('DATA\r\n') + 6, wire.indexOf('NOOP\r\n'));
    assert.equal(data, 'Subject: x\r\n\r\nhello\r\n..\r\nMAIL FROM:<a@evil.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nevil\r\n..\r\n..\r\n.\r\n');
    assert.doesNotMatch(data, /\r(?!\n)|(?<!\r)\n/);
  });

  it('streams a large message with many dot lines byte-exactly', async () => {
    sink.messages.length = 0;
    const line = '.a line that starts with a dot and is long enough to fill the buffers quickly.....\r\n';
    const message = Buffer.from(line.repeat(40_000), 'latin1'); // ≈ 3.4 MB, well past socket buffers
    const client = await connectSmtp(options(sink.port));
    assert.equal(await deliver(client, message), '250 2.0.0');
    await client.quit();
    const [received] = await sink.waitFor(1);
    assert.equal(received?.raw.length, message.length);
    assert.ok(received?.raw.equals(message));
  });

  it('sends a message given in pieces as one message, pieces cut inside CRLF and before dots', async () => {
    sink.messages.length = 0;
    const text = 'Subject: pieces\r\n\r\n.first\r\nsecond\r\n.\r\nlast line\r\n';
    const whole = Buffer.from(text, 'latin1');
    const pieces = [whole.subarray(0, 9), whole.subarray(9, 16), whole.subarray(16, 17), whole.subarray(17, 33), whole.subarray(33)];
    const client = await connectSmtp(options(sink.port));
    assert.equal((await client.mail('sender@example.net', {})).code, 250);
    assert.equal((await client.rcpt('user@example.org', {})).code, 250);
    assert.equal((await client.data(pieces)).code, 250);
    await client.quit();
    const [received] = await sink.waitFor(1);
    assert.equal(received?.raw.toString('latin1'), text);
  });

  it('refuses an unsafe path without sending anything, and stays usable', async () => {
    const client = await connectSmtp(options(sink.port));
    await assert.rejects(client.mail('a@b>\r\nRSET', {}), TypeError);
    await assert.rejects(client.rcpt('', {}), TypeError);
    assert.equal((await client.noop()).code, 250);
    await client.quit();
  });

  it('rejects a second command while one is in flight', async () => {
    const client = await connectSmtp(options(sink.port));
    const first = client.noop();
    await assert.rejects(client.noop(), /already in progress/);
    assert.equal((await first).code, 250);
    await client.quit();
  });
});

describe('SmtpClient parameters and extensions', () => {
  it('passes only the parameters the backend advertised', async () => {
    const rich = await startSink({ dsn: true });
    const poor = await startSink({ dsn: false, size: 0, eightBitMime: false, smtpUtf8: false });
    try {
      for (const sink of [rich, poor]) {
        const client = await connectSmtp(options(sink.port));
        const mail = await client.mail('sender@example.net', { SIZE: '100', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'env+1', AUTH: '<>' });
        assert.equal(mail.code, 250, mail.text);
        assert.equal((await client.rcpt('user@example.org', { NOTIFY: 'FAILURE', ORCPT: 'rfc822;user@example.org' })).code, 250);
        assert.equal((await client.data(Buffer.from('x\r\n'))).code, 250);
        await client.quit();
      }
      const [full] = await rich.waitFor(1);
      assert.deepEqual(full?.mailParams, { SIZE: '100', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS', ENVID: 'env+1' });
      assert.deepEqual(full?.rcptParams, [{ NOTIFY: 'FAILURE', ORCPT: 'rfc822;user@example.org' }]);
      const [bare] = await poor.waitFor(1);
      assert.deepEqual(bare?.mailParams, {});
      assert.deepEqual(bare?.rcptParams, [{}]);
    } finally {
      await rich.close();
      await poor.close();
    }
  });

  it('sends XCLIENT with the offered attributes, then EHLO with the client\'s HELO', async () => {
    const sink = await startSink({ advertiseXclient: true });
    try {
      const client = await connectSmtp(options(sink.port));
      assert.deepEqual([...(client.capabilities.xclient ?? [])], ['NAME', 'ADDR', 'PORT', 'PROTO', 'HELO', 'LOGIN']);
      const reply = await client.xclient({ addr: '2001:db8::7', name: null, helo: 'client.example.net', proto: 'ESMTP', port: 40025 });
      assert.equal(reply.code, 220);
      assert.equal(client.capabilities.xclient, null); // smtp-server offers XCLIENT only once, as Postfix may
      assert.equal(await deliver(client, 'x\r\n'), '250 2.0.0');
      await client.quit();
      const [message] = await sink.waitFor(1);
      assert.deepEqual(message?.xclient, { ADDR: '2001:db8::7', NAME: '', PORT: '40025', PROTO: 'ESMTP', HELO: 'client.example.net' });
      assert.equal(message?.helo, 'client.example.net');
    } finally {
      await sink.close();
    }
  });

  it('does STARTTLS to the backend and verifies its certificate when asked', async () => {
    const sink = await startSink({ starttls: true });
    try {
      const client = await connectSmtp(options(sink.port, { tls: 'starttls', rejectUnauthorized: false }));
      assert.equal(client.capabilities.starttls, false); // re-read after TLS: no second STARTTLS
      assert.equal(await deliver(client, 'x\r\n'), '250 2.0.0');
      await client.quit();
      const [message] = await sink.waitFor(1);
      assert.equal(message?.secure, true);
      // smtp-server's built-in certificate is self-signed: verification must fail.
      await assert.rejects(connectSmtp(options(sink.port, { tls: 'starttls', rejectUnauthorized: true })), isKind('tls'));
    } finally {
      await sink.close();
    }
    const plain = await startSink();
    try {
      await assert.rejects(connectSmtp(options(plain.port, { tls: 'starttls' })), isKind('tls'));
    } finally {
      await plain.close();
    }
  });
});

describe('SmtpClient failures', () => {
  it('connection refused → BackendError connect', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(connectSmtp(options(port)), isKind('connect'));
  });

  it('a greeting other than 220 → connect; garbage → protocol; silence → timeout', async () => {
    const busy = await scripted('554 5.3.2 No service here\r\n');
    const garbage = await scripted('SSH-2.0-OpenSSH_9.6\r\n');
    const silent = await scripted(null);
    try {
      await assert.rejects(connectSmtp(options(busy.port)), isKind('connect'));
      await assert.rejects(connectSmtp(options(garbage.port)), isKind('protocol'));
      await assert.rejects(connectSmtp(options(silent.port, { connectTimeoutMs: 100 })), isKind('timeout'));
    } finally {
      await Promise.all([busy.close(), garbage.close(), silent.close()]);
    }
  });

  it('falls back to HELO when EHLO is refused, with no extensions', async () => {
    const lines: string[] = [];
    const server = await scripted('220 old.example ready\r\n', (line) => {
      lines.push(line);
      return line.startsWith('EHLO') ? '502 5.5.2 Command not recognized\r\n' : '250 old.example\r\n';
    });
    try {
      const client = await connectSmtp(options(server.port));
      assert.equal(client.capabilities.esmtp, false);
      assert.equal(client.capabilities.size, null);
      assert.equal((await client.mail('a@example.net', { SIZE: '10', BODY: '8BITMIME' })).code, 250);
      client.destroy();
      assert.deepEqual(lines, ['EHLO postern.test', 'HELO postern.test', 'MAIL FROM:<a@example.net>']);
    } finally {
      await server.close();
    }
  });

  it('refuses bytes sent after the STARTTLS reply (RFC 3207 §4.2 injection)', async () => {
    const server = await scripted('220 x\r\n', (line) =>
      line.startsWith('EHLO') ? '250-x\r\n250 STARTTLS\r\n' : '220 go ahead\r\n250 injected\r\n');
    try {
      await assert.rejects(connectSmtp(options(server.port, { tls: 'starttls' })), (err: unknown) => {
        assert.ok(err instanceof BackendError);
        return err.kind === 'protocol'; // the second reply is unsolicited, or pending at the upgrade
      });
    } finally {
      await server.close();
    }
  });

  it('an idle connection closed by the backend with 421 becomes unusable and says so', async () => {
    const sink = await startSink({ socketTimeoutMs: 300 }) // above smtp-server's 100 ms greeting pause;
    try {
      const client = await connectSmtp(options(sink.port));
      await new Promise<void>((resolve) => client.onClose(resolve));
      assert.equal(client.usable, false);
      await assert.rejects(client.noop(), isKind('closed'));
    } finally {
      await sink.close();
    }
  });

  it('a hanging final reply → timeout, connection destroyed, nothing delivered', async () => {
    const sink = await startSink({ behaviour: { data: () => 'hang' } });
    try {
      const client = await connectSmtp(options(sink.port, { dataTimeoutMs: 100 }));
      await assert.rejects(deliver(client, 'x\r\n'), isKind('timeout'));
      assert.equal(client.usable, false);
      assert.equal(sink.messages.length, 0);
    } finally {
      await sink.close();
    }
  });

  it('a backend that stops reading the message fails within commandTimeoutMs, not dataTimeoutMs', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.write('220 stalls\r\n');
      let buffered = '';
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('latin1');
        for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 2);
          if (line.startsWith('EHLO')) socket.write('250 stalls\r\n');
          else if (line === 'DATA') {
            socket.write('354 go on\r\n');
            socket.off('data', onData);
            socket.pause(); // reads nothing more: the message fills the socket buffers
            return;
          } else socket.write('250 ok\r\n');
        }
      };
      socket.on('data', onData);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const client = await connectSmtp(options(port, { commandTimeoutMs: 300, dataTimeoutMs: 60_000 }));
      const started = Date.now();
      await assert.rejects(deliver(client, Buffer.alloc(32 * 1024 * 1024, 'a')), isKind('timeout'));
      assert.ok(Date.now() - started < 30_000, `failed after ${Date.now() - started} ms`);
      assert.equal(client.usable, false);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a backend dropping the connection at end of data → closed', async () => {
    const sink = await startSink({ behaviour: { data: () => 'drop' } });
    try {
      const client = await connectSmtp(options(sink.port));
      await assert.rejects(deliver(client, 'x\r\n'), isKind('closed'));
      assert.equal(client.usable, false);
      assert.equal(sink.messages.length, 0);
    } finally {
      await sink.close();
    }
  });

  it('a 421 reply to a command is returned and closes the connection', async () => {
    const server = await scripted('220 x\r\n', (line) =>
      line.startsWith('EHLO') ? '250 x\r\n' : '421 4.7.0 x Error: too many errors\r\n');
    try {
      const client = await connectSmtp(options(server.port));
      const reply = await client.rcpt('a@example.org', {});
      assert.equal(reply.code, 421);
      assert.equal(client.usable, false);
    } finally {
      await server.close();
    }
  });
});
