/**
 * Subjects (what a score or bucket belongs to) and their Redis key names.
 *
 * Keys are readable, never hashed, so an operator can look at them with redis-cli:
 *   postern:rep:{ip:203.0.113.7}                 score hash (s, n, t)
 *   postern:rl:{ip:203.0.113.7}:ip-messages      GCRA bucket hash (tat, interval, burst)
 *   postern:fs:<sha256 of the message identity>  first-seen time (ms), one string key
 * The subject in braces is the Redis Cluster hash tag: every key of one subject lives in one
 * slot, so one script call can touch all of them (redis.io "Hash tags").
 */
import ipaddr from 'ipaddr.js';
import { isValidDomain, normaliseDomain } from '../core/domain.ts';
import { normaliseIp } from '../core/ip.ts';
import { LIMITERS, type Limiter, type Subject, type SubjectKind } from './types.ts';

export const DEFAULT_KEY_PREFIX = 'postern:';

/** Which subject kind each limiter counts ('blocklist' is not a bucket). */
const LIMITER_KIND: Readonly<Record<Limiter, SubjectKind | null>> = {
  'ip-connections': 'ip', 'net-connections': 'net',
  'ip-messages': 'ip', 'net-messages': 'net', 'domain-messages': 'domain',
  'ip-recipients': 'ip', 'net-recipients': 'net', 'rcpt-messages': 'rcpt',
  'blocklist': null,
  'dmarc-failure-reports': 'domain',
};

export function limiterKind(limiter: Limiter): SubjectKind | null {
  return LIMITER_KIND[limiter];
}

/** The buckets a subject of this kind can have (for inspect and reset). */
export function limitersFor(kind: SubjectKind): readonly Limiter[] {
  return LIMITERS.filter((l) => LIMITER_KIND[l] === kind);
}

export function ipSubject(ip: string): Subject {
  const id = normaliseIp(ip);
  if (id === null) throw new Error(`invalid IP address "${ip}"`);
  return { kind: 'ip', id };
}

/** The network an address belongs to, as CIDR text. IPv4-mapped IPv6 counts as IPv4. */
export function netSubject(ip: string, v4Bits = 24, v6Bits = 64): Subject {
  const norm = normaliseIp(ip);
  if (norm === null) throw new Error(`invalid IP address "${ip}"`);
  const addr = ipaddr.parse(norm);
  const bits = addr.kind() === 'ipv4' ? v4Bits : v6Bits;
  const bytes = addr.toByteArray();
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) throw new Error(`invalid prefix length ${bits}`);
  const masked = bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, bits - i * 8));
    return keep === 0 ? 0 : b & (0xff << (8 - keep)) & 0xff;
  });
  return { kind: 'net', id: `${ipaddr.fromByteArray(masked).toString()}/${bits}` };
}

/** Lower-case A-label form without the trailing dot, so "Example.COM." and "example.com" are one subject. */
export function domainSubject(domain: string): Subject {
  const id = normaliseDomain(domain);
  if (!isValidDomain(id)) throw new Error(`invalid domain "${domain}"`);
  return { kind: 'domain', id };
}

/** A recipient address, lower-cased (local parts are case-sensitive in theory, never in practice). */
export function rcptSubject(address: string): Subject {
  const id = address.trim().replace(/^<|>$/g, '').toLowerCase();
  const at = id.lastIndexOf('@');
  if (at <= 0 || at === id.length - 1) throw new Error(`invalid recipient address "${address}"`);
  return { kind: 'rcpt', id: `${id.slice(0, at)}@${domainSubject(id.slice(at + 1)).id}` };
}

/**
 * What an operator types: an IP, a CIDR (normalised to its network), a domain, or an explicit
 * "kind:id" ("rcpt:user@example.com", "ip:::1").
 */
export function parseSubject(text: string): Subject {
  const t = text.trim();
  const explicit = /^(ip|net|domain|rcpt):(.+)$/.exec(t);
  if (explicit) {
    const [, kind, id] = explicit as unknown as [string, SubjectKind, string];
    if (kind === 'ip') return ipSubject(id);
    if (kind === 'net') return parseSubject(id.includes('/') ? id : `${id}/${id.includes(':') ? 64 : 24}`);
    if (kind === 'domain') return domainSubject(id);
    return rcptSubject(id);
  }
  if (t.includes('/')) {
    const [addr = '', bitsText = ''] = t.split('/');
    if (!/^\d{1,3}$/.test(bitsText)) throw new Error(`invalid CIDR "${text}"`);
    const bits = Number(bitsText);
    return netSubject(addr, bits, bits);
  }
  if (normaliseIp(t) !== null) return ipSubject(t);
  if (t.includes('@')) return rcptSubject(t);
  return domainSubject(t);
}

export function subjectText(subject: Subject): string {
  return `${subject.kind}:${subject.id}`;
}

/** Braces would end the hash tag early and '%' is our escape: keep the tag exactly the subject. */
function tag(subject: Subject): string {
  const id = subject.id.replace(/[%{}\s]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
  return `{${subject.kind}:${id}}`;
}

export function checkKeyPrefix(prefix: string): string {
  if (/[{}\s]/.test(prefix)) throw new Error(`key prefix "${prefix}" must not contain braces or spaces (they would change the hash tag)`);
  return prefix;
}

export function scoreKey(prefix: string, subject: Subject): string {
  return `${prefix}rep:${tag(subject)}`;
}

export function bucketKey(prefix: string, limiter: Limiter, subject: Subject): string {
  return `${prefix}rl:${tag(subject)}:${limiter}`;
}

/** First-seen time of a message (its fingerprint, already a hash): a plain string key. */
export function firstSeenKey(prefix: string, fingerprint: string): string {
  return `${prefix}fs:${fingerprint}`;
}
