/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * replay over files written here: pino-style log lines mixed with other lines, a decisions
 * file, gzip, records that cannot be decided again; and the bounded top list.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import type { Facts } from '../../../src/core/facts.ts';
import { decisionRecord } from '../../../src/observability/decision-record.ts';
import { decide } from '../../../src/policy/decide.ts';
import { replayFiles } from '../../../src/policy/replay/replay.ts';
import { replayJson, replayText } from '../../../src/policy/replay/report.ts';
import { TopCounter } from '../../../src/policy/replay/top.ts';
import { dataFacts, mailFacts } from './facts.ts';
import { ruleSet } from './rules.ts';

const CURRENT = ruleSet('rules:\n  - name: spf-early\n    match: { spf: fail, tier: bad }\n    action: reject\n  - name: dmarc-reject\n    match: { dmarc: fail, dmarc_policy: reject }\n    action: reject\n');
const CANDIDATE = ruleSet([
  'rules:',
  '  - name: dmarc-reject\n    match: { dmarc: fail, dmarc_policy: reject }\n    action: reject',
  '  - name: none-quarantine\n    match: { dmarc: fail, dmarc_policy: none }\n    action: quarantine',
  '  - name: trial\n    match: { spf: softfail }\n    action: reject\n    mode: monitor',
].join('\n') + '\n');

/** A line as the gateway writes it: pino fields around the record. */
function line(facts: Facts, stage: 'mail' | 'data' = 'data', session = 's'): string {
  const decision = decide(facts, CURRENT, stage) ?? undefined;
  const v = decision?.enforced;
  const record = decisionRecord({ facts, stage, ...(decision ? { decision } : {}), rule: v?.rule ?? '', action: v?.action ?? 'accept', reason: v?.reason ?? 'default' });
  return JSON.stringify({ level: 30, time: '2026-11-23T10:00:00.000Z', service: 'postern', session, ...record, msg: 'decision' });
}

