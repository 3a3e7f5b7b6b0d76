/**
 * Running the real operations tools (promtool, prometheus, systemd-analyze, the postern CLI)
 * from tests: paths of the repository, a command runner, a free loopback port, and polling
 * of outside systems that offer no event to wait for (Prometheus's HTTP API).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
export const DEPLOY = path.join(ROOT, 'deploy');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; a missing binary rejects with the spawn error (ENOENT). */
export function run(command: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 120_000 }); // generous: a busy CI machine runs these tools slowly
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A port free right now on 127.0.0.1 (bind :0, read, close), for tools that cannot bind :0 themselves. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Calls `probe` every `intervalMs` until it returns something other than undefined, and
 * returns that; after `timeoutMs` returns the last attempt's `describe()` as an Error message.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, opts: { timeoutMs: number; intervalMs?: number; what: () => string }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${opts.timeoutMs} ms: ${opts.what()}`);
    await sleep(opts.intervalMs ?? 200);
  }
}
