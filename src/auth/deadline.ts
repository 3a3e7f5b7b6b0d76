import type { DNSResolver } from 'mailauth';

/**
 * A time budget for the DNS work of one check (SPF at MAIL, DKIM + ARC + DMARC at DATA).
 *
 * The budget is enforced where the waiting happens, in the resolver the check uses: once the
 * deadline has passed every lookup fails at once with ETIMEOUT, and a lookup still in flight
 * fails at the deadline. mailauth turns those errors into temperror results as it does for
 * any DNS timeout (RFC 7208 §4.6.4 and §5: SPF; RFC 6376 §6.1.2: DKIM key lookups), so the
 * check ends promptly with a temperror and no work of it stays queued behind a slow server.
 * The query itself ends by its own timeout (dns.timeoutMs); nobody waits for it.
 *
 * Passed means the time is up by the clock, not only once the timer has run: on a busy event
 * loop the timer runs late, while mailauth's own limit (SPF's maxElapsedTime, read from
 * Date.now()) has already ended the check, and that temperror is still the deadline's.
 */
export class Deadline {
  #timer: NodeJS.Timeout | null = null;
  /** Date.now() at which the time is up; null before start() and after cancel(). */
  #endsAt: number | null = null;
  #passed = false;
  #onPass: Array<() => void> = [];
  /** Resolves when the deadline passes (never, if it is cancelled first). */
  readonly passed: Promise<void>;

  constructor() {
    this.passed = new Promise<void>((resolve) => this.#onPass.push(resolve));
  }

  /** Starts the clock: the deadline passes `ms` from now. Only the first call counts. */
  start(ms: number): void {
    if (this.#timer || this.#passed) return;
    this.#endsAt = Date.now() + ms;
    this.#timer = setTimeout(() => this.#pass(), ms);
    this.#timer.unref();
  }

  get hasPassed(): boolean {
    if (!this.#passed && this.#endsAt !== null && Date.now() >= this.#endsAt) this.#pass();
    return this.#passed;
  }

  /** The check finished: no timer left behind, and the deadline no longer passes. */
  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#endsAt = null;
  }

  #pass(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#passed = true;
    this.#timer = null;
    this.#endsAt = null;
    for (const f of this.#onPass.splice(0)) f();
  }
}

/** An error shaped like node's DNS timeout, which mailauth reads as a temporary failure. */
function expired(name: string, rrtype: string): Error {
  const t = rrtype.toUpperCase();
  const syscall = `query${t.charAt(0)}${t.slice(1).toLowerCase()}`;
  return Object.assign(new Error(`${syscall} ETIMEOUT ${name} (authentication deadline passed)`), { code: 'ETIMEOUT', syscall, hostname: name });
}

/** `resolver` bounded by `deadline` (see above). */
export function deadlineResolver(resolver: DNSResolver, deadline: Deadline): DNSResolver {
  return async (name, rrtype) => {
    if (deadline.hasPassed) throw expired(name, rrtype);
    const lookup = resolver(name, rrtype);
    // the timeout may win the race: the lookup's own failure must not go unhandled
    lookup.catch(() => undefined);
    return Promise.race([lookup, deadline.passed.then((): never => { throw expired(name, rrtype); })]);
  };
}
