/**
 * `make bench-replay`: how fast `postern replay` decides recorded decisions again, and whether
 * its memory stays flat. Writes pino-style logs of 100 000 and 1 000 000 v1 decision records
 * (one other log line per ten records; plain and gzip), then runs the real CLI
 * (`src/main.ts replay --json`) on each under the tightening sample, enforced, and reports wall
 * time, records per second and the child's peak RSS (VmHWM). BENCH_SCALE=0.1 for a quick run.
 * Figures are printed, never asserted (performance is measured here, not tested).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { AuthResult, DmarcPolicy, Facts } from '../../src/core/facts.ts';
import { decisionRecord } from '../../src/observability/decision-record.ts';
import { peakRssBytes } from './proc.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCALE = Number(process.env.BENCH_SCALE ?? '1') > 0 ? Number(process.env.BENCH_SCALE ?? '1') : 1;
const SIZES = [100_000, 1_000_000].map((n) => Math.max(1000, Math.round(n * SCALE)));

/** A deterministic pseudo-random sequence, so every run replays the same traffic. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function* records(n: number): Generator<string> {
  const r = rng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const results: AuthResult[] = ['pass', 'pass', 'pass', 'fail', 'none', 'softfail'];
  const policies: Array<DmarcPolicy | null> = ['reject', 'quarantine', 'none', 'none', null];
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) yield JSON.stringify({ level: 30, time: new Date(1_795_000_000_000 + i).toISOString(), service: 'postern', msg: 'recipient refused', rcpt: `u${i}@example.net` });
    const domain = `d${Math.floor(r() * 10_000)}.example`;
    const dmarc = pick(results);
    const facts: Facts = {
      client: { ip: `198.51.${Math.floor(r() * 200)}.${Math.floor(r() * 250)}`, ptr: null, helo: `mx.${domain}`, tls: r() < 0.8, tier: 'neutral' },
      envelope: { sender: `bounce@${domain}`, senderDomain: domain, recipients: ['user@example.net'] },
      spf: { result: pick(results), domain, identity: 'mailfrom', reason: 'bench' },
      message: { fromDomain: domain, messageId: `<${i}@${domain}>`, size: 4000 + Math.floor(r() * 20_000), firstSeenSeconds: 0 },
      dkim: [{ result: pick(results), domain, selector: 's1', algorithm: 'rsa-sha256', aligned: true, reason: '' }],
      arc: { result: 'none', reason: '' },
      dmarc: { result: dmarc, domain, policy: pick(policies), spfAligned: false, dkimAligned: dmarc === 'pass', reason: '' },
    };
    const record = decisionRecord({ facts, stage: 'data', decision: { enforced: { action: 'accept', rule: '', reason: 'default' } }, rule: '', action: 'accept', reason: 'default', ms: { total: 40 } });
    yield JSON.stringify({ level: 30, time: new Date(1_795_000_000_000 + i).toISOString(), service: 'postern', session: `s${i.toString(36)}`, ...record, msg: 'decision' });
  }
}

async function writeLog(file: string, n: number, gzip: boolean): Promise<void> {
  const lines = Readable.from((function* () {
    let batch: string[] = [];
    for (const line of records(n)) {
      batch.push(line);
      if (batch.length === 1000) {
        yield batch.join('\n') + '\n';
        batch = [];
      }
    }
    if (batch.length) yield batch.join('\n') + '\n';
  })());
  if (gzip) await pipeline(lines, createGzip({ level: 6 }), fs.createWriteStream(file));
  else await pipeline(lines, fs.createWriteStream(file));
}

async function runReplay(policies: string, file: string): Promise<{ seconds: number; peakRss: number; redecided: number; changed: number }> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), 'replay', '--policies', policies, '--json', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let peakRss = 0;
  const poll = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, peakRssBytes(child.pid!));
    } catch {
      // the child is gone: the last reading stands
    }
  }, 50);
  const [code] = await once(child, 'close') as [number | null];
  clearInterval(poll);
  if (code !== 0) throw new Error(`replay exited ${code}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const totals = (JSON.parse(out) as { totals: { redecided: number; changed: number } }).totals;
  return { seconds, peakRss, ...totals };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-bench-replay-'));
  try {
    const policies = path.join(dir, 'policies');
    fs.cpSync(path.join(ROOT, 'policies'), policies, { recursive: true });
    const sample = fs.readFileSync(path.join(policies, '60-tighten-weak-domains.yaml.sample'), 'utf8');
    fs.writeFileSync(path.join(policies, '60-tighten-weak-domains.yaml'), sample.replace(/^mode: monitor$/m, 'mode: enforce'));
    fs.writeFileSync(path.join(policies, 'lists/tighten-reject.txt'), Array.from({ length: 500 }, (_, i) => `d${i * 7}.example`).join('\n') + '\n');
    console.log(`postern replay benchmark (node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'})`);
    console.log('records     input          size MB   seconds   records/s   peak RSS MB   changed');
    for (const n of SIZES) {
      for (const gzip of [false, true]) {
        const file = path.join(dir, `postern-${n}.log${gzip ? '.gz' : ''}`);
        await writeLog(file, n, gzip);
        const size = fs.statSync(file).size / 1e6;
        const r = await runReplay(policies, file);
        console.log([
          String(r.redecided).padStart(9), (gzip ? 'pino log, gzip' : 'pino log').padEnd(14), size.toFixed(1).padStart(8),
          r.seconds.toFixed(1).padStart(9), Math.round(r.redecided / r.seconds).toLocaleString('en-US').padStart(11),
          (r.peakRss / 1e6).toFixed(0).padStart(13), String(r.changed).padStart(9),
        ].join('   '));
        fs.rmSync(file);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
