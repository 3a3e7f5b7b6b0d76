/**
 * The README's configuration table, generated from the schema (one source for key names,
 * defaults and meanings). test/unit/config/doc.test.ts fails when README.md drifts from it.
 */
import { configLeaves, envName } from './leaves.ts';

function formatDefault(path: readonly string[], value: unknown): string {
  if (path.join('.') === 'hostname') return 'OS host name';
  if (path.join('.') === 'workers') return 'number of CPUs';
  if (value === undefined) return '(none)';
  if (Array.isArray(value)) return value.length === 0 ? '`[]`' : `\`${value.join(',')}\``;
  const text = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  return `\`${text}\``;
}

export function configTable(): string {
  const rows = configLeaves().map((leaf) => {
    const meaning = leaf.description.replace(/\|/g, '\\|');
    return `| \`${leaf.path.join('.')}\` | \`${envName(leaf.path)}\` | ${formatDefault(leaf.path, leaf.default)} | ${meaning} |`;
  });
  return ['| key | env var | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
