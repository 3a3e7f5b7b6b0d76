/**
 * endTransaction's bookkeeping (metrics, the decision line) must never change the answer: an
 * exception there after the backend's 250 would become a 451 and the sender would retry a
 * delivered message. The integration endings test covers every ending's effects; this covers
 * the one failure it cannot provoke over SMTP.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { Facts } from '../../../src/core/facts.ts';
import type { EndDeps } from '../../../src/pipeline/deps.ts';
import { endTransaction } from '../../../src/pipeline/end.ts';
import type { SessionState, Transaction } from '../../../src/pipeline/state.ts';

describe('endTransaction', () => {
  it('a delivered transaction ends (backend released, bytes given back) even when recording it throws, and the failure is logged', () => {
    const logs: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { logs.push(JSON.parse(c.toString()) as Record<string, unknown>); cb(); } }));
    let released = 0;
    let given = 0;
    const tx = {
      seq: 1, startedAt: 0, sender: 'a@b.example', senderDomain: 'b.example', mailParams: {}, recipients: [{ address: 'u@example.net', params: {} }],
      backend: { release: () => { released++; return Promise.resolve(); }, abort: () => assert.fail('a delivered message is not aborted') },
      backendLost: false, refused: { backend: 0, protocol: 0 }, reservations: { message: [], recipients: [] }, heldBytes: 100, inData: true, ended: false,
    } as unknown as Transaction;
    const state = { id: 's1', log, tx, messages: 0 } as unknown as SessionState;
    const throwing = { inc: () => { throw new Error('label set out of bounds'); } };
    const deps = {
      clock: { now: () => 10 },
      metrics: { transactionEndings: { inc: () => {} }, messages: throwing },
      reputation: { learn: () => Promise.resolve() },
      release: () => {},
      budget: { give: (_ip: string, n: number) => { given += n; } },
      reports: null, failureReports: null, decisionFile: null,
    } as unknown as EndDeps;
    const facts = { client: { ip: '192.0.2.1', tier: 'neutral' }, spf: { result: 'pass' }, dkim: [], dmarc: null, message: null } as unknown as Facts;
    assert.doesNotThrow(() => endTransaction(deps, state, tx, { kind: 'delivered', answer: { code: 250, enhanced: '2.0.0', text: 'ok' } } as never, { facts }));
    assert.equal(tx.ended, true);
    assert.equal(released, 1);
    assert.equal(given, 100);
    assert.ok(logs.some((l) => l.msg === 'recording the decision failed'), JSON.stringify(logs));
  });
});