describe('replay', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-replay-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const lines = [
    '{"level":30,"msg":"postern listening"}',
    line(dataFacts({ dmarc: 'pass' }), 'data', 'a1'),
    line(dataFacts({ dmarc: 'fail', dmarcPolicy: 'reject', fromDomain: 'bank.example' }), 'data', 'a2'),
    line(dataFacts({ dmarc: 'fail', dmarcPolicy: 'none', fromDomain: 'weak.example', ip: '203.0.113.5' }), 'data', 'a3'),
    line(dataFacts({ dmarc: 'fail', dmarcPolicy: 'none', fromDomain: 'weak.example', ip: '203.0.113.6' }), 'data', 'a4'),
    line(dataFacts({ spf: 'softfail' }), 'data', 'a5'),
    line(mailFacts({ spf: 'fail', tier: 'bad' }), 'mail', 'a6'),
    '',
    'not json {"event":"decision"',
    JSON.stringify({ event: 'decision', v: 0 }),
    JSON.stringify(decisionRecord({ facts: dataFacts(), stage: 'data', rule: '', action: 'reject', reason: 'oversize' })),
  ];

  it('counts transitions, candidate rules, changed domains and IPs; ignores other lines; skips what cannot be decided again', async () => {
    const log = path.join(dir, 'postern.log');
    fs.writeFileSync(log, lines.slice(0, 4).join('\n') + '\n');
    // the rest gzipped, as rotation leaves them; recognised by content, whatever the name
    const gz = path.join(dir, 'older.log.1');
    fs.writeFileSync(gz, gzipSync(lines.slice(4).join('\r\n') + '\r\n'));
    const t = await replayFiles([log, gz], CANDIDATE, { show: 1 });
    const json = replayJson(t, 'CANDIDATE', 5) as Record<string, unknown>;
    assert.deepEqual(json.totals, { lines: 11, ignored_lines: 3, records: 8, skipped: { not_v1: 1, no_verdict: 1, malformed: 0 }, redecided: 6, changed: 2, unchanged: 3, undecidable: 1 });
    const transitions = (json.transitions as Array<{ from: string; to: string | null; count: number; changed: boolean; examples?: Array<{ session: string; line: number; file: string }> }>);
    assert.deepEqual(transitions.map(({ from, to, count, changed }) => ({ from, to, count, changed })), [
      { from: 'accept', to: 'accept', count: 2, changed: false },
      { from: 'accept', to: 'quarantine', count: 2, changed: true },
      { from: 'reject', to: 'reject', count: 1, changed: false },
      { from: 'reject', to: null, count: 1, changed: false },
    ]);
    assert.deepEqual(transitions[1]?.examples?.map((e) => [e.session, path.basename(e.file), e.line]), [['a3', 'postern.log', 4]]);
    assert.deepEqual(json.rules, [
      { rule: 'dmarc-reject', action: 'reject', mode: 'enforce', matched: 1, changed: 0 },
      { rule: 'none-quarantine', action: 'quarantine', mode: 'enforce', matched: 2, changed: 2 },
      { rule: 'trial', action: 'reject', mode: 'monitor', matched: 1, changed: 0 },
      { rule: '', action: 'accept', mode: 'enforce', matched: 1, changed: 0 },
    ]);
    assert.deepEqual(json.top_changed, { domains: [{ value: 'weak.example', count: 2 }], ips: [{ value: '203.0.113.5', count: 1 }, { value: '203.0.113.6', count: 1 }], max_error: 0 });
    const text = replayText(t, 'CANDIDATE', 5);
    assert.match(text, /^accept +→ +quarantine +2 +changed$/m);
    assert.match(text, /^reject +→ +\(at DATA\) +1 +unknown: refused at MAIL FROM now$/m);
    assert.match(text, /^changed: 2 of 6 \(33\.33%\); 1 would wait for the message/m);
    assert.match(text, /^ {2}trial +accept \(monitor: would reject\) +1 +0$/m);
    assert.match(text, /^ {4}.*postern\.log:4 session a3 2026-11-23T10:00:00\.000Z: accept → quarantine \(none-quarantine\)$/m);
  });

  it('--changed-only: examples only for the transitions that change', async () => {
    const log = path.join(dir, 'changed-only.log');
    fs.writeFileSync(log, lines.join('\n') + '\n');
    const t = await replayFiles([log], CANDIDATE, { show: 2, changedOnly: true });
    const transitions = (replayJson(t, 'CANDIDATE', 5) as { transitions: Array<{ from: string; to: string | null; examples?: Array<{ session: string }> }> }).transitions;
    assert.deepEqual(transitions.map((tr) => [tr.from, tr.to, tr.examples?.map((e) => e.session) ?? []]), [
      ['accept', 'accept', []],
      ['accept', 'quarantine', ['a3', 'a4']],
      ['reject', 'reject', []],
      ['reject', null, []],
    ]);
    assert.deepEqual([...replayText(t, 'CANDIDATE', 5).matchAll(/^examples (.*):$/gm)].map((m) => m[1]), ['accept → quarantine']);
  });

  it('the top lists count a domain in any case, and an IPv4-mapped IPv6 address as its IPv4, once', async () => {
    const log = path.join(dir, 'mixed-forms.log');
    const weak = (fromDomain: string, ip: string, session: string): string => line(dataFacts({ dmarc: 'fail', dmarcPolicy: 'none', fromDomain, ip }), 'data', session);
    fs.writeFileSync(log, [weak('weak.example', '203.0.113.5', 'm1'), weak('Weak.EXAMPLE', '::ffff:203.0.113.5', 'm2'), weak('WEAK.example.', '::FFFF:cb00:7105', 'm3')].join('\n') + '\n');
    const t = await replayFiles([log], CANDIDATE, { show: 0 });
    assert.deepEqual((replayJson(t, 'CANDIDATE', 5) as { top_changed: unknown }).top_changed, {
      domains: [{ value: 'weak.example', count: 3 }], ips: [{ value: '203.0.113.5', count: 3 }], max_error: 0,
    });
  });

  it('an unreadable or broken file is an error naming it', async () => {
    const bad = path.join(dir, 'broken.gz');
    fs.writeFileSync(bad, gzipSync('{"a":1}\n').subarray(0, 12));
    await assert.rejects(replayFiles([bad], CANDIDATE, { show: 0 }), /broken\.gz: unexpected end of file/);
    await assert.rejects(replayFiles([path.join(dir, 'missing')], CANDIDATE, { show: 0 }), /missing: ENOENT/);
  });

  it('the top list stays bounded and says how approximate it became', () => {
    const top = new TopCounter(10);
    for (let i = 0; i < 5_000; i++) top.add(`rare-${i}`);
    for (let i = 0; i < 100; i++) top.add('heavy');
    const [first] = top.top(1);
    assert.equal(first?.value, 'heavy');
    assert.ok(top.maxError > 0, 'approximate once more than 2 × capacity distinct values were seen');
    // Space-Saving: the true count (100) lies within [count - maxError, count]
    assert.ok((first?.count ?? 0) >= 100 && (first?.count ?? 0) - top.maxError <= 100, `${first?.count} ± ${top.maxError}`);
    const exact = new TopCounter(10);
    for (const v of ['a', 'b', 'a']) exact.add(v);
    assert.deepEqual([exact.top(5), exact.maxError], [[{ value: 'a', count: 2 }, { value: 'b', count: 1 }], 0]);
  });
});
