/**
 * `make fuzz`: FUZZ_RUNS inputs (default 1,000,000) from FUZZ_SEED (default: the time; printed
 * so a failure can be replayed), shared by FUZZ_PROCESSES processes (default: one per core),
 * each with its own gateway, DNS server and backend and FUZZ_WORKERS concurrent runs (default
 * 64). The gateway runs in the fuzzing process (a crash is a crash of the run), so one process
 * uses one core; shards are what let a million inputs use the machine.
 * Shard k takes the seeds from FUZZ_SEED + k × FUZZ_WORKERS on, so a run is replayed by the
 * same FUZZ_SEED, FUZZ_PROCESSES and FUZZ_WORKERS; fast-check's report of a failure names its
 * own seed and path as well. Prints the inputs per second every 10 s and a summary; exits 1 on
 * any failure.
 */
import { fork } from 'node:child_process';
import os from 'node:os';
import { runFuzz, summary, type FuzzResult } from './fuzz.ts';
import type { FuzzStats } from './runner.ts';

type ShardMessage = { kind: 'progress'; stats: FuzzStats } | { kind: 'done'; result: FuzzResult };

const runs = Number(process.env.FUZZ_RUNS ?? '1000000');
const workers = Number(process.env.FUZZ_WORKERS ?? '64');
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const shard = process.env.FUZZ_SHARD; // set in the children only

if (shard !== undefined) {
  // A child: one shard, reporting to the parent over IPC.
  const result = await runFuzz({ runs, workers, seed, progress: (stats) => void process.send!({ kind: 'progress', stats } satisfies ShardMessage), progressEveryMs: 2_000 });
  // disconnect only once the result is written, or the parent may never see it
  process.send!({ kind: 'done', result } satisfies ShardMessage, () => process.disconnect());
} else {
  const processes = Math.max(1, Math.min(Number(process.env.FUZZ_PROCESSES ?? os.availableParallelism()), Math.ceil(runs / workers)));
  process.stdout.write(`fuzz: ${runs} inputs, ${processes} process(es) × ${workers} workers, seed ${seed} (FUZZ_SEED=${seed} FUZZ_PROCESSES=${processes} FUZZ_WORKERS=${workers} replays)\n`);
  const started = Date.now();
  const latest: FuzzStats[] = [];
  const ticker = setInterval(() => {
    const inputs = latest.reduce((n, s) => n + (s?.inputs ?? 0), 0);
    const s = (Date.now() - started) / 1000;
    process.stdout.write(`  ${s.toFixed(0)} s: ${inputs} inputs, ${(inputs / s).toFixed(1)} inputs/s\n`);
  }, 10_000);
  const share = (k: number): number => Math.floor(runs / processes) + (k < runs % processes ? 1 : 0);
  const results = await Promise.all(Array.from({ length: processes }, (_, k) => new Promise<FuzzResult>((resolve) => {
    const child = fork(import.meta.filename, {
      env: { ...process.env, FUZZ_SHARD: String(k), FUZZ_RUNS: String(share(k)), FUZZ_WORKERS: String(workers), FUZZ_SEED: String(seed + k * workers) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let done: FuzzResult | null = null;
    child.on('message', (m: ShardMessage) => {
      if (m.kind === 'progress') latest[k] = m.stats;
      else done = m.result;
    });
    // A shard that dies (a crash of its gateway) is a failure of the run, reported as such.
    child.on('exit', (code, signal) => resolve(done ?? {
      inputs: latest[k]?.inputs ?? 0, elapsedMs: Date.now() - started,
      stats: latest[k] ?? { inputs: 0, byMode: {}, delivered: 0, forgedRefused: 0, replyClasses: {} },
      problems: [`shard ${k} (FUZZ_SEED=${seed + k * workers}) ended without a result: exit ${code ?? signal}`],
    }));
  })));
  clearInterval(ticker);
  const result = merge(results, Date.now() - started);
  process.stdout.write(summary(result).join('\n') + '\n');
  process.exitCode = result.problems.length === 0 ? 0 : 1;
}

function merge(results: FuzzResult[], elapsedMs: number): FuzzResult {
  const add = (into: Record<string, number>, from: Record<string, number>): void => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  const stats: FuzzStats = { inputs: 0, byMode: {}, delivered: 0, forgedRefused: 0, replyClasses: {} };
  for (const r of results) {
    stats.inputs += r.stats.inputs;
    stats.delivered += r.stats.delivered;
    stats.forgedRefused += r.stats.forgedRefused;
    add(stats.byMode, r.stats.byMode);
    add(stats.replyClasses, r.stats.replyClasses);
  }
  return { inputs: stats.inputs, elapsedMs, stats, problems: results.flatMap((r) => r.problems) };
}
