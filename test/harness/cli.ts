/**
 * The real CLI as an operator runs it (`node src/main.ts …`), in a child process with only the
 * environment the test gives (POSTERN_* of the calling shell would change the verdicts).
 * `runCli` waits for the exit; `serveUntil` starts `serve` and resolves either when it has
 * exited or when it logs "postern listening" (then it is stopped with SIGTERM).
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const MAIN = path.join(ROOT, 'src/main.ts');

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  readonly cwd?: string;
  /** Run as this user (tests running as root use an unprivileged one to meet EACCES). */
  readonly uid?: number;
  readonly gid?: number;
}

function spawnCli(args: readonly string[], env: Record<string, string>, opts: CliOptions) {
  const options: SpawnOptions = {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
  };
  const child = spawn(process.execPath, [MAIN, ...args], options);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, out, exited };
}

export async function runCli(args: readonly string[], env: Record<string, string> = {}, opts: CliOptions = {}): Promise<CliRun> {
  const { out, exited } = spawnCli(args, env, opts);
  const code = await exited;
  return { code, ...out };
}

/**
 * `serve` until it exits or listens. `started` true: it logged "postern listening" and was then
 * stopped with SIGTERM (its drain exit status in `code`).
 */
export async function serveUntil(args: readonly string[], env: Record<string, string>, opts: CliOptions & { timeoutMs?: number } = {}): Promise<CliRun & { started: boolean }> {
  const { child, out, exited } = spawnCli(['serve', ...args], env, opts);
  let started = false;
  const listening = new Promise<void>((resolve) => {
    child.stdout!.on('data', () => {
      if (!started && out.stdout.includes('"msg":"postern listening"')) {
        started = true;
        resolve();
      }
    });
  });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const first = await Promise.race([exited.then(() => 'exited' as const), listening.then(() => 'listening' as const), timedOut]);
  clearTimeout(timer);
  if (first !== 'exited') child.kill(first === 'timeout' ? 'SIGKILL' : 'SIGTERM');
  const code = await exited;
  if (first === 'timeout') throw new Error(`serve neither exited nor listened within ${timeoutMs} ms; stderr: ${out.stderr}`);
  return { code, started, ...out };
}
