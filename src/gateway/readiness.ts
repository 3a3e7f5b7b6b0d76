/**
 * /readyz: can this node take mail? The policies are loaded, the backend answers, and the
 * shared store answers when one is configured. A Redis outage under failMode 'open' keeps the
 * node ready but degraded: limits fall back to per node, and taking every node out of the
 * balancer at once would stop all mail. Under failMode 'closed' the node cannot take mail.
 */
import type { ReadinessCheck } from '../observability/http.ts';
import type { Backend } from '../relay/backend.ts';
import type { RateStore } from '../reputation/types.ts';

export interface ReadinessSources {
  /** Rules in the active set (a loaded set can have none: a pass-through policy). */
  readonly rules: () => number | null;
  readonly backend: Pick<Backend, 'probe'>;
  /** The shared store and its fail mode, or null when none is configured (memory store). */
  readonly sharedStore: { readonly store: Pick<RateStore, 'health'>; readonly failMode: () => 'open' | 'closed' } | null;
}

export function readinessChecks(src: ReadinessSources): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [
    { name: 'policies', check: () => Promise.resolve(src.rules() !== null ? { ok: true as const } : { ok: false as const, error: 'no policy loaded' }) },
    { name: 'backend', check: () => src.backend.probe() },
  ];
  const shared = src.sharedStore;
  if (shared) {
    checks.push({
      name: 'redis',
      check: () => {
        const health = shared.store.health();
        if (health.ok || shared.failMode() === 'closed') return Promise.resolve(health);
        return Promise.resolve({ ok: true as const, degraded: `${health.error} (failMode open: limits per node)` });
      },
    });
  }
  return checks;
}
