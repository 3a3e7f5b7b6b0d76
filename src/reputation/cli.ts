/**
 * `postern reputation show <ip|cidr|domain>` and `postern reputation reset <…>`: given a
 * store, produce the text an operator reads. main.ts parses arguments and prints.
 *
 *   $ postern reputation show 203.0.113.7
 *   ip:203.0.113.7   key postern:rep:{ip:203.0.113.7}
 *     score    12.50  samples 7  updated 2025-01-02T03:04:05.000Z
 *     tier     good
 *     buckets  ip-messages 180.0/200  ip-recipients 499.0/500
 *   net:203.0.113.0/24 …
 */
import type { Tier } from '../core/facts.ts';
import type { ReputationConfig } from './config.ts';
import { DEFAULT_KEY_PREFIX, netSubject, parseSubject, scoreKey, subjectText } from './keys.ts';
import { tierOf } from './scores.ts';
import type { RateStore, Subject } from './types.ts';

export interface CliOptions {
  readonly now: number;
  readonly reputation: Pick<ReputationConfig, 'thresholds' | 'minSamples' | 'networkBitsV4' | 'networkBitsV6'>;
  readonly keyPrefix?: string;
}

/** An IP also shows its network (its tier is the worse of the two). */
function subjectsFor(target: string, opts: CliOptions): Subject[] {
  const subject = parseSubject(target);
  if (subject.kind !== 'ip') return [subject];
  return [subject, netSubject(subject.id, opts.reputation.networkBitsV4, opts.reputation.networkBitsV6)];
}

const fmt = (n: number, digits = 2): string => n.toFixed(digits);

export async function reputationShow(store: RateStore, target: string, opts: CliOptions): Promise<string> {
  const lines: string[] = [];
  for (const subject of subjectsFor(target, opts)) {
    const { score, buckets } = await store.inspect(subject, opts.now);
    const tier: Tier = tierOf(score, opts.reputation.thresholds, opts.reputation.minSamples);
    const counts = score.samples >= opts.reputation.minSamples ? '' : ` (fewer than ${opts.reputation.minSamples} samples: counts as neutral)`;
    lines.push(`${subjectText(subject)}   key ${scoreKey(opts.keyPrefix ?? DEFAULT_KEY_PREFIX, subject)}`);
    lines.push(`  score    ${fmt(score.score)}  samples ${score.samples}  updated ${score.updatedAt > 0 ? new Date(score.updatedAt).toISOString() : 'never'}`);
    lines.push(`  tier     ${tier}${counts}`);
    lines.push(`  buckets  ${buckets.length === 0
      ? 'all full'
      : buckets.map((b) => `${b.limiter} ${fmt(b.tokens, 1)}${b.burst !== undefined ? `/${fmt(b.burst, 0)}` : ''}`).join('  ')}`);
  }
  return lines.join('\n') + '\n';
}

export async function reputationReset(store: RateStore, target: string): Promise<string> {
  // Only what was named: resetting an address leaves its network's history alone.
  const subject = parseSubject(target);
  const n = await store.reset(subject);
  return `${subjectText(subject)}: ${n} key${n === 1 ? '' : 's'} deleted\n`;
}
