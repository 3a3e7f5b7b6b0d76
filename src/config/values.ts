/**
 * Value types of the configuration, shared by the file and the environment: whatever a
 * POSTERN_* variable may say, the same text in the YAML file is accepted or refused alike.
 *
 * - booleans: true/false, yes/no, on/off, 1/0 (any case), as Postfix admins write them;
 * - sizes: a byte count or a number with a unit. SI units are powers of ten (KB = 1000,
 *   MB = 1000², GB = 1000³) and IEC units powers of two (KiB = 1024, MiB = 1024², GiB = 1024³),
 *   as IEC 80000-13 defines them, so "10MB" is 10 000 000 bytes, "10MiB" 10 485 760;
 * - durations, for keys that are a time: the key's own unit when a plain number (`…Ms`
 *   milliseconds, `…Seconds`, `…Hours`, `…Days`), or a number with ms, s, m (minutes), h or d;
 * - addresses: host:port with ports 0-65535, IP literals where Postern must not depend on DNS
 *   to start (listeners, resolvers), CIDRs parsed as they will be used.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { checkServedDomain } from '../core/domain.ts';
import { cidrSet } from '../core/ip.ts';
import { parseServer } from '../dns/servers.ts';
import { parseSentinelUrl } from '../reputation/redis-connect.ts';

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/** A boolean written as the environment writes it. */
export function flag() {
  return z.preprocess(
    (v) => (typeof v === 'string' ? (TRUE.test(v.trim()) ? true : FALSE.test(v.trim()) ? false : v) : v === 1 ? true : v === 0 ? false : v),
    z.boolean({ error: 'expected true or false (also yes/no, on/off, 1/0)' }),
  );
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3,
};

/** "10MB" → 10000000, "512KiB" → 524288, 1500 → 1500; undefined when not a size. */
export function parseSize(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const factor = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  return m && factor !== undefined ? Math.round(Number(m[1]) * factor) : undefined;
}

/** A byte count, plain or with a unit. */
export function size(min: number) {
  return z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    const bytes = parseSize(v);
    if (bytes !== undefined) return bytes;
    ctx.addIssue({ code: 'custom', input: v, message: `expected a size: bytes, or a number with KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 10MB; got "${v}"` });
    return z.NEVER;
  }, z.number({ error: 'expected a size, e.g. 10000000 or 10MB' }).int().min(min));
}

export type TimeUnit = 'ms' | 's' | 'h' | 'd';
const MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const UNIT_NAME: Readonly<Record<TimeUnit, string>> = { ms: 'milliseconds', s: 'seconds', h: 'hours', d: 'days' };

/** "30s" → in `unit`; a plain number (or numeric text) is already in `unit`; undefined when not a duration. */
export function parseDuration(value: string, unit: TimeUnit): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?$/i.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === undefined ? n : (n * MS[m[2].toLowerCase()]!) / MS[unit]!;
}

/**
 * The longest a key in milliseconds may be: every one is a timer, and Node.js keeps a timer for
 * at most 2^31-1 ms (24.8 days); a longer one fires at once, with only a TimeoutOverflowWarning
 * (socketTimeoutMs: 30d would time every session out immediately).
 */
export const MAX_TIMER_MS = 24 * MS.d!;

/**
 * A time in `unit` (the unit the key's name ends with), plain or with a unit of its own.
 * `inner` adds the key's bounds (int, min…).
 */
export function duration(unit: TimeUnit, inner: z.ZodNumber = z.number()) {
  return z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    const n = parseDuration(v, unit);
    if (n !== undefined) return n;
    ctx.addIssue({ code: 'custom', input: v, message: `expected a duration: ${UNIT_NAME[unit]}, or a number with ms, s, m, h or d, e.g. 30s or 5m; got "${v}"` });
    return z.NEVER;
  }, inner.refine((n) => Number.isFinite(n), `expected a number of ${UNIT_NAME[unit]}`)
    .refine((n) => unit !== 'ms' || n <= MAX_TIMER_MS, `at most 24d (${MAX_TIMER_MS} ms): a longer timer cannot be kept`));
}

