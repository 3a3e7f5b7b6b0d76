/**
 * SIGTERM: stop taking connections, tell idle sessions to come back later, let busy ones
 * finish their transaction until the drain deadline, then close the rest. Event-driven: it
 * waits for the session count to reach zero or for the deadline, whichever comes first.
 */
import type { SmtpServers } from '../smtp/server.ts';
import type { Listener } from '../smtp/listener.ts';

/** Open sessions, and a promise for the moment there are none (fed by the adapter's session count). */
export interface SessionCount {
  set(open: number): void;
  readonly open: number;
  whenZero(): Promise<void>;
}

export function sessionCount(onChange?: (open: number) => void): SessionCount {
  let open = 0;
  let waiters: Array<() => void> = [];
  return {
    set(n) {
      open = n;
      onChange?.(n);
      if (n === 0) {
        const w = waiters;
        waiters = [];
        for (const f of w) f();
      }
    },
    get open() {
      return open;
    },
    whenZero() {
      return open === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

export interface DrainTarget {
  readonly servers: SmtpServers;
  readonly listener: Pick<Listener, 'drain'>;
  readonly count: SessionCount;
}

/** Real-time wait; injectable for tests. */
export type Wait = (ms: number) => { promise: Promise<void>; cancel(): void };

export const realWait: Wait = (ms) => {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  return { promise, cancel: () => clearTimeout(timer) };
};

export async function drain(target: DrainTarget, timeoutMs: number, wait: Wait = realWait): Promise<void> {
  target.listener.drain();
  const close = (busyToo: boolean): void => {
    for (const s of [target.servers.plain, target.servers.xclient]) {
      for (const c of s.sessions()) if (busyToo || !c.busy()) target.servers.shutDown(c);
    }
  };
  // Idle sessions are told to go now; busy ones may finish their transaction. A session that
  // finishes its transaction becomes idle: the sweep closes it while it waits for a command.
  close(false);
  const deadline = wait(timeoutMs);
  const sweep = every(IDLE_SWEEP_MS, wait, () => close(false));
  try {
    await Promise.race([target.count.whenZero(), deadline.promise]);
  } finally {
    sweep.stop();
    deadline.cancel();
  }
  close(true);
  // The sessions just closed end their transactions as they go (decision lines, tokens):
  // wait for that, briefly, so that nothing is left unrecorded when the process exits.
  const grace = wait(CLOSE_GRACE_MS);
  try {
    await Promise.race([target.count.whenZero(), grace.promise]);
  } finally {
    grace.cancel();
  }
}

/** Runs `fn` every `ms` on the injected wait (a test moves it by hand), until stopped. */
function every(ms: number, wait: Wait, fn: () => void): { stop(): void } {
  let current: ReturnType<Wait> | null = null;
  let stopped = false;
  void (async () => {
    while (!stopped) {
      current = wait(ms);
      await current.promise;
      if (!stopped) fn();
    }
  })();
  return {
    stop() {
      stopped = true;
      current?.cancel(); // its promise never settles: the loop above is left waiting, and collected
    },
  };
}

/** How often sessions that finished their transaction are looked for while draining. */
const IDLE_SWEEP_MS = 250;

/** How long closed sessions get to finish their bookkeeping after the drain deadline. */
const CLOSE_GRACE_MS = 2_000;
