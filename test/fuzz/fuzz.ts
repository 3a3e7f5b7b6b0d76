/**
 * The fuzz driver: `workers` fast-check runs side by side (smtp-server pauses 100 ms before
 * each greeting, so inputs are run concurrently), each seeded from `seed`, against one
 * gateway. A failing input is shrunk by fast-check and reported with its seed and path.
 */
import fc from 'fast-check';
import { fuzzInput } from './arbitraries.ts';
import { startFuzzWorld, type FuzzStats } from './runner.ts';

export interface FuzzResult {
  readonly inputs: number;
  readonly elapsedMs: number;
  readonly stats: FuzzStats;
  /** Failures of the properties (fast-check's reports) and of the final checks. */
  readonly problems: string[];
}

export async function runFuzz(opts: { runs: number; workers: number; seed: number; progress?: (stats: FuzzStats, elapsedMs: number) => void; progressEveryMs?: number }): Promise<FuzzResult> {
  const world = await startFuzzWorld();
  const started = Date.now();
  const ticker = opts.progress ? setInterval(() => opts.progress!(world.stats, Date.now() - started), opts.progressEveryMs ?? 10_000) : null;
  const problems: string[] = [];
  try {
    const property = fc.asyncProperty(fuzzInput, async (input) => {
      const found = await world.run(input);
      if (found.length > 0) throw new Error(found.join('\n'));
    });
    const share = (k: number): number => Math.floor(opts.runs / opts.workers) + (k < opts.runs % opts.workers ? 1 : 0);
    const outcomes = await Promise.allSettled(Array.from({ length: opts.workers }, (_, k) =>
      fc.assert(property, { numRuns: share(k), seed: opts.seed + k, interruptAfterTimeLimit: undefined })));
    for (const o of outcomes) {
      if (o.status !== 'rejected') continue;
      const err = o.reason as Error;
      // fast-check puts the property's own error in `cause`, the counterexample in the message
      problems.push(`${err.message.split('\n').filter((l) => !l.startsWith('Hint:') && l.trim()).join('\n')}\n  → ${err.cause instanceof Error ? err.cause.message.replace(/\n/g, '\n  → ') : ''}`);
    }
    problems.push(...await world.finish());
  } finally {
    if (ticker) clearInterval(ticker);
    await world.close();
  }
  return { inputs: world.stats.inputs, elapsedMs: Date.now() - started, stats: world.stats, problems };
}

export function summary(r: FuzzResult): string[] {
  const s = r.stats;
  return [
    `Fuzz: ${r.inputs} inputs in ${(r.elapsedMs / 1000).toFixed(1)} s = ${(r.inputs / (r.elapsedMs / 1000)).toFixed(1)} inputs/s`,
    `  inputs by kind: ${Object.entries(s.byMode).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `  replies by class: ${Object.entries(s.replyClasses).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `  messages delivered (each matched to its 250): ${s.delivered}; refused with 5xx as they must be (forged p=reject From, no From, leading whitespace): ${s.forgedRefused}`,
    r.problems.length === 0 ? '  RESULT: no crash, no hang, no relaying, no 2xx for a forged From, a missing From or a leading-whitespace header, nothing at the backend without a 250, no bare line ending relayed' : `  RESULT: ${r.problems.length} problem(s):\n${r.problems.join('\n')}`,
  ];
}
