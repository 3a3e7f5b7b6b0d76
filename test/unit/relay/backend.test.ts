import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { Clock } from '../../../src/core/clock.ts';
import { BackendError } from '../../../src/relay/backend-error.ts';
import { createBackend, type Backend, type BackendOptions, type BackendTransaction, type ClientIdentity, type RelayObserver } from '../../../src/relay/backend.ts';
import { startSink, type Sink, type SinkOptions } from '../../harness/sink.ts';

const CLIENT: ClientIdentity = { ip: '192.0.2.7', ptr: 'mail.example.net', helo: 'mail.example.net', esmtp: true };
const UNKNOWN = { code: 550, message: '5.1.1 User unknown in local recipient table' };

function backendOptions(port: number, over: Partial<BackendOptions> = {}): BackendOptions {
  return {
    host: '127.0.0.1', port, hostname: 'postern.test', tls: 'none', rejectUnauthorized: true, xclient: false,
    poolSize: 4, idleTimeoutMs: 60_000, maxMessagesPerConnection: 100, maxRcptErrorsPerConnection: 5,
    connectTimeoutMs: 2000, commandTimeoutMs: 2000, dataTimeoutMs: 2000, ...over,
  };
}

interface Recorded { latency: string[]; errors: string[] }
function recorder(): RelayObserver & Recorded {
  const latency: string[] = [];
  const errors: string[] = [];
  return { latency, errors, relayLatency: (_s, outcome) => latency.push(outcome), relayError: (kind) => errors.push(kind) };
}

/** A sink and a backend in front of it, both closed after `body`. */
async function withBackend(
  sinkOptions: SinkOptions, over: Partial<BackendOptions>,
  body: (sink: Sink, backend: Backend, seen: Recorded) => Promise<void>, clock?: Clock,
): Promise<void> {
  const sink = await startSink({ behaviour: { rcpt: (a) => (a.startsWith('nobody') ? UNKNOWN : undefined) }, ...sinkOptions });
  const seen = recorder();
  const backend = createBackend(backendOptions(sink.port, over), { observer: seen, ...(clock ? { clock } : {}) });
  try {
    await body(sink, backend, seen);
  } finally {
    await backend.close();
    await sink.close();
  }
}

async function deliver(txn: BackendTransaction, message = 'Subject: t\r\n\r\nbody\r\n'): Promise<number> {
  assert.equal((await txn.mail('sender@example.net', {})).code, 250);
  assert.equal((await txn.rcpt('user@example.org', {})).code, 250);
  return (await txn.data(Buffer.from(message))).code;
}

const commandsSeen = (sink: Sink, verb: string): number =>
  sink.received().toString('latin1').split('\r\n').filter((line) => line === verb).length;

