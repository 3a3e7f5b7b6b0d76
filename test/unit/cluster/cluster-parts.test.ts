/**
 * The parts of the cluster that need no processes: the IPC channel (batching, answers,
 * timeouts, a vanished peer), the rate store over IPC (the same behaviour suite as every
 * store), node-wide connection slots, all-or-nothing reloads, restart backoff.
 * test/integration/cluster.test.ts runs the real thing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IpcChannel, IpcError, type IpcMessage } from '../../../src/cluster/ipc.ts';
import { createIpcStore, serveStoreLearn, serveStoreRequest, STORE_LEARN, STORE_REQUEST } from '../../../src/cluster/ipc-store.ts';
import { reloadAll, type ReloadTarget } from '../../../src/cluster/reload.ts';
import { createSlotBook } from '../../../src/cluster/slots.ts';
import { Supervisor } from '../../../src/cluster/supervisor.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { createByteBudget, workerShare } from '../../../src/pipeline/byte-budget.ts';
import { createMemoryStore } from '../../../src/reputation/memory-store.ts';
import { budgetWarnings } from '../../../src/startup/preflight.ts';
import { eventually } from '../../harness/wait.ts';
import { HALF_LIFE_MS, SCORE_TTL_MS, storeBehaviour } from '../reputation/store-suite.ts';

/** Two channels joined back to back, each message serialised as node's IPC does (JSON). */
function pair(handlers: { onRequest?: (k: string, b: unknown) => unknown; onNote?: (k: string, b: unknown) => void } = {}) {
  const sent: IpcMessage[] = [];
  let primary: IpcChannel | null = null;
  const worker = new IpcChannel({
    send: (m) => {
      sent.push(m);
      setImmediate(() => primary!.receive(JSON.parse(JSON.stringify(m))));
    },
  });
  primary = new IpcChannel({ send: (m) => setImmediate(() => worker.receive(JSON.parse(JSON.stringify(m)))), ...handlers });
  return { worker, primary, sent };
}

describe('IpcChannel', () => {
  it('answers requests, passes errors back, and sends the frames of one turn as one message', async () => {
    const { worker, sent } = pair({
      onRequest: (kind, body) => {
        if (kind === 'fail') throw new Error('refused');
        return Promise.resolve({ echo: body });
      },
    });
    const answers = await Promise.all([1, 2, 3].map((n) => worker.request<{ echo: number }>('echo', n, 1_000)));
    assert.deepEqual(answers.map((a) => a.echo), [1, 2, 3]);
    assert.equal(sent.length, 1, 'three requests in one turn: one message');
    await assert.rejects(worker.request('fail', null, 1_000), (err: Error) => err instanceof IpcError && err.message === 'refused');
  });

  it('a request without an answer times out; closing fails every waiting request at once', async () => {
    const silent = new IpcChannel({ send: () => undefined });
    await assert.rejects(silent.request('x', null, 20), /no answer within 20 ms/);
    const waiting = silent.request('y', null, 60_000);
    silent.close();
    await assert.rejects(waiting, /gone/);
    await assert.rejects(silent.request('z', null, 60_000), /gone/);
  });

  it('ignores messages that are not its own (node:cluster internals)', () => {
    const channel = new IpcChannel({ send: () => undefined });
    channel.receive({ cmd: 'NODE_CLUSTER', act: 'online' });
    channel.receive(null);
  });
});

describe('rate store over IPC (the primary holds the memory store)', () => {
  storeBehaviour(() => {
    const memory = createMemoryStore({ score: { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS } });
    const { worker } = pair({
      onRequest: (kind, body) => (kind === STORE_REQUEST ? serveStoreRequest(memory, body) : Promise.reject(new Error(kind))),
      onNote: (kind, body) => {
        if (kind === STORE_LEARN) serveStoreLearn(memory, body);
      },
    });
    return Promise.resolve({ store: createIpcStore(worker, { timeoutMs: 2_000 }), close: () => memory.close() });
  });

  it('reports a primary that stopped answering in health, and recovers', async () => {
    let answer = false;
    const memory = createMemoryStore({ score: { halfLifeMs: HALF_LIFE_MS, ttlMs: SCORE_TTL_MS } });
    const { worker } = pair({ onRequest: (_k, body) => (answer ? serveStoreRequest(memory, body) : new Promise(() => undefined)) });
    const store = createIpcStore(worker, { timeoutMs: 300 });
    await assert.rejects(store.scores([], 0), /no answer/);
    assert.equal(store.health().ok, false);
    answer = true;
    await store.scores([], 0);
    assert.deepEqual(store.health(), { ok: true });
  });
});

describe('node-wide connection slots', () => {
  it('counts total and per IP over all workers; a worker that exits gives all its slots back', () => {
    const book = createSlotBook(() => ({ maxConnections: 3, maxConnectionsPerIp: 2 }));
    const a1 = book.acquire(1, '192.0.2.1');
    const a2 = book.acquire(2, '192.0.2.1');
    assert.ok(a1 !== null && a2 !== null);
    assert.equal(book.acquire(1, '192.0.2.1'), null, 'a third from the same IP, whichever worker');
    const b = book.acquire(2, '192.0.2.2');
    assert.ok(b !== null);
    assert.equal(book.acquire(1, '192.0.2.3'), null, 'the node is full');
    book.release(a1);
    assert.ok(book.acquire(1, '192.0.2.3') !== null);
    book.releaseOwner(2);
    assert.equal(book.total, 1);
    assert.ok(book.acquire(1, '192.0.2.1') !== null);
  });
});

