/**
 * The soak's fault schedule: phases that break one part of the world for a while and then put
 * it right, separated by calm spells, cycling until the run's deadline. Each phase is what
 * production sees: the backend crashing and coming back, hanging, answering 4xx/5xx at every
 * step, dropping the connection in the middle of a message; Redis SIGKILLed (restarted empty)
 * and SIGSTOPped; DNS timing out and answering garbage.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DnsTestServer } from '../harness/dns-server.ts';
import type { RedisProcess } from '../harness/redis.ts';
import { CALM, type Fault, type FaultPlan, type SoakBackend, type Step } from './backend.ts';
import type { SoakMail } from './messages.ts';

export interface World {
  readonly backend: SoakBackend;
  readonly redis: RedisProcess;
  readonly dns: DnsTestServer;
  readonly mail: SoakMail;
}

export interface Phase {
  readonly name: string;
  start(w: World): Promise<void> | void;
  stop(w: World): Promise<void> | void;
}

/** Each step fails with probability `p`, the way chosen among `faults` (and per step overrides). */
function randomPlan(p: number, faults: readonly Fault[], perStep: Partial<Record<Step, number>> = {}): FaultPlan {
  return (step) => (Math.random() < (perStep[step] ?? p) ? faults[Math.floor(Math.random() * faults.length)]! : 'ok');
}

const backendPlan = (name: string, plan: FaultPlan): Phase => ({
  name,
  start: (w) => void (w.backend.plan = plan),
  stop: (w) => void (w.backend.plan = CALM),
});

const dnsPhase = (name: string, fault: 'TIMEOUT' | 'GARBAGE'): Phase => ({
  name,
  start: (w) => w.dns.setZone(w.mail.faultyZone(fault)),
  stop: (w) => w.dns.setZone(w.mail.zone()),
});

export const PHASES: readonly Phase[] = [
  backendPlan('backend answers 4xx/5xx at every step', randomPlan(0.15, ['tempfail', 'reject'], { body: 0 })),
  { name: 'backend killed, then restarted', start: (w) => w.backend.kill(), stop: (w) => w.backend.restart() },
  backendPlan('backend hangs', randomPlan(0.08, ['hang'], { body: 0 })),
  backendPlan('backend drops connections (mid-DATA mostly)', randomPlan(0.04, ['drop'], { body: 0.25, dot: 0.1 })),
  { name: 'Redis SIGKILLed, then restarted empty', start: (w) => w.redis.kill(), stop: (w) => w.redis.restart() },
  { name: 'Redis SIGSTOPped, then SIGCONT', start: (w) => w.redis.pause(), stop: (w) => w.redis.resume() },
  dnsPhase('DNS times out', 'TIMEOUT'),
  dnsPhase('DNS answers garbage', 'GARBAGE'),
  {
    name: 'all at once: flaky backend, garbage DNS, Redis stopped',
    start: (w) => {
      w.backend.plan = randomPlan(0.05, ['tempfail', 'reject', 'hang', 'drop'], { body: 0.05 });
      w.dns.setZone({ ...w.mail.zone(), ...Object.fromEntries(Object.entries(w.mail.faultyZone('GARBAGE')).filter((_, i) => i % 2 === 0)) });
      w.redis.pause();
    },
    stop: (w) => {
      w.backend.plan = CALM;
      w.dns.setZone(w.mail.zone());
      w.redis.resume();
    },
  },
];

export interface ScheduleResult {
  /** Phase name → times it ran. */
  readonly ran: Map<string, number>;
}

/**
 * Runs the phases in order, cycling, each for `phaseMs` followed by `calmMs` of calm, until
 * `until()` says stop; the world is always left calm. A timed schedule is the scenario itself
 * (faults last a while, as in production), not a wait for a result: nothing is asserted on time.
 */
export async function runSchedule(w: World, opts: { phaseMs: number; calmMs: number; until: () => boolean; onPhase?: (name: string) => void }): Promise<ScheduleResult> {
  const ran = new Map<string, number>();
  for (let i = 0; !opts.until(); i++) {
    const phase = PHASES[i % PHASES.length]!;
    opts.onPhase?.(phase.name);
    await phase.start(w);
    ran.set(phase.name, (ran.get(phase.name) ?? 0) + 1);
    try {
      await sleep(opts.phaseMs);
    } finally {
      await phase.stop(w);
    }
    await sleep(opts.calmMs);
  }
  return { ran };
}