/** A whole-number time: `1500ms` for a key in seconds is refused instead of rounded. `max` in `unit`. */
export function wholeDuration(unit: TimeUnit, min: number, max?: number) {
  const whole = z.number().int(`expected a whole number of ${UNIT_NAME[unit]}`).min(min);
  return duration(unit, max === undefined ? whole : whole.max(max, `at most ${max} ${UNIT_NAME[unit]}`));
}

/** "host:port" or "[v6]:port"; the host part and the port as a number, or the problem. */
export function splitHostPort(text: string): { ok: true; host: string; port: number } | { ok: false; problem: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^\s:[\]]+):(\d+)$/.exec(text);
  if (!m) return { ok: false, problem: `expected host:port (IPv6 as [addr]:port), got "${text}"` };
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port > 65535) return { ok: false, problem: `port ${m[2]} of "${text}" is out of range (0-65535)` };
  return { ok: true, host: m[1]!, port };
}

function refineWith(check: (text: string) => string | null) {
  return z.string().superRefine((text, ctx) => {
    const problem = check(text);
    if (problem !== null) ctx.addIssue({ code: 'custom', input: text, message: problem });
  });
}

/** host:port where the host may be a name (Redis seeds, resolved by their client). */
export const hostPort = refineWith((text) => {
  const r = splitHostPort(text);
  return r.ok ? null : r.problem;
});

function listenProblem(text: string): string | null {
  const r = splitHostPort(text);
  if (!r.ok) return r.problem;
  if (isIP(r.host) === 0) return `"${text}": the host must be an IP address to listen on (0.0.0.0, [::], 127.0.0.1), not a name`;
  if (isIP(r.host) === 6 && !text.startsWith('[')) return `"${text}": write an IPv6 address in brackets, [addr]:port`;
  return null;
}

/** A listener: an IP address and a port, bound at start without asking DNS. */
export const listenAddress = refineWith(listenProblem);

/** The same, or '' for "off". */
export const optionalListenAddress = refineWith((text) => (text === '' ? null : listenProblem(text)));

/** A recursive resolver: an IP address (Postern cannot look up its resolvers' names). */
export const dnsServer = refineWith((text) => {
  try {
    parseServer(text);
    return null;
  } catch (err) {
    const message = (err as Error).message;
    // the name case gets the why; an unusable address (link-local, broadcast) says its own fix
    return /not an IP address|bad port|missing "]"|expected ":port"/.test(message)
      ? `${message}; dns.servers takes resolver IP addresses (Postern does not look up its resolvers' names), e.g. 127.0.0.1:53 or [::1]:53`
      : message;
  }
});

/** An IP address or CIDR, parsed as the listener will use it. */
export const cidr = refineWith((text) => {
  try {
    cidrSet([text]);
    return null;
  } catch (err) {
    return `${(err as Error).message} (expected an IP address or a CIDR such as 10.0.0.0/8 or 2001:db8::/32)`;
  }
});

/** A `domains` entry, normalised (lower-case A-labels); public suffixes refused (core/domain.ts). */
export const servedDomain = z.string().transform((text, ctx) => {
  const r = checkServedDomain(text);
  if (r.ok) return r.text;
  ctx.addIssue({ code: 'custom', input: text, message: r.problem });
  return z.NEVER;
});

/** redis://, rediss:// or redis+sentinel:// URL whose syntax the client will accept. */
export function redisUrlProblem(url: string): string | null {
  if (url.startsWith('redis+sentinel://')) {
    try {
      parseSentinelUrl(url);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${maskUrl(url)}" is not a valid URL`;
  }
  if (parsed.hostname === '') return `"${maskUrl(url)}" has no host`;
  if (!/^\/?(\d+)?$/.test(parsed.pathname)) return `"${maskUrl(url)}": the path must be a database number (/0)`;
  return null;
}

/**
 * A URL with its password replaced, for logs, errors and `check-config --print`. The user
 * information ends at the last '@' (a URL parser reads redis://u:p@ss@host as the password
 * "p@ss"), and a password may hold a '/' its writer did not encode: everything from the first
 * ':' after the user name to the last '@' is masked. Masking too much is harmless; too little
 * leaks.
 */
export function maskUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (!scheme) return url;
  const start = scheme[0].length;
  const at = url.lastIndexOf('@');
  const colon = url.indexOf(':', start);
  if (at < start || colon < 0 || colon > at) return url;
  return `${url.slice(0, colon + 1)}****${url.slice(at)}`;
}
