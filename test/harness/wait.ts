/**
 * Waiting on a state the test cannot get an event for (a gauge, a count kept by the gateway):
 * checks on every turn of the event loop until it holds, with a deadline generous enough for
 * a busy machine. The deadline is a failure, never a pass.
 */
import type { EventEmitter } from 'node:events';

export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * The next `event` of `emitter`, with a generous deadline. Unlike events.once, an 'error'
 * emitted meanwhile does not reject: a reconnecting client (ioredis) reports every failed
 * attempt as 'error' on its way to 'ready', and a dying connection may say 'error' before
 * 'close'. The emitter must have an 'error' listener of its own (ours are the stores').
 */
export function nextEvent(emitter: EventEmitter, event: string, timeoutMs = 20_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, done);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    function done(...args: unknown[]): void {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, done);
  });
}
