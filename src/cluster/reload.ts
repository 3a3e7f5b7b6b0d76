/**
 * A reload across workers, all or nothing (DESIGN "Reload is all-or-nothing", for a node):
 * every worker first loads the new set aside (prepare); only when all of them succeeded do all
 * switch (commit); if any failed, or did not answer, or a worker is missing, every one that
 * prepared drops what it loaded (abort) and all keep running the old set.
 */

export interface ReloadTarget {
  readonly name: string;
  prepare(): Promise<unknown>;
  commit(): Promise<unknown>;
  abort(): Promise<unknown>;
}

export type ReloadOutcome = { readonly ok: true } | { readonly ok: false; readonly failures: readonly string[] };

export async function reloadAll(targets: readonly ReloadTarget[], expected: number): Promise<ReloadOutcome> {
  const prepared = await Promise.allSettled(targets.map((t) => t.prepare()));
  const failures = prepared.flatMap((r, i) => (r.status === 'rejected' ? [`${targets[i]!.name}: ${reason(r.reason)}`] : []));
  if (targets.length < expected) failures.push(`${expected - targets.length} worker(s) not running`);
  if (failures.length > 0) {
    await Promise.allSettled(targets.map((t) => t.abort()));
    return { ok: false, failures };
  }
  // A commit only swaps references the prepare built: it cannot fail short of the worker dying,
  // and a worker started after that asks the primary for the config in force.
  await Promise.allSettled(targets.map((t) => t.commit()));
  return { ok: true };
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
