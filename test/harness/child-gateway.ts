/**
 * The real CLI as a child process, `node src/main.ts serve`, configured only through POSTERN_*
 * environment variables as an operator would, on 127.0.0.1 port 0. Its JSON log lines (stdout)
 * are parsed so tests can wait for an event ("postern listening", "draining") instead of
 * sleeping; the bound ports are read from the "postern listening" line.
 *
 * Workers: `POSTERN_WORKERS` as the test sets it, else POSTERN_TEST_WORKERS from the calling
 * shell (`POSTERN_TEST_WORKERS=2 make test` runs every process-level test against a primary and
 * two workers), else 1. With workers, each worker logs its own lines (with a `worker` field)
 * and the primary logs the node's ("postern listening", "draining", reloads).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
const ROOT = path.resolve(import.meta.dirname, '../..');

export type LogLine = Record<string, unknown> & { msg?: string };

export interface ChildGateway {
  readonly pid: number;
  readonly smtpPort: number;
  readonly httpPort: number;
  readonly logs: LogLine[];
  /** Resolves with the first log line (already written or future) matching `test`. */
  waitForLog(test: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  signal(name: NodeJS.Signals): void;
  /** Exit code, once the process has exited. */
  readonly exited: Promise<number | null>;
  /** SIGKILL if still running (test clean-up). */
  kill(): Promise<void>;
}

export async function startChildGateway(env: Record<string, string>): Promise<ChildGateway> {
  // POSTERN_* variables of the calling shell would override ours: pass only PATH and our own.
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'src/main.ts'), 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', POSTERN_LOG_LEVEL: 'info', POSTERN_WORKERS: process.env.POSTERN_TEST_WORKERS ?? '1', ...env },
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.trim()) logs.push(JSON.parse(line) as LogLine);
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => {
    resolve(code);
    for (const w of [...waiters]) w();
  }));
  let alive = true;
  void exited.then(() => (alive = false));

  // generous: a busy machine may take long to start a Node process and load the TypeScript
  const waitForLog = (test: (line: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> => new Promise((resolve, reject) => {
    const check = (): void => {
      const found = logs.find(test);
      if (found) {
        done();
        resolve(found);
      } else if (!alive) {
        done();
        reject(new Error(`gateway exited; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no such log line within ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });

  const kill = async (): Promise<void> => {
    if (alive) child.kill('SIGKILL');
    await exited;
  };
  try {
    // The node's line: a worker's (with a `worker` field) has no HTTP port.
    const listening = await waitForLog((l) => l.msg === 'postern listening' && l.worker === undefined, 30_000);
    const smtp = listening.smtp as Array<{ port: number }>;
    return {
      pid: child.pid!,
      smtpPort: smtp[0]!.port,
      httpPort: listening.http as number,
      logs,
      waitForLog,
      signal: (name) => child.kill(name),
      exited,
      kill,
    };
  } catch (err) {
    await kill();
    throw err;
  }
}
