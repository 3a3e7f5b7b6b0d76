/**
 * The schema's leaves: every key with its kind, default, doc string and environment variable
 * name. The env overlay, the README table, --print, reload and the did-you-mean suggestions
 * all read the key list from here, so a key added to the schema is known everywhere.
 */
import type { z } from 'zod';
import { configSchema } from './schema.ts';

export type LeafKind = 'string' | 'number' | 'boolean' | 'list';

export interface ConfigLeaf {
  readonly path: readonly string[];
  readonly key: string;
  readonly env: string;
  readonly kind: LeafKind;
  readonly description: string;
  readonly default: unknown;
}

/** backend.port → POSTERN_BACKEND_PORT; proxyProtocol.trusted → POSTERN_PROXY_PROTOCOL_TRUSTED. */
export function envName(keyPath: readonly string[]): string {
  return 'POSTERN_' + keyPath.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Sees through default/prefault/optional wrappers and preprocess pipes to the value's own type. */
function unwrap(schema: z.ZodType): { inner: z.ZodType; description: string | undefined; def: unknown } {
  let inner = schema;
  let description = schema.description;
  let def: unknown;
  for (;;) {
    const d = inner._zod.def as { type: string; innerType?: z.ZodType; defaultValue?: unknown; out?: z.ZodType };
    const next = d.type === 'pipe' ? d.out : (d.type === 'default' || d.type === 'prefault' || d.type === 'optional') ? d.innerType : undefined;
    if (!next) return { inner, description, def };
    if (d.type === 'default') def = d.defaultValue;
    inner = next;
    description ??= inner.description;
  }
}

function walk(schema: z.ZodType, keyPath: string[], out: ConfigLeaf[]): void {
  const { inner, description, def } = unwrap(schema);
  const t = inner._zod.def.type;
  if (t === 'object') {
    const shape = (inner as unknown as { shape: Record<string, z.ZodType> }).shape;
    for (const [k, v] of Object.entries(shape)) walk(v, [...keyPath, k], out);
    return;
  }
  const kind: LeafKind = t === 'number' ? 'number' : t === 'boolean' ? 'boolean' : t === 'array' ? 'list' : 'string';
  out.push({ path: keyPath, key: keyPath.join('.'), env: envName(keyPath), kind, description: description ?? '', default: def });
}

let cached: readonly ConfigLeaf[] | null = null;

/** Every leaf key of the configuration, in schema order. */
export function configLeaves(): readonly ConfigLeaf[] {
  if (cached === null) {
    const out: ConfigLeaf[] = [];
    walk(configSchema, [], out);
    cached = Object.freeze(out);
  }
  return cached;
}

/** The keys that exist directly under `parent` ([] = the top level): for "did you mean". */
export function keysUnder(parent: readonly string[]): string[] {
  const names = new Set<string>();
  for (const leaf of configLeaves()) {
    if (leaf.path.length > parent.length && parent.every((p, i) => leaf.path[i] === p)) names.add(leaf.path[parent.length]!);
  }
  return [...names];
}
