/**
 * `check-config --print`: the configuration in force after file, environment and defaults,
 * as YAML a config file could hold (like `postconf -n`, but every key), each value marked
 * with where it came from. Secrets are masked: passwords inside URLs, and any key named like
 * a password, secret or token.
 */
import { Document, isScalar, isSeq, type Node } from 'yaml';
import type { LoadedConfig } from './load.ts';
import { configLeaves } from './leaves.ts';
import { maskUrl } from './values.ts';
import { getIn, setIn } from './key-path.ts';

const SECRET_KEY = /password|secret|token/i;

function masked(key: string, value: unknown): unknown {
  if (typeof value === 'string') return SECRET_KEY.test(key) ? '****' : maskUrl(value);
  if (Array.isArray(value)) return value.map((v) => masked(key, v));
  return value;
}

export function printConfig(loaded: LoadedConfig): string {
  const data: Record<string, unknown> = {};
  const notes = new Map<string, string>();
  for (const leaf of configLeaves()) {
    const value = getIn(loaded.config, leaf.path);
    if (value === undefined) continue; // unset optional key (redis.url, tls.cert…)
    setIn(data, leaf.path, masked(leaf.key, value));
    const origin = loaded.origin(leaf.key);
    if (origin === 'env') notes.set(leaf.key, `from ${leaf.env}`);
    else if (origin === 'default') notes.set(leaf.key, leaf.key === 'policies' && loaded.policiesFrom === 'shipped' ? 'default: the shipped policy set' : 'default');
  }
  const doc = new Document(data);
  // lists on one line, so a note can follow them as it follows a scalar
  for (const leaf of configLeaves()) {
    const node = doc.getIn(leaf.path, true);
    if (isSeq(node)) node.flow = true;
  }
  for (const [key, note] of notes) {
    const node = doc.getIn(key.split('.'), true) as Node | undefined;
    if (node && (isScalar(node) || isSeq(node))) node.comment = ` ${note}`;
  }
  const head = `# Effective configuration: ${loaded.file ?? '(embedded defaults)'}, POSTERN_* variables and defaults.\n`;
  return head + doc.toString({ lineWidth: 0 });
}
