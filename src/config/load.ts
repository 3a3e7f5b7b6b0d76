/**
 * Configuration: one YAML file (optional), overlaid by POSTERN_* environment variables,
 * validated against config/schema.ts, then deep-frozen. Every error names where it came
 * from: "postern.yaml:12:3: backend.port: …" or "POSTERN_BACKEND_PORT: …".
 */
import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { configSchema, type Config } from './schema.ts';
import { reportsProblems, resolveReportPaths } from '../reports/config.ts';

export interface LoadOptions {
  /** Explicit --config path; a missing explicit file is an error. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  readonly config: Config;
  /** The file read, or null when running on embedded defaults. */
  readonly file: string | null;
}

type Leaf = 'string' | 'number' | 'boolean' | 'list';

/** backend.port → POSTERN_BACKEND_PORT; proxyProtocol.trusted → POSTERN_PROXY_PROTOCOL_TRUSTED. */
export function envName(keyPath: readonly string[]): string {
  return 'POSTERN_' + keyPath.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Walks the schema to list every leaf key with its kind (the env overlay and the README table use it). */
export function configLeaves(): Array<{ path: string[]; kind: Leaf; description: string; default: unknown }> {
  const out: Array<{ path: string[]; kind: Leaf; description: string; default: unknown }> = [];
  const walk = (schema: z.ZodType, keyPath: string[]): void => {
    const { inner, description, def } = unwrap(schema);
    const t = inner._zod.def.type;
    if (t === 'object') {
      const shape = (inner as unknown as { shape: Record<string, z.ZodType> }).shape;
      for (const [k, v] of Object.entries(shape)) walk(v, [...keyPath, k]);
      return;
    }
    const kind: Leaf = t === 'number' ? 'number' : t === 'boolean' ? 'boolean' : t === 'array' ? 'list' : 'string';
    out.push({ path: keyPath, kind, description: description ?? '', default: def });
  };
  walk(configSchema, []);
  return out;
}

function unwrap(schema: z.ZodType): { inner: z.ZodType; description: string | undefined; def: unknown } {
  let inner = schema;
  let description = schema.description;
  let def: unknown;
  for (;;) {
    const d = inner._zod.def as { type: string; innerType?: z.ZodType; defaultValue?: unknown };
    if ((d.type === 'default' || d.type === 'prefault' || d.type === 'optional') && d.innerType) {
      if (d.type === 'default') def = d.defaultValue;
      inner = d.innerType;
      description ??= inner.description;
      continue;
    }
    return { inner, description, def };
  }
}

function parseEnvValue(raw: string, kind: Leaf): unknown {
  switch (kind) {
    case 'number': return raw.trim() === '' ? raw : Number(raw);
    case 'boolean': return /^(1|true|yes|on)$/i.test(raw) ? true : /^(0|false|no|off)$/i.test(raw) ? false : raw;
    case 'list': return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'string': return raw;
  }
}

function setIn(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): void {
  let node = target;
  for (const k of keyPath.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]!] = value;
}

function locate(doc: Document | null, lc: LineCounter, keyPath: ReadonlyArray<PropertyKey>): { line?: number; column?: number } {
  if (!doc) return {};
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

/** Parses and validates; throws ConfigErrors listing every problem found. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const where = resolveConfigPath(opts);
  const lc = new LineCounter();
  let doc: Document | null = null;
  let raw: Record<string, unknown> = {};
  const errors: ConfigError[] = [];

  if (where) {
    let text: string;
    try {
      text = fs.readFileSync(where.file, 'utf8');
    } catch (err) {
      throw new ConfigErrors([new ConfigError(`cannot read config file: ${(err as Error).message}`, { file: where.file })]);
    }
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
    for (const e of doc.errors) {
      const pos = lc.linePos(e.pos[0]);
      errors.push(new ConfigError(e.message.split('\n')[0] ?? e.message, { file: where.file, line: pos.line, column: pos.col }));
    }
    if (errors.length) throw new ConfigErrors(errors);
    const js: unknown = doc.toJS();
    if (js != null && !isMap(doc.contents)) {
      throw new ConfigErrors([new ConfigError('the config file must be a mapping of keys', { file: where.file, line: 1 })]);
    }
    raw = (js ?? {}) as Record<string, unknown>;
  }

  const fromEnv = new Map<string, string>();
  for (const leaf of configLeaves()) {
    const name = envName(leaf.path);
    const value = env[name];
    if (value === undefined) continue;
    setIn(raw, leaf.path, parseEnvValue(value, leaf.kind));
    fromEnv.set(leaf.path.join('.'), name);
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keyPath = issue.path.map(String);
      const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
      const keys = unknownKeys.length ? unknownKeys.map((k) => [...keyPath, k]) : [keyPath];
      for (const k of keys) {
        const dotted = k.join('.');
        const envVar = [...fromEnv.entries()].find(([p]) => dotted === p || dotted.startsWith(p + '.'))?.[1];
        const problem = unknownKeys.length ? 'unknown key' : issue.message;
        errors.push(envVar
          ? new ConfigError(`${problem} (from environment)`, { key: envVar })
          : new ConfigError(problem, { file: where?.file, ...locate(doc, lc, k), key: dotted || '(root)' }));
      }
    }
    throw new ConfigErrors(errors);
  }

  // Relative paths in the file are relative to the file, so a config works from any cwd.
  const base = where ? path.dirname(where.file) : cwd;
  const config = parsed.data;
  config.policies = path.resolve(base, config.policies);
  if (config.tls.cert) config.tls.cert = path.resolve(base, config.tls.cert);
  if (config.lists.allow) config.lists.allow = path.resolve(base, config.lists.allow);
  if (config.lists.block) config.lists.block = path.resolve(base, config.lists.block);
  if (config.tls.key) config.tls.key = path.resolve(base, config.tls.key);
  if (config.decisions.file) config.decisions.file = path.resolve(base, config.decisions.file);
  if (Boolean(config.tls.cert) !== Boolean(config.tls.key)) {
    throw new ConfigErrors([new ConfigError('tls.cert and tls.key go together', { file: where?.file, ...locate(doc, lc, ['tls']), key: 'tls' })]);
  }
  resolveReportPaths(config.reports.dmarc, base);
  const reportErrors = reportsProblems(config.reports.dmarc)
    .map(([key, problem]) => new ConfigError(problem, { file: where?.file, ...locate(doc, lc, key.split('.')), key }));
  if (reportErrors.length) throw new ConfigErrors(reportErrors);
  return { config: deepFreeze(config), file: where?.file ?? null };
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
