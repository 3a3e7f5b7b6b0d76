/**
 * What `make bench` measures, as named points. A point's name is
 * `<scenario>/<size>/<target>/c<concurrency>-<mode>`; arguments to the bench select points by
 * regular expression (`node test/bench/bench.ts workers 'grid/4kb/.*c200'`).
 *
 * Every gateway runs the real CLI in a child process with the bench's config (rate limits
 * exercised but never binding, log level warn) plus the target's keys. The grid and the store
 * comparison run one process (`workers: 1`), so their CPU per message compares with earlier
 * single-process figures; the workers scenario compares 1 and 2.
 */
import type { ConfigInput } from '../../src/config/schema.ts';
import type { PointSpec } from './load.ts';

export type SizeName = '4kb' | '100kb';
export const SIZES: ReadonlyArray<{ name: SizeName; bytes: number }> = [{ name: '4kb', bytes: 4 * 1024 }, { name: '100kb', bytes: 100 * 1024 }];

/** How a gateway target is started; `direct` is the sink alone (no gateway). */
export type TargetSpec =
  | { readonly kind: 'direct' }
  | { readonly kind: 'gateway'; readonly config: Partial<ConfigInput>; readonly redis?: boolean };

export interface PointDef {
  readonly name: string;
  readonly size: SizeName;
  readonly target: string;
  readonly spec: PointSpec;
  /** `flood`: large uploads alongside small messages (flood.ts), instead of the plain load. */
  readonly kind: 'load' | 'flood';
}

export interface ScenarioDef {
  readonly name: string;
  readonly title: string;
  readonly targets: Readonly<Record<string, TargetSpec>>;
  readonly points: readonly PointDef[];
}

const SCALE = Number(process.env.BENCH_SCALE ?? '1') > 0 ? Number(process.env.BENCH_SCALE ?? '1') : 1;

export function spec(concurrency: number, mode: PointSpec['mode'], seconds: number, maxMessages: number): PointSpec {
  return { concurrency, mode, durationMs: seconds * 1000 * SCALE, maxMessages, messagesPerConnection: 20 };
}

/** Before each target's first point: connections, JIT and caches warm. */
export const WARM_UP = spec(10, 'fresh', 1.5, 500);

const ONE: Partial<ConfigInput> = { workers: 1 };
/** Collection only (nothing is sent during a bench): the sender domain publishes rua= (mail.ts). */
const DMARC_REPORTS: ConfigInput['reports'] = { dmarc: { enabled: true, schedule: false, orgName: 'Bench', email: 'dmarc@postern.bench', stateDir: 'state' } };

function points(scenario: string, size: SizeName, targets: readonly string[], specs: readonly PointSpec[], kind: PointDef['kind'] = 'load'): PointDef[] {
  // Targets alternate within a point, so slow drift of the machine hits both alike.
  return specs.flatMap((s) => targets.map((target) => ({
    name: `${scenario}/${size}/${target}/c${s.concurrency}-${s.mode}`, size, target, spec: s, kind,
  })));
}

const GRID_SPECS = [
  spec(1, 'fresh', 4, 200), spec(10, 'fresh', 5, 2_000), spec(50, 'fresh', 6, 10_000),
  spec(200, 'fresh', 8, 20_000), spec(50, 'reuse', 8, 40_000), spec(200, 'reuse', 8, 40_000),
];

export const SCENARIOS: readonly ScenarioDef[] = [
  {
    name: 'grid',
    title: 'one gateway process against the sink alone, fresh connections and reused ones',
    targets: { gateway: { kind: 'gateway', config: ONE }, direct: { kind: 'direct' } },
    points: SIZES.flatMap((s) => points('grid', s.name, ['gateway', 'direct'], GRID_SPECS)),
  },
  {
    name: 'store',
    title: 'rate/reputation store: memory vs Redis (one process)',
    targets: { memory: { kind: 'gateway', config: ONE }, redis: { kind: 'gateway', config: ONE, redis: true } },
    points: points('store', '4kb', ['memory', 'redis'], [spec(50, 'fresh', 6, 10_000), spec(50, 'reuse', 8, 40_000)]),
  },
  {
    name: 'dmarc',
    title: 'DMARC aggregate report collection off vs on (local store; Redis)',
    targets: {
      off: { kind: 'gateway', config: ONE },
      on: { kind: 'gateway', config: { ...ONE, reports: DMARC_REPORTS } },
      'redis-off': { kind: 'gateway', config: ONE, redis: true },
      'redis-on': { kind: 'gateway', config: { ...ONE, reports: DMARC_REPORTS }, redis: true },
    },
    points: points('dmarc', '4kb', ['off', 'on', 'redis-off', 'redis-on'], [spec(50, 'reuse', 8, 40_000)]),
  },
  {
    name: 'workers',
    title: 'one worker vs two (node:cluster, memory store held by the primary)',
    targets: { 'workers-1': { kind: 'gateway', config: ONE }, 'workers-2': { kind: 'gateway', config: { workers: 2 } } },
    points: points('workers', '4kb', ['workers-1', 'workers-2'], [spec(200, 'reuse', 8, 40_000), spec(200, 'fresh', 8, 20_000)]),
  },
  {
    name: 'greeting',
    title: 'greeting pause (limits.greetingDelayMs) 100 ms vs 0, fresh connections',
    targets: {
      'delay-100': { kind: 'gateway', config: { workers: 1, limits: { greetingDelayMs: 100 } } },
      'delay-0': { kind: 'gateway', config: { workers: 1, limits: { greetingDelayMs: 0 } } },
    },
    points: points('greeting', '4kb', ['delay-100', 'delay-0'], [spec(10, 'fresh', 5, 2_000), spec(200, 'fresh', 8, 20_000)]),
  },
  {
    name: 'flood',
    title: 'a flood of large uploads alongside small messages (message bytes in flight)',
    targets: { gateway: { kind: 'gateway', config: ONE } },
    points: points('flood', '4kb', ['gateway'], [spec(10, 'fresh', 15, 5_000)], 'flood'),
  },
];

/** The points selected by the arguments (regular expressions on the name; none = all). */
export function selectPoints(patterns: readonly string[]): Array<{ scenario: ScenarioDef; points: PointDef[] }> {
  const res = patterns.map((p) => new RegExp(p));
  const selected = (p: PointDef): boolean => res.length === 0 || res.some((re) => re.test(p.name));
  return SCENARIOS
    .map((scenario) => ({ scenario, points: scenario.points.filter(selected) }))
    .filter((s) => s.points.length > 0);
}
