/**
 * Static allow and block lists: files of one entry per line, `#` starts a comment.
 *   203.0.113.7          an address
 *   198.51.100.0/24      a network (IPv4 or IPv6 CIDR)
 *   example.com          exactly this (authenticated) domain
 *   *.example.com        any subdomain of it (not the domain itself); .example.com the same
 * Allow → limits bypassed (tier 'trusted'); block → always limited ('blocklist', a 4xx).
 * Domains match only the authenticated domain the facade is given, never an unverified From.
 *
 * load() returns a frozen matcher and throws ConfigErrors naming file:line for every bad
 * entry; the caller keeps the old matcher when a reload fails (all-or-nothing, STYLE §4.8).
 */
import { readFileSync } from 'node:fs';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { cidrSet, normaliseIp } from '../core/ip.ts';
import { domainMatcher, normaliseDomain, parseDomainPattern, type DomainPattern } from '../core/domain.ts';

export interface ListMatcher {
  /** The file it came from, or null for the empty list. */
  readonly source: string | null;
  readonly size: number;
  hasIp(ip: string): boolean;
  hasDomain(domain: string): boolean;
}

export interface Lists {
  readonly allow: ListMatcher;
  readonly block: ListMatcher;
}

export const EMPTY_LIST: ListMatcher = Object.freeze({
  source: null, size: 0, hasIp: () => false, hasDomain: () => false,
});

export const NO_LISTS: Lists = Object.freeze({ allow: EMPTY_LIST, block: EMPTY_LIST });

/** Parses list text; `file` names it in errors ("allow.txt:3: …"). */
export function parseList(text: string, file: string): ListMatcher {
  const nets: string[] = [];
  const domains: DomainPattern[] = [];
  const errors: ConfigError[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const entry = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (entry === '') return;
    const where = { file, line: i + 1, column: raw.indexOf(entry) + 1 };
    if (/\s/.test(entry)) {
      errors.push(new ConfigError(`one entry per line, got "${entry}"`, where));
    } else if (entry.includes('/') || normaliseIp(entry) !== null) {
      try {
        cidrSet([entry]);
        nets.push(entry);
      } catch (err) {
        errors.push(new ConfigError((err as Error).message, where));
      }
    } else {
      const parsed = parseDomainPattern(entry);
      if (parsed.ok) domains.push(parsed.pattern);
      else errors.push(new ConfigError(`invalid IP address, CIDR or domain "${entry}"`, where));
    }
  });
  if (errors.length > 0) throw new ConfigErrors(errors);

  const ips = cidrSet(nets);
  const matcher = domainMatcher(domains);
  const hasDomain = (domain: string): boolean => matcher.matches(normaliseDomain(domain));
  return Object.freeze({
    source: file,
    size: nets.length + matcher.size,
    hasIp: (ip: string) => ips.has(ip),
    hasDomain,
  });
}

/** Reads and parses a list file (a read error is a ConfigError naming the file). */
export function load(path: string): ListMatcher {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigErrors([new ConfigError(`cannot read list: ${(err as Error).message}`, { file: path })]);
  }
  return parseList(text, path);
}

/** Both lists from config paths (absent = empty). Throws before anything is swapped. */
export function loadLists(paths: { readonly allow?: string | undefined; readonly block?: string | undefined }): Lists {
  return Object.freeze({
    allow: paths.allow ? load(paths.allow) : EMPTY_LIST,
    block: paths.block ? load(paths.block) : EMPTY_LIST,
  });
}
