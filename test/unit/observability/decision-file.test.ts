/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * decisions.file: JSON lines, rotated by size into gzip files and at midnight UTC (on a mocked
 * clock: node:test's timers drive rotating-file-stream's own setTimeout and Date), at most
 * `keep` kept, readable by replay; never waits for the disk (drops and counts instead);
 * refuses an unwritable place.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { after, describe, it, mock } from 'node:test';
import pino from 'pino';
import { configSchema } from '../../../src/config/schema.ts';
import { checkDecisionsFile, MAX_PENDING_BYTES, openDecisionFile } from '../../../src/observability/decision-file.ts';
import { decisionRecord } from '../../../src/observability/decision-record.ts';
import { eventually } from '../../harness/wait.ts';
import { dataFacts } from '../policy/facts.ts';

const record = decisionRecord({ facts: dataFacts({ fromDomain: 'x'.repeat(200) + '.example' }), stage: 'data', decision: { enforced: { action: 'accept', rule: '', reason: 'default' } }, rule: '', action: 'accept', reason: 'default' });
const quiet = pino({ level: 'silent' });
const clock = { now: () => Date.parse('2026-11-23T10:00:00Z') };

describe('decisions.file', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-decisions-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('rotates by size into gzip files, keeps at most `keep`, and every kept line is a v1 record with time and session', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'rotate-'));
    const file = path.join(dir, 'decisions.jsonl');
    const counts = { written: 0, dropped: 0 };
    const out = openDecisionFile({ file, maxBytes: 4096, daily: false, keep: 2 }, { clock, logger: quiet, counted: (o) => counts[o]++ });
    for (let i = 0; i < 40; i++) {
      out.write(`s${i}`, record);
      // one record at a time, as messages end: rotation happens between them
      await new Promise((r) => setImmediate(r));
    }
    await out.close();
    assert.deepEqual(counts, { written: 40, dropped: 0 });
    const names = fs.readdirSync(dir).filter((n) => !n.startsWith('.'));
    const rotated = names.filter((n) => /^decisions-\d{8}-\d{6}\.\d{3}-\d+\.jsonl\.gz$/.test(n));
    assert.equal(rotated.length, 2, names.join(' '));
    assert.ok(names.includes('decisions.jsonl'));
    for (const name of rotated) {
      const lines = gunzipSync(fs.readFileSync(path.join(dir, name))).toString('utf8').trim().split('\n');
      assert.ok(lines.length >= 3);
      for (const line of lines) {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        assert.deepEqual([parsed.v, parsed.event, parsed.time], [1, 'decision', '2026-11-23T10:00:00.000Z']);
        assert.match(String(parsed.session), /^s\d+$/);
      }
    }
  });

  /** A logger whose lines arrive as 'line' events (msg), to wait for the file's open and rotation. */
  function eventLogger(): { logger: pino.Logger; lines: EventEmitter } {
    const lines = new EventEmitter();
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.emit('line', JSON.parse(l) as { msg: string });
        cb();
      },
    });
    return { logger: pino({ level: 'debug' }, sink), lines };
  }
  const logged = (lines: EventEmitter, msg: string): Promise<Record<string, unknown>> => new Promise((resolve) => {
    const on = (line: Record<string, unknown>): void => {
      if (line.msg !== msg) return;
      lines.off('line', on);
      resolve(line);
    };
    lines.on('line', on);
  });
  const readGz = (file: string): string[] => gunzipSync(fs.readFileSync(file)).toString('utf8').trim().split('\n');

  it('decisions.daily: at midnight UTC the day\'s records are rotated into a gzip file named for midnight; writing goes on in a fresh file', { timeout: 20_000 }, async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-11-23T23:59:59.000Z') });
    const dir = fs.mkdtempSync(path.join(root, 'daily-'));
    const file = path.join(dir, 'decisions.jsonl');
    const { logger, lines } = eventLogger();
    const opened = logged(lines, 'decisions.file open');
    const out = openDecisionFile({ file, maxBytes: 0, daily: true, keep: 5 }, { clock: { now: () => Date.now() }, logger, counted: () => undefined });
    await opened; // the midnight timer is armed once the file is open
    out.write('before-midnight', record);
    const rotated = logged(lines, 'decisions.file rotated');
    const reopened = logged(lines, 'decisions.file open');
    mock.timers.tick(1000); // 00:00:00.000
    const line = await rotated;
    assert.equal(line.rotated, path.join(dir, 'decisions-20261124-000000.000-1.jsonl.gz'));
    await reopened;
    out.write('after-midnight', record);
    await out.close();
    assert.deepEqual(fs.readdirSync(dir).filter((n) => !n.startsWith('.')).sort(), ['decisions-20261124-000000.000-1.jsonl.gz', 'decisions.jsonl']);
    const day = readGz(String(line.rotated)).map((l) => JSON.parse(l) as { session: string; time: string });
    assert.deepEqual(day.map((r) => [r.session, r.time]), [['before-midnight', '2026-11-23T23:59:59.000Z']]);
    const today = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { session: string; time: string });
    assert.deepEqual(today.map((r) => [r.session, r.time]), [['after-midnight', '2026-11-24T00:00:00.000Z']]);
  });

  it('decisions.daily off: a day passes without a rotation (size alone rotates)', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2026-11-23T23:59:59.000Z') });
    const dir = fs.mkdtempSync(path.join(root, 'not-daily-'));
    const { logger, lines } = eventLogger();
    const opened = logged(lines, 'decisions.file open');
    const out = openDecisionFile({ file: path.join(dir, 'd.jsonl'), maxBytes: 4096, daily: false, keep: 5 }, { clock: { now: () => Date.now() }, logger, counted: () => undefined });
    await opened;
    out.write('s1', record);
    mock.timers.tick(25 * 3600 * 1000);
    out.write('s2', record);
    await out.close();
    assert.deepEqual(fs.readdirSync(dir).filter((n) => !n.startsWith('.')), ['d.jsonl']);
    assert.equal(fs.readFileSync(path.join(dir, 'd.jsonl'), 'utf8').trim().split('\n').length, 2);
  });

  it('never queues more than the limit for a slow disk: drops and counts instead', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'drop-'));
    const counts = { written: 0, dropped: 0 };
    const out = openDecisionFile({ file: path.join(dir, 'd.jsonl'), maxBytes: 0, daily: true, keep: 1 }, { clock, logger: quiet, counted: (o) => counts[o]++ });
    const n = Math.ceil((MAX_PENDING_BYTES * 1.5) / JSON.stringify(record).length);
    for (let i = 0; i < n; i++) out.write('s', record); // synchronously: the disk gets no turn
    await out.close();
    assert.ok(counts.dropped > 0 && counts.written > 0, JSON.stringify(counts));
    assert.equal(counts.written + counts.dropped, n);
    assert.equal(fs.readFileSync(path.join(dir, 'd.jsonl'), 'utf8').trim().split('\n').length, counts.written);
  });

  it('a file that fails drops the records that follow, and closing does not wait for it', async () => {
    const blocker = path.join(root, 'a-file');
    fs.writeFileSync(blocker, '');
    const counts = { written: 0, dropped: 0 };
    const out = openDecisionFile({ file: path.join(blocker, 'd.jsonl'), maxBytes: 0, daily: true, keep: 1 }, { clock, logger: quiet, counted: (o) => counts[o]++ });
    out.write('s', record);
    await eventually(() => {
      out.write('s', record);
      return counts.dropped > 0;
    }, 'records dropped after the file failed');
    await out.close();
  });

  it('serve and check-config refuse a folder that cannot be written, and a file that would grow without bound', () => {
    const config = (decisions: object) => configSchema.parse({ decisions });
    assert.deepEqual(checkDecisionsFile(config({})), []);
    assert.deepEqual(checkDecisionsFile(config({ file: path.join(root, 'ok.jsonl') })), []);
    const [missing] = checkDecisionsFile(config({ file: path.join(root, 'no-such-dir', 'd.jsonl') }));
    assert.match(missing?.message ?? '', /^decisions\.file: cannot write decision records to .*no-such-dir\/d\.jsonl: ENOENT/);
    const [folder] = checkDecisionsFile(config({ file: root }), (key) => ({ file: 'postern.yaml', line: 7, column: 9, key }));
    assert.equal(folder?.message, `postern.yaml:7:9: decisions.file: ${root} is a folder: name a file in it, e.g. ${path.join(root, 'decisions.jsonl')}`);
    assert.throws(() => config({ file: 'd.jsonl', maxBytes: 0, daily: false }), /decisions\.file would grow without bound/);
    assert.throws(() => config({ maxBytes: 100 }), /0 \(no size limit\) or at least 4096/);
  });
});