describe('backend pool', () => {
  it('reuses one connection for consecutive transactions, without RSET after a completed DATA', async () => {
    await withBackend({}, {}, async (sink, backend, seen) => {
      for (let i = 0; i < 3; i++) {
        const txn = await backend.open(CLIENT);
        assert.deepEqual(backend.stats(), { idle: 0, busy: 1 });
        assert.equal(await deliver(txn), 250);
        await txn.release();
        assert.deepEqual(backend.stats(), { idle: 1, busy: 0 });
      }
      assert.equal((await sink.waitFor(3)).length, 3);
      assert.equal(sink.connections, 1);
      assert.equal(commandsSeen(sink, 'RSET'), 0);
      assert.deepEqual(seen.latency, ['delivered', 'delivered', 'delivered']);
    });
  });

  it('sends RSET before reusing a connection whose transaction was abandoned', async () => {
    await withBackend({}, {}, async (sink, backend) => {
      const abandoned = await backend.open(CLIENT);
      assert.equal((await abandoned.mail('sender@example.net', {})).code, 250);
      assert.equal((await abandoned.rcpt('user@example.org', {})).code, 250);
      await abandoned.release(); // e.g. our policy rejected the message
      assert.equal(commandsSeen(sink, 'RSET'), 1);
      const next = await backend.open(CLIENT);
      assert.equal(await deliver(next), 250);
      await next.release();
      assert.equal(sink.connections, 1);
      const [message] = await sink.waitFor(1);
      assert.deepEqual(message?.rcptTo, ['user@example.org']);
    });
  });

  it('mirrors refused recipients and rotates the connection after maxRcptErrorsPerConnection', async () => {
    await withBackend({}, { maxRcptErrorsPerConnection: 2 }, async (sink, backend) => {
      const first = await backend.open(CLIENT);
      assert.equal((await first.mail('sender@example.net', {})).code, 250);
      const refused = await first.rcpt('nobody@example.org', {});
      assert.deepEqual([refused.code, refused.enhanced], [550, '5.1.1']);
      assert.equal((await first.rcpt('user@example.org', {})).code, 250);
      assert.equal((await first.data(Buffer.from('x\r\n'))).code, 250); // a delivery resets the count
      await first.release();
      const second = await backend.open(CLIENT);
      assert.equal((await second.mail('sender@example.net', {})).code, 250);
      assert.equal((await second.rcpt('nobody@example.org', {})).code, 550);
      await second.release();
      assert.equal(sink.connections, 1, 'one error since the delivery: still reused');
      const third = await backend.open(CLIENT);
      assert.equal((await third.mail('sender@example.net', {})).code, 250);
      assert.equal((await third.rcpt('nobody1@example.org', {})).code, 550);
      assert.equal((await third.rcpt('nobody2@example.org', {})).code, 550);
      await third.release();
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      const fourth = await backend.open(CLIENT);
      assert.equal(await deliver(fourth), 250);
      await fourth.release();
      assert.equal(sink.connections, 2);
    });
  });

  it('replaces a connection after maxMessagesPerConnection transactions', async () => {
    await withBackend({}, { maxMessagesPerConnection: 2 }, async (sink, backend) => {
      for (let i = 0; i < 3; i++) {
        const txn = await backend.open(CLIENT);
        assert.equal(await deliver(txn), 250);
        await txn.release();
      }
      assert.equal(sink.connections, 2);
      assert.equal(commandsSeen(sink, 'QUIT'), 1);
    });
  });

  it('drops a connection idle for idleTimeoutMs when it is next taken (injected clock)', async () => {
    let now = 1_000_000;
    const clock: Clock = { now: () => now };
    await withBackend({}, { idleTimeoutMs: 30_000 }, async (sink, backend) => {
      const first = await backend.open(CLIENT);
      assert.equal(await deliver(first), 250);
      await first.release();
      now += 30_000;
      const second = await backend.open(CLIENT);
      assert.equal(await deliver(second), 250);
      await second.release();
      assert.equal(sink.connections, 2);
    }, clock);
  });

  it('retries MAIL once on a fresh connection when a pooled one turns out closed', async () => {
    await withBackend({}, {}, async (sink, backend, seen) => {
      const first = await backend.open(CLIENT);
      assert.equal(await deliver(first), 250);
      await first.release();
      sink.dropConnections(); // the backend restarted; our pooled socket has not noticed yet
      const second = await backend.open(CLIENT);
      assert.equal(await deliver(second), 250);
      await second.release();
      assert.equal((await sink.waitFor(2)).length, 2);
      assert.equal(sink.connections, 2);
      assert.deepEqual(seen.errors, []);
    });
  });

  it('keeps at most poolSize idle connections', async () => {
    await withBackend({}, { poolSize: 1 }, async (sink, backend) => {
      const a = await backend.open(CLIENT);
      const b = await backend.open(CLIENT);
      assert.deepEqual(backend.stats(), { idle: 0, busy: 2 });
      await a.release();
      await b.release();
      assert.deepEqual(backend.stats(), { idle: 1, busy: 0 });
      assert.equal(sink.connections, 2);
      assert.equal(commandsSeen(sink, 'QUIT'), 1);
    });
  });
});

describe('backend with XCLIENT', () => {
  it('passes the client identity and re-EHLOs with its HELO; never reuses the connection', async () => {
    await withBackend({ advertiseXclient: true }, { xclient: true }, async (sink, backend) => {
      for (const client of [CLIENT, { ip: '2001:db8::25', ptr: null, helo: 'Odd.Example', esmtp: false }]) {
        const txn = await backend.open(client);
        assert.equal(await deliver(txn), 250);
        await txn.release();
        assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      }
      const [first, second] = await sink.waitFor(2);
      assert.deepEqual(first?.xclient, { ADDR: '192.0.2.7', NAME: 'mail.example.net', PROTO: 'ESMTP', HELO: 'mail.example.net' });
      assert.equal(first?.helo, 'mail.example.net');
      assert.deepEqual(second?.xclient, { ADDR: '2001:db8::25', NAME: '', PROTO: 'SMTP', HELO: 'Odd.Example' });
      assert.equal(second?.helo, 'odd.example');
      assert.equal(sink.connections, 2);
    });
  });

  it('sends no XCLIENT when the backend does not offer it, and still does not reuse', async () => {
    await withBackend({ advertiseXclient: false }, { xclient: true }, async (sink, backend) => {
      for (let i = 0; i < 2; i++) {
        const txn = await backend.open(CLIENT);
        assert.equal(await deliver(txn), 250);
        await txn.release();
      }
      const [message] = await sink.waitFor(2);
      assert.equal(message?.xclient, undefined);
      assert.equal(message?.helo, 'postern.test');
      assert.equal(sink.connections, 2);
    });
  });
});

