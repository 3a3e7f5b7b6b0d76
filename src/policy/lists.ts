/**
 * List files (`file:lists/partners.txt` in a pattern position): one pattern per line, `#`
 * starts a comment. Paths are relative to the policy folder. Each file is read once per load
 * (the store is keyed by absolute path) and expanded into the patterns of the rule.
 */
import { join, resolve } from 'node:path';
import type { ConfigError } from '../core/errors.ts';
import { errorAt, locate, type PathSegment, type Where, type YamlSource } from './yaml-source.ts';

export const LIST_PREFIX = 'file:';

/** Absolute path → file text, or the error reading it. Filled before compiling. */
export type ListStore = ReadonlyMap<string, string | Error>;

export function listPath(dir: string, value: string): string | null {
  return value.startsWith(LIST_PREFIX) ? resolve(dir, value.slice(LIST_PREFIX.length).trim()) : null;
}

export interface ListEntry { readonly text: string; readonly line: number; readonly column: number }

export function parseListFile(text: string): ListEntry[] {
  const entries: ListEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const body = hash < 0 ? raw : raw.slice(0, hash);
    const text = body.trim();
    if (text) entries.push({ text, line: i + 1, column: body.indexOf(text) + 1 });
  });
  return entries;
}

export interface ExpandedPatterns {
  readonly patterns: readonly string[];
  /** Where each pattern was written: the policy file, or a line of a list file. */
  readonly wheres: readonly Where[];
}

/**
 * Inline patterns and the contents of referenced list files, each with its location. A list
 * file that cannot be read is an error at the reference (file:line of the `file:` value).
 */
export function expandPatterns(values: readonly string[], path: readonly PathSegment[], ctx: {
  readonly source: YamlSource; readonly dir: string; readonly lists: ListStore; readonly errors: ConfigError[];
}): ExpandedPatterns {
  const patterns: string[] = [];
  const wheres: Where[] = [];
  values.forEach((value, i) => {
    const where = locate(ctx.source, [...path, i]);
    const abs = listPath(ctx.dir, value);
    if (abs === null) {
      patterns.push(value);
      wheres.push(where);
      return;
    }
    const ref = value.slice(LIST_PREFIX.length).trim();
    const content = ctx.lists.get(abs);
    if (typeof content !== 'string') {
      const code = content && 'code' in content ? content.code : undefined;
      ctx.errors.push(errorAt(where, code === 'ENOENT' || content === undefined
        ? `list file not found: ${ref} (looked for ${abs})`
        : `cannot read list file ${ref}: ${content.message}`));
      return;
    }
    const display = join(ctx.dir, value.slice(LIST_PREFIX.length).trim());
    for (const entry of parseListFile(content)) {
      if (entry.text.startsWith(LIST_PREFIX)) {
        ctx.errors.push(errorAt({ file: display, line: entry.line, column: entry.column, key: where.key }, 'a list file cannot reference another list file'));
        continue;
      }
      patterns.push(entry.text);
      // Located in the list file, keyed by the reference so the operator sees which rule uses it.
      wheres.push({ file: display, line: entry.line, column: entry.column, key: where.key });
    }
  });
  return { patterns, wheres };
}