describe('reload across workers (all or nothing)', () => {
  const target = (name: string, log: string[], fail = false): ReloadTarget => ({
    name,
    prepare: () => (fail ? Promise.reject(new Error('bad policy')) : Promise.resolve(log.push(`${name} prepare`))),
    commit: () => Promise.resolve(log.push(`${name} commit`)),
    abort: () => Promise.resolve(log.push(`${name} abort`)),
  });

  it('commits everywhere only when every worker prepared', async () => {
    const log: string[] = [];
    assert.deepEqual(await reloadAll([target('w1', log), target('w2', log)], 2), { ok: true });
    assert.deepEqual(log.sort(), ['w1 commit', 'w1 prepare', 'w2 commit', 'w2 prepare']);
  });

  it('one worker failing leaves every worker on the old set', async () => {
    const log: string[] = [];
    const outcome = await reloadAll([target('w1', log), target('w2', log, true)], 2);
    assert.deepEqual(outcome, { ok: false, failures: ['w2: bad policy'] });
    assert.ok(!log.some((l) => l.endsWith('commit')), log.join(','));
    assert.ok(log.includes('w1 abort'));
  });

  it('a worker missing (being restarted) fails the reload too', async () => {
    const log: string[] = [];
    const outcome = await reloadAll([target('w1', log)], 2);
    assert.equal(outcome.ok, false);
    assert.ok(!log.some((l) => l.endsWith('commit')));
  });
});

describe('Supervisor', () => {
  it('starts every slot, restarts a worker that exits with a doubling pause, and stops restarting on stop()', async () => {
    const exits = new Map<number, () => void>();
    const starts: number[] = [];
    const pauses: number[] = [];
    let now = 0;
    const sup = new Supervisor<number>({
      count: 2,
      now: () => now,
      backoff: { firstMs: 5, maxMs: 40, stableMs: 1_000 },
      start(slot, exited) {
        starts.push(slot);
        exits.set(slot, () => exited(1, null));
        return slot;
      },
      onRestart: (_slot, delayMs) => pauses.push(delayMs),
    });
    sup.start();
    assert.deepEqual(starts, [1, 2]);
    for (let i = 0; i < 4; i++) {
      exits.get(2)!();
      assert.equal(sup.get(2), null);
      await eventually(() => sup.get(2) !== null, 'slot 2 started again', 5_000);
    }
    assert.deepEqual(pauses, [5, 10, 20, 40]);
    now += 1_000; // it ran long enough to count as healthy
    exits.get(2)!();
    assert.equal(pauses.at(-1), 5);
    sup.stop();
    exits.get(1)!();
    assert.deepEqual(sup.running().map((r) => r.slot), []);
  });
});

describe('per-worker files', () => {
  it('gives each worker its own decisions.file, beside the configured one', async () => {
    const { perWorkerFile } = await import('../../../src/cluster/worker.ts');
    assert.equal(perWorkerFile('/var/log/postern/decisions.jsonl', 2), '/var/log/postern/decisions.w2.jsonl');
    assert.equal(perWorkerFile('/var/log/postern/decisions', 1), '/var/log/postern/decisions.w1');
  });
});

describe('a worker\'s share of the in-flight byte budget (issue 11: large messages on many cores)', () => {
  const MiB = 1_048_576;
  const limits = { maxBytesInFlight: 256 * MiB, maxBytesInFlightPerClient: 64 * MiB, maxMessageSize: 10_000_000 };
  /** Does a budget of this share take one message of `bytes` from one client, 64 KiB at a time? */
  const admits = (share: ReturnType<typeof workerShare>, bytes: number): boolean => {
    const budget = createByteBudget({ max: share.maxBytesInFlight, perClient: share.maxBytesInFlightPerClient, ipv6PrefixLength: 64 });
    for (let taken = 0; taken < bytes; taken += 65_536) if (!budget.tryTake('192.0.2.1', Math.min(65_536, bytes - taken))) return false;
    return true;
  };

  it('divides the total, never below one message of maxMessageSize, and never divides the per-client limit', () => {
    assert.deepEqual(workerShare(limits, 1), { maxBytesInFlight: 256 * MiB, maxBytesInFlightPerClient: 64 * MiB });
    assert.deepEqual(workerShare(limits, 8), { maxBytesInFlight: 32 * MiB, maxBytesInFlightPerClient: 64 * MiB });
    assert.deepEqual(workerShare(limits, 32), { maxBytesInFlight: 10_000_000, maxBytesInFlightPerClient: 64 * MiB }, '8 MiB each would be below one message');
    for (const workers of [1, 2, 4, 8, 16, 32, 64]) {
      assert.ok(admits(workerShare(limits, workers), 9_500_000), `a 9.5 MB message fits a worker's share with ${workers} workers`);
    }
  });

  it('warns (one line naming the keys) when the total over the workers is below one message, or the per-client limit is', () => {
    const config = (over: Record<string, unknown>, workers: number) => configSchema.parse({ domains: ['example.net'], workers, limits: over });
    assert.deepEqual(budgetWarnings(config({}, 8)), [], 'the defaults on 8 cores');
    const many = budgetWarnings(config({}, 32));
    assert.equal(many.length, 1);
    assert.match(many[0]!, /^limits\.maxBytesInFlight: 268435456 bytes over 32 workers is less than limits\.maxMessageSize \(10000000\) each: each worker holds 10000000, so the node may hold up to 320000000 bytes/);
    assert.ok(!many[0]!.includes('\n'));
    assert.match(budgetWarnings(config({ maxBytesInFlight: 5_000_000 }, 1))[0]!, /^limits\.maxBytesInFlight \(5000000\) is less than limits\.maxMessageSize \(10000000\): a larger message is deferred with 452 4\.3\.1 every time$/);
    assert.match(budgetWarnings(config({ maxBytesInFlightPerClient: 2_000_000 }, 1))[0]!, /^limits\.maxBytesInFlightPerClient \(2000000\) is less than limits\.maxMessageSize/);
  });
});
