/**
 * Configuration: one YAML file (optional), overlaid by POSTERN_* environment variables,
 * validated against config/schema.ts, then deep-frozen. Every error names where it came
 * from: "postern.yaml:12:3: backend.port: …" or "POSTERN_BACKEND_PORT: …", and the loaded
 * config can say the same for any key (`where`), so checks made later at start-up (TLS files,
 * policy folder) point at the line that set the value.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isMap, type Document, type LineCounter } from 'yaml';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { fromText, readEnvironment } from './env.ts';
import { configLeaves, keysUnder } from './leaves.ts';
import { configSchema, type Config } from './schema.ts';
import { reportsProblems, resolveReportPaths } from '../reports/config.ts';
import { closest, didYouMean } from './suggest.ts';
import { parseConfigYaml } from './yaml.ts';
import { getIn, setIn } from './key-path.ts';

/** The policy set shipped with Postern (DMARC as published), beside src/ wherever it is installed. */
export const SHIPPED_POLICIES = path.resolve(import.meta.dirname, '../../policies');

export interface LoadOptions {
  /** Explicit --config path; a missing explicit file is an error. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Where a value came from, in ConfigError's terms: file:line:column and key, or the variable. */
export interface Location {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  readonly key: string;
}

export type Origin = 'file' | 'env' | 'default';

export interface LoadedConfig {
  readonly config: Config;
  /** The file read, or null when running on embedded defaults. */
  readonly file: string | null;
  /** Where `key` (dotted) was set, for errors found after loading. */
  readonly where: (key: string) => Location;
  readonly origin: (key: string) => Origin;
  /** How the policy folder was chosen: set in the config, found beside it, or the shipped set. */
  readonly policiesFrom: 'config' | 'beside-config' | 'shipped';
}

function locate(doc: Document | null, lc: LineCounter | null, keyPath: ReadonlyArray<PropertyKey>): { line?: number; column?: number } {
  if (!doc || !lc) return {};
  // Walk down as far as the document has nodes: an unknown or missing key points at its parent.
  for (let n = keyPath.length; n >= 0; n--) {
    const node = doc.getIn(keyPath.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}

export function resolveConfigPath(opts: LoadOptions): { file: string; explicit: boolean } | null {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  if (opts.file) return { file: path.resolve(cwd, opts.file), explicit: true };
  if (env.POSTERN_CONFIG) return { file: path.resolve(cwd, env.POSTERN_CONFIG), explicit: true };
  const def = path.resolve(cwd, 'postern.yaml');
  return fs.existsSync(def) ? { file: def, explicit: false } : null;
}

function readFile(file: string): { doc: Document; lines: LineCounter; raw: Record<string, unknown> } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'it is a directory' : e.message;
    throw new ConfigErrors([new ConfigError(`cannot read config file: ${why}`, { file })]);
  }
  const { doc, lines, data } = parseConfigYaml(file, text);
  if (data != null && !isMap(doc.contents)) {
    throw new ConfigErrors([new ConfigError('the config file must be a mapping of keys', { file, line: 1 })]);
  }
  return { doc, lines, raw: (data ?? {}) as Record<string, unknown> };
}

/** Parses and validates; throws ConfigErrors listing every problem found. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const cwd = opts.cwd ?? process.cwd();
  const where = resolveConfigPath(opts);
  const file = where ? readFile(where.file) : null;
  const raw = file?.raw ?? {};
  const doc = file?.doc ?? null;
  const lc = file?.lines ?? null;

  // A quoted number in the file ("25") reads as the same text in a variable would.
  for (const leaf of configLeaves()) {
    const value = getIn(raw, leaf.path);
    if (leaf.kind === 'number' && typeof value === 'string') setIn(raw, leaf.path, fromText(value, leaf));
  }
  const env = readEnvironment(opts.env ?? process.env);
  const errors: ConfigError[] = [...env.errors];
  const fromEnv = new Map<string, string>();
  for (const { leaf, value } of env.values) {
    setIn(raw, leaf.path, value);
    fromEnv.set(leaf.key, leaf.env);
  }

  // A variable sets a whole key: `listen.1` comes from POSTERN_LISTEN when that is set.
  const envOf = (key: string): string | undefined => [...fromEnv].find(([k]) => key === k || key.startsWith(k + '.'))?.[1];

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keyPath = issue.path.map(String);
      const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
      const keys = unknownKeys.length ? unknownKeys.map((k) => [...keyPath, k]) : [keyPath];
      for (const k of keys) {
        const dotted = k.join('.');
        const envVar = envOf(dotted);
        const problem = unknownKeys.length ? unknownKey(k[k.length - 1]!, keyPath)
          : issue.code === 'invalid_type' && issue.expected === 'object' ? notAMapping(keyPath)
          : issue.code === 'invalid_value' ? issue.message + optionMeant(getIn(raw, keyPath), issue.values)
          : issue.message;
        errors.push(envVar
          ? new ConfigError(`${problem} (from environment)`, { key: envVar })
          : new ConfigError(problem, { file: where?.file, ...locate(doc, lc, k), key: dotted || '(root)' }));
      }
    }
  }
  if (!parsed.success || errors.length > 0) throw new ConfigErrors(byPosition(errors));

  const origin = (key: string): Origin => envOf(key) ? 'env' : doc?.hasIn(key.split('.')) ? 'file' : 'default';
  const locationOf = (key: string): Location => {
    const name = envOf(key);
    if (name) return { key: name };
    if (origin(key) === 'default') return { ...(where ? { file: where.file } : {}), key };
    return { file: where!.file, ...locate(doc, lc, key.split('.')), key };
  };

  // Relative paths in the file are relative to the file, so a config works from any cwd.
  const base = where ? path.dirname(where.file) : cwd;
  const config = parsed.data;
  let policiesFrom: LoadedConfig['policiesFrom'] = 'config';
  if (origin('policies') === 'default') {
    // Not configured: a policies/ folder beside the config (or in the working directory without
    // one), else the set shipped with Postern, so a fresh /etc/postern/postern.yaml runs as is.
    const beside = path.resolve(base, config.policies);
    policiesFrom = fs.existsSync(beside) ? 'beside-config' : 'shipped';
    config.policies = policiesFrom === 'shipped' ? SHIPPED_POLICIES : beside;
  } else {
    config.policies = path.resolve(base, config.policies);
  }
  if (config.tls.cert) config.tls.cert = path.resolve(base, config.tls.cert);
  if (config.tls.key) config.tls.key = path.resolve(base, config.tls.key);
  if (config.lists.allow) config.lists.allow = path.resolve(base, config.lists.allow);
  if (config.lists.block) config.lists.block = path.resolve(base, config.lists.block);
  if (config.decisions.file) config.decisions.file = path.resolve(base, config.decisions.file);
  if (Boolean(config.tls.cert) !== Boolean(config.tls.key)) {
    const missing = config.tls.cert ? 'tls.key' : 'tls.cert';
    throw new ConfigErrors([new ConfigError(`tls.cert and tls.key go together: set ${missing} too, or remove both to run without STARTTLS`, locationOf(config.tls.cert ? 'tls.cert' : 'tls.key'))]);
  }
  resolveReportPaths(config.reports.dmarc, base);
  const reportErrors = reportsProblems(config.reports.dmarc).map(([key, problem]) => new ConfigError(problem, locationOf(key)));
  if (reportErrors.length) throw new ConfigErrors(reportErrors);
  return { config: deepFreeze(config), file: where?.file ?? null, where: locationOf, origin, policiesFrom };
}

/**
 * An unknown key: a sibling of a close name, else a key of that name elsewhere
 * (top-level `maxMessageSize: 10MB` → limits.maxMessageSize), else nothing.
 */
function unknownKey(name: string, parent: readonly string[]): string {
  const siblings = keysUnder(parent);
  // every other key and section by its own name, with the full paths that end in it
  const elsewhere = new Map<string, Set<string>>();
  for (const leaf of configLeaves()) {
    leaf.path.forEach((segment, i) => {
      const full = leaf.path.slice(0, i + 1);
      if (full.length === parent.length + 1 && parent.every((p, j) => full[j] === p)) return;
      elsewhere.set(segment, (elsewhere.get(segment) ?? new Set()).add(full.join('.')));
    });
  }
  const paths = (segment: string | null): string | null => (segment === null ? null : [...elsewhere.get(segment)!].slice(0, 3).join(' or '));
  // a name one edit from a sibling (domain → domains), the same name elsewhere (backend.socketTimeoutMs
  // → limits.socketTimeoutMs), then a close name here or elsewhere
  const meant = closest(name, siblings, 1) ?? paths(closest(name, elsewhere.keys(), 0))
    ?? closest(name, siblings) ?? paths(closest(name, elsewhere.keys()));
  return `unknown key${meant ? ` (did you mean ${meant}?)` : ''}`;
}

/** `log.level: warning`: the allowed value it resembles (warn), as a prefix or by spelling. */
function optionMeant(value: unknown, options: readonly unknown[]): string {
  if (typeof value !== 'string' || value.length < 3) return '';
  const names = options.filter((o): o is string => typeof o === 'string');
  const lower = value.toLowerCase();
  const prefix = names.find((o) => lower.startsWith(o.toLowerCase()) || o.toLowerCase().startsWith(lower));
  return prefix !== undefined ? ` (did you mean ${prefix}?)` : didYouMean(value, names);
}

/** `xclient: yes`: say which keys go under it, and which key of that name takes a value. */
function notAMapping(keyPath: readonly string[]): string {
  const name = keyPath[keyPath.length - 1];
  const elsewhere = configLeaves().find((l) => l.path[l.path.length - 1] === name && l.path.length !== keyPath.length)?.key;
  return `expected a mapping with the keys ${keysUnder(keyPath).join(', ')}${elsewhere ? ` (did you mean ${elsewhere}?)` : ''}`;
}

/** Variables first, then the file's problems in line order, whatever the schema's order. */
function byPosition(errors: readonly ConfigError[]): ConfigError[] {
  return [...errors].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** host:port → parts; IPv6 in brackets. */
export function parseHostPort(s: string, defaultPort?: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m?.[1]) throw new Error(`invalid host:port "${s}"`);
  const port = m[2] !== undefined ? Number(m[2]) : defaultPort;
  if (port === undefined) throw new Error(`missing port in "${s}"`);
  return { host: m[1], port };
}
