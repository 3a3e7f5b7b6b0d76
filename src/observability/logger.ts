/** pino root logger. JSON by default; `log.pretty` renders lines for a terminal (make run). */
import pino, { type Logger } from 'pino';

/**
 * Standard output, written asynchronously: a log line costs a string append, and lines written
 * while a write is in flight go out together in the next one (one syscall for many decision
 * lines under load). Nothing waits for a buffer to fill, so a quiet gateway's lines appear at
 * once. pino flushes it synchronously when the process exits (its on-exit hook for
 * `sync: false` destinations), so `process.exit()` loses nothing. One per process: fd 1 is
 * the process's, and two asynchronous writers on it could interleave their batches.
 */
let stdout: pino.DestinationStream | null = null;
function stdoutDestination(): pino.DestinationStream {
  stdout ??= pino.destination({ dest: 1, sync: false });
  return stdout;
}

/**
 * Where a cluster primary passes its workers' output lines (src/cluster/output.ts): the same
 * writer as its own JSON lines, so the two never interleave; pretty lines go to process.stdout
 * as the pretty transport writes them.
 */
export function stdoutWriter(pretty: boolean): (text: string) => void {
  if (pretty) return (text) => void process.stdout.write(text);
  const destination = stdoutDestination();
  return (text) => void destination.write(text);
}

export function createLogger(opts: { level: string; pretty: boolean; destination?: pino.DestinationStream; base?: Record<string, unknown> }): Logger {
  const base = { level: opts.level, base: { service: 'postern', ...opts.base }, timestamp: pino.stdTimeFunctions.isoTime };
  if (opts.destination) return pino(base, opts.destination);
  if (opts.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return pino(base, stdoutDestination());
}
