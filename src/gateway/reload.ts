/**
 * SIGHUP: the configuration file, the policy folder, the lists and the TLS files are loaded
 * aside, all or nothing, then swapped together; on any error the running ones stay (logged,
 * counted, thrown). Keys that need a restart keep their running values and are named
 * (config/reload.ts). Reloads run one at a time, in signal order: a later SIGHUP never loses
 * to an earlier, slower one.
 *
 * A reload is two steps so that a cluster primary can apply one to every worker or to none
 * (src/cluster): prepare (load aside; a failure changes nothing) and commit (swap).
 *
 * `readConfig` makes the checks of check-config that need no port (startup/preflight.ts
 * configProblems: domains, listeners, Redis, decisions.file, reporting) where the file's
 * line numbers are known; prepare then loads the files the configuration names.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { configChange } from '../config/reload.ts';
import { ConfigErrors } from '../core/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { RuleSet } from '../policy/types.ts';
import type { Lists } from '../reputation/lists.ts';
import type { TlsCredentials } from '../tls/credentials.ts';

export interface ReloadSteps {
  /** The configuration in force. */
  running(): Config;
  /** Reads the configuration again (the same file and environment as at start), checked as at start. */
  readConfig(): Config;
  loadPolicies(folder: string): Promise<RuleSet>;
  loadLists(lists: Config['lists']): Lists;
  /**
   * The certificate files at the running paths (tls.* paths need a restart): a renewal is
   * picked up; a broken one fails the whole reload and the old certificate stays.
   */
  loadTls(config: Config): TlsCredentials | null;
  /** Swaps everything in at once. */
  apply(next: { config: Config; ruleSet: RuleSet; lists: Lists; tls: TlsCredentials | null }): void;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export interface Reloader {
  /** Reads the configuration again and reloads: prepare, then commit. */
  reload(): Promise<void>;
  /**
   * Loads `next` and what it names aside (a failure is thrown, logged and counted as by
   * reload()); nothing changes until commit(). `announce: false` for a cluster worker: its
   * primary logs the reload once for the node.
   */
  prepare(next: Config, opts?: { announce?: boolean }): Promise<{ commit(): void }>;
}

export function createReloader(steps: ReloadSteps): Reloader {
  let queue: Promise<unknown> = Promise.resolve();
  const prepareNow = async (read: () => Config, announce: boolean): Promise<{ commit(): void }> => {
    try {
      const change = configChange(steps.running(), read());
      const next = change.effective;
      const ruleSet = await steps.loadPolicies(next.policies);
      const lists = steps.loadLists(next.lists);
      const tls = steps.loadTls(next);
      return {
        commit: () => {
          steps.apply({ config: next, ruleSet, lists, tls });
          steps.metrics.policyReloads.inc({ outcome: 'ok' });
          steps.metrics.policyRules.set(ruleSet.rules.length);
          if (!announce) return;
          steps.logger.info({ rules: ruleSet.rules.length, applied: change.applied }, 'configuration and policies reloaded');
          if (change.needsRestart.length > 0) {
            steps.logger.warn({ keys: change.needsRestart }, 'these settings changed but take effect only after a restart; their running values are kept');
          }
        },
      };
    } catch (err) {
      steps.metrics.policyReloads.inc({ outcome: 'failed' });
      steps.logger.error({ err: err instanceof ConfigErrors ? err.message : err }, 'reload failed (policy, list or config), keeping the previous one');
      throw err;
    }
  };
  const enqueue = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.catch(() => undefined).then(work);
    queue = next;
    return next;
  };
  return {
    reload: () => enqueue(async () => (await prepareNow(() => steps.readConfig(), true)).commit()),
    prepare: (next, opts = {}) => enqueue(() => prepareNow(() => next, opts.announce ?? true)),
  };
}