describe('backend failures', () => {
  it('backend down → open rejects with BackendError connect, counted', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const seen = recorder();
    const backend = createBackend(backendOptions(port), { observer: seen });
    await assert.rejects(backend.open(CLIENT), (err: unknown) => err instanceof BackendError && err.kind === 'connect');
    assert.deepEqual(seen.errors, ['connect']);
    const probe = await backend.probe();
    assert.equal(probe.ok, false);
    assert.match(probe.ok ? '' : probe.error, /ECONNREFUSED/);
    await backend.close();
  });

  it('final DATA reply never comes → timeout, nothing delivered, connection not reused', async () => {
    await withBackend({ behaviour: { data: () => 'hang' } }, { dataTimeoutMs: 100 }, async (sink, backend, seen) => {
      const txn = await backend.open(CLIENT);
      await assert.rejects(deliver(txn), (err: unknown) => err instanceof BackendError && err.kind === 'timeout');
      await txn.release();
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      assert.equal(sink.messages.length, 0);
      assert.deepEqual(seen.latency, ['error']);
      assert.deepEqual(seen.errors, ['timeout']);
    });
  });

  it('backend drops the connection at end of DATA → closed', async () => {
    await withBackend({ behaviour: { data: () => 'drop' } }, {}, async (sink, backend, seen) => {
      const txn = await backend.open(CLIENT);
      await assert.rejects(deliver(txn), (err: unknown) => err instanceof BackendError && err.kind === 'closed');
      await txn.release();
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      assert.equal(sink.messages.length, 0);
      assert.deepEqual(seen.errors, ['closed']);
    });
  });

  it('451 and 550 final replies are returned; the connection stays in the pool', async () => {
    const replies = [{ code: 451, message: '4.3.0 Try again' }, { code: 550, message: '5.7.1 No thanks' }];
    await withBackend({ behaviour: { data: () => replies.shift() } }, {}, async (sink, backend, seen) => {
      for (const expected of [451, 550]) {
        const txn = await backend.open(CLIENT);
        assert.equal(await deliver(txn), expected);
        await txn.release();
        assert.deepEqual(backend.stats(), { idle: 1, busy: 0 });
      }
      assert.equal(sink.connections, 1);
      assert.equal(commandsSeen(sink, 'RSET'), 0);
      assert.equal(sink.messages.length, 0);
      assert.deepEqual(seen.latency, ['tempfail', 'rejected']);
    });
  });

  it('abort() destroys the connection at once; a released transaction refuses further use', async () => {
    await withBackend({}, {}, async (sink, backend) => {
      const txn = await backend.open(CLIENT);
      assert.equal((await txn.mail('sender@example.net', {})).code, 250);
      txn.abort();
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      await assert.rejects(txn.rcpt('user@example.org', {}), /already released/);
      await txn.release(); // harmless
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      assert.equal(sink.messages.length, 0);
    });
  });

  it('close() QUITs idle connections and refuses new transactions; probe() works while up', async () => {
    const sink = await startSink();
    const backend = createBackend(backendOptions(sink.port));
    try {
      assert.deepEqual(await backend.probe(), { ok: true });
      const txn = await backend.open(CLIENT);
      await txn.release();
      assert.deepEqual(backend.stats(), { idle: 1, busy: 0 });
      await backend.close();
      assert.deepEqual(backend.stats(), { idle: 0, busy: 0 });
      assert.equal(commandsSeen(sink, 'QUIT'), 2);
      await assert.rejects(backend.open(CLIENT), (err: unknown) => err instanceof BackendError && err.kind === 'closed');
    } finally {
      await sink.close();
    }
  });
});
