/**
 * The parts createGateway is made of, alone: the drain (event-driven, its deadline injected),
 * the reloader (all or nothing, one at a time, in order) and the readiness checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { configSchema } from '../../../src/config/schema.ts';
import { drain, sessionCount, type Wait } from '../../../src/gateway/drain.ts';
import { readinessChecks } from '../../../src/gateway/readiness.ts';
import { createReloader } from '../../../src/gateway/reload.ts';
import { createMetrics } from '../../../src/observability/metrics.ts';
import type { RuleSet } from '../../../src/policy/types.ts';
import { NO_LISTS } from '../../../src/reputation/lists.ts';
import type { SmtpServers } from '../../../src/smtp/server.ts';

/** Waits the test ends by hand: the drain deadline and the idle sweep alike (told apart by their length). */
function manualWait(): { wait: Wait; fire(ms?: number): void; started: number[] } {
  const pending: Array<{ ms: number; resolve: () => void }> = [];
  const started: number[] = [];
  return {
    started,
    wait: (ms) => {
      started.push(ms);
      let resolve!: () => void;
      const promise = new Promise<void>((r) => { resolve = r; });
      pending.push({ ms, resolve });
      return { promise, cancel: () => undefined };
    },
    fire: (ms) => {
      for (const p of pending.filter((x) => ms === undefined || x.ms === ms)) {
        pending.splice(pending.indexOf(p), 1);
        p.resolve();
      }
    },
  };
}

function fakeServers(sessions: Array<{ id: string; busy: boolean }>, closed: string[]): SmtpServers {
  const server = {
    sessions: () => sessions.filter((s) => !closed.includes(s.id)).map((s) => ({ id: s.id, busy: () => s.busy, closeWith: () => { closed.push(s.id); } })),
  };
  return {
    plain: server, xclient: { sessions: () => [] }, sessions: new Map(),
    shutDown: (c: { closeWith(): void }) => c.closeWith(),
  } as unknown as SmtpServers;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('drain', () => {
  it('closes idle sessions at once, lets busy ones finish, and ends when the last session is gone', async () => {
    const closed: string[] = [];
    const count = sessionCount();
    count.set(2);
    let draining = false;
    const t = manualWait();
    const sessions = [{ id: 'idle', busy: false }, { id: 'busy', busy: true }];
    const done = drain({ servers: fakeServers(sessions, closed), listener: { drain: () => { draining = true; } }, count }, 30_000, t.wait);
    assert.equal(draining, true);
    assert.deepEqual(closed, ['idle']);
    assert.deepEqual(t.started, [30_000, 250], 'the deadline, then the first idle sweep');
    sessions.length = 0; // the busy session finished its transaction and left
    count.set(0);
    await done;
    assert.deepEqual(closed, ['idle'], 'the busy one was not cut');
  });

  it('a busy session that finished its transaction is closed at the next idle sweep, on the injected wait', async () => {
    const closed: string[] = [];
    const count = sessionCount();
    count.set(1);
    const t = manualWait();
    const session = { id: 'busy', busy: true };
    const done = drain({ servers: fakeServers([session], closed), listener: { drain: () => undefined }, count }, 30_000, t.wait);
    t.fire(250);
    await turn();
    assert.deepEqual(closed, [], 'still in its transaction');
    session.busy = false; // its transaction ended; it waits for the next command
    assert.deepEqual(closed, [], 'not before the sweep');
    t.fire(250);
    await turn();
    assert.deepEqual(closed, ['busy'], 'closed by the sweep, long before the deadline');
    count.set(0);
    await done;
    const sweeps = t.started.filter((ms) => ms === 250).length;
    t.fire(250);
    await turn();
    assert.equal(t.started.filter((ms) => ms === 250).length, sweeps, 'the sweep stopped with the drain');
  });

  it('at the deadline, closes the sessions still busy', async () => {
    const closed: string[] = [];
    const count = sessionCount();
    count.set(1);
    const t = manualWait();
    const done = drain({ servers: fakeServers([{ id: 'busy', busy: true }], closed), listener: { drain: () => undefined }, count }, 5_000, t.wait);
    assert.deepEqual(closed, []);
    t.fire(5_000); // the drain deadline
    await turn();
    assert.deepEqual(closed, ['busy']);
    count.set(0);
    await done;
  });
});

describe('reloader', () => {
  const logger = pino({ level: 'silent' });
  const base = configSchema.parse({ domains: ['example.net'] });
  const rules = (n: number): RuleSet => ({ rules: new Array(n).fill(null), files: [] } as unknown as RuleSet);

  it('applies config, policies and lists together, or nothing', async () => {
    const metrics = createMetrics(new Registry(), { defaultMetrics: false });
    const applied: number[] = [];
    let policiesBroken = false;
    const reload = createReloader({
      running: () => base,
      readConfig: () => base,
      loadPolicies: () => (policiesBroken ? Promise.reject(new Error('broken.yaml:3: bad')) : Promise.resolve(rules(3))),
      loadLists: () => NO_LISTS,
      loadTls: () => null,
      apply: (next) => applied.push(next.ruleSet.rules.length),
      logger,
      metrics,
    });
    await reload.reload();
    policiesBroken = true;
    await assert.rejects(reload.reload(), /broken\.yaml:3/);
    assert.deepEqual(applied, [3], 'the failed reload applied nothing');
    assert.match(await metrics.policyReloads.get().then((m) => JSON.stringify(m.values)), /"failed"/);
  });

  it('runs one reload at a time, in the order asked', async () => {
    const metrics = createMetrics(new Registry(), { defaultMetrics: false });
    const order: string[] = [];
    let n = 0;
    const reload = createReloader({
      running: () => base,
      readConfig: () => base,
      // the first reload is slow: the second must still apply after it
      loadPolicies: async () => { const me = ++n; if (me === 1) await new Promise((r) => setTimeout(r, 20)); order.push(`load ${me}`); return rules(me); },
      loadLists: () => NO_LISTS,
      loadTls: () => null,
      apply: (next) => order.push(`apply ${next.ruleSet.rules.length}`),
      logger,
      metrics,
    });
    await Promise.all([reload.reload(), reload.reload()]);
    assert.deepEqual(order, ['load 1', 'apply 1', 'load 2', 'apply 2']);
  });
});

describe('readiness checks', () => {
  it('a Redis outage is degraded (ready) under failMode open and not ready under closed', async () => {
    let failMode: 'open' | 'closed' = 'open';
    const checks = readinessChecks({
      rules: () => 2,
      backend: { probe: () => Promise.resolve({ ok: true as const }) },
      sharedStore: { store: { health: () => ({ ok: false as const, error: 'connection refused' }) }, failMode: () => failMode },
    });
    const redis = checks.find((c) => c.name === 'redis')!;
    assert.deepEqual(await redis.check(), { ok: true, degraded: 'connection refused (failMode open: limits per node)' });
    failMode = 'closed';
    assert.deepEqual(await redis.check(), { ok: false, error: 'connection refused' });
    assert.deepEqual(checks.map((c) => c.name), ['policies', 'backend', 'redis']);
  });
});
