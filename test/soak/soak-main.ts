/**
 * `make soak`: the fault soak for minutes (SOAK_SECONDS, default 180; SOAK_CLIENTS, default 48),
 * then the floods (flood.ts). Prints the accounting table and the figures; exits 1 when the
 * books do not balance or a flood limit did not hold.
 */
import { runSoak } from './soak.ts';

const seconds = Number(process.env.SOAK_SECONDS ?? '180');
const clients = Number(process.env.SOAK_CLIENTS ?? '48');

const soak = await runSoak({
  seconds, clients, phaseMs: 6_000, calmMs: 3_000, warmMessages: clients * 10, abortRate: 0.01,
  progress: (line) => process.stdout.write(line + '\n'),
});
process.stdout.write('\n' + soak.report.join('\n') + '\n');
process.exitCode = soak.problems.length === 0 ? 0 : 1;
