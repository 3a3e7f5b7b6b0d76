/**
 * `make soak`: the fault soak for minutes (SOAK_SECONDS, default 180; SOAK_CLIENTS, default 48),
 * then the floods (flood.ts); `make flood` runs the floods alone (SOAK_PARTS=floods). Prints
 * the accounting table and the figures; exits 1 when the books do not balance or a flood limit
 * did not hold.
 */
import { runFloods } from './flood.ts';
import { runSoak } from './soak.ts';

const parts = (process.env.SOAK_PARTS ?? 'faults,floods').split(',');
const seconds = Number(process.env.SOAK_SECONDS ?? '180');
const clients = Number(process.env.SOAK_CLIENTS ?? '48');
const print = (line: string): void => void process.stdout.write(line + '\n');
let failed = false;

if (parts.includes('faults')) {
  print(`fault soak: ${seconds} s, ${clients} clients`);
  const soak = await runSoak({ seconds, clients, phaseMs: 6_000, calmMs: 3_000, warmMessages: clients * 10, abortRate: 0.01, progress: print });
  print('\n' + soak.report.join('\n') + '\n');
  failed ||= soak.problems.length > 0;
}
if (parts.includes('floods')) {
  print('floods:');
  const floods = await runFloods(print);
  print('\n' + floods.lines.join('\n'));
  print(floods.problems.length === 0 ? 'RESULT: the limits held\n' : `RESULT: ${floods.problems.length} problem(s):\n  ${floods.problems.join('\n  ')}\n`);
  failed ||= floods.problems.length > 0;
}
process.exitCode = failed ? 1 : 0;
