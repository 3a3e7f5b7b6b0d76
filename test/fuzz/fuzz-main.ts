/**
 * `make fuzz`: FUZZ_RUNS inputs (default 1,000,000) over FUZZ_WORKERS concurrent runs (default
 * 64) from FUZZ_SEED (default: the time; printed so a failure can be replayed). Prints the
 * inputs per second every 10 s and a summary; exits 1 on any failure.
 */
import { runFuzz, summary } from './fuzz.ts';

const runs = Number(process.env.FUZZ_RUNS ?? '1000000');
const workers = Number(process.env.FUZZ_WORKERS ?? '64');
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
process.stdout.write(`fuzz: ${runs} inputs, ${workers} workers, seed ${seed} (FUZZ_SEED=${seed} replays)\n`);
const result = await runFuzz({
  runs, workers, seed,
  progress: (stats, ms) => process.stdout.write(`  ${(ms / 1000).toFixed(0)} s: ${stats.inputs} inputs, ${(stats.inputs / (ms / 1000)).toFixed(1)} inputs/s\n`),
});
process.stdout.write(summary(result).join('\n') + '\n');
process.exitCode = result.problems.length === 0 ? 0 : 1;
