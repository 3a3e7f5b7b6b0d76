/**
 * Node.js options every Postern process runs with: bin/postern, the systemd unit and the
 * Docker image pass them on the command line, and a cluster primary passes them to its workers
 * (test/ops/runtime-flags.test.ts checks that those places agree).
 *
 * --max-semi-space-size=16: V8 (Node 24) lets the young generation grow to 2 × 64 MB under
 * load, which is most of the gateway's peak RSS above its idle size; at 16 MB the bench shows
 * the same CPU per message and about 90 MB less peak RSS per process (4 KB messages, C=200).
 * The flag only works on the command line (v8.setFlagsFromString comes too late for it).
 */
export const RUNTIME_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

/** `execArgv` with each runtime flag the operator did not set already (theirs wins). */
export function withRuntimeFlags(execArgv: readonly string[]): string[] {
  const name = (flag: string): string => flag.split('=')[0]!.replace(/_/g, '-');
  const given = new Set(execArgv.map(name));
  return [...execArgv, ...RUNTIME_FLAGS.filter((f) => !given.has(name(f)))];
}
