/**
 * YAML with positions: every error found later (schema, patterns, list files, duplicates) is
 * mapped back to file:line:column and a key path like `rules[2].match.spf`, so an operator
 * can go straight to the line.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { toPlainData } from '../config/yaml.ts';
import { ConfigError } from '../core/errors.ts';

export interface YamlSource {
  readonly file: string;
  readonly doc: Document;
  readonly lines: LineCounter;
}

export interface Where {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly key: string;
}

/** A location found by locate(); `found` is false when the path runs into a missing key. */
export interface Located extends Where {
  readonly found: boolean;
}

export type PathSegment = string | number;

/** rules[2].match.spf */
export function formatKeyPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

/** Parse one file; syntax errors (bad indentation, duplicate keys, tabs...) come back located. */
export function parseYamlSource(file: string, text: string): { source: YamlSource; errors: ConfigError[] } {
  const lines = new LineCounter();
  // uniqueKeys: a key written twice in one mapping is an error, not "the last one wins".
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const errors = doc.errors.map((e) => {
    const pos = lines.linePos(e.pos[0]);
    return new ConfigError(`YAML syntax error: ${e.message.split('\n')[0] ?? e.code}`, { file, line: pos.line, column: pos.col });
  });
  // an unquoted `*.example.com` (an alias) or an alias bomb: located errors, not exceptions later
  if (errors.length === 0) errors.push(...toPlainData(file, doc, lines).errors);
  return { source: { file, doc, lines }, errors };
}

/**
 * Where a path points in the file. `at: 'key'` points at the key itself (for unknown keys).
 * A path into a missing key points at the nearest existing parent but still names the full
 * key; trailing list indexes a scalar was read as (`spf: fail` is a one-item list) are dropped.
 */
export function locate(source: YamlSource, path: readonly PathSegment[], at: 'value' | 'key' = 'value'): Located {
  let node: unknown = source.doc.contents;
  let found = true;
  let offset = (node as { range?: [number, number, number] } | null)?.range?.[0] ?? 0;
  const named: PathSegment[] = [];
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] as PathSegment;
    if (isMap(node) && typeof seg === 'string') {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      named.push(seg);
      if (!pair) {
        found = false;
        named.push(...path.slice(i + 1).filter((s) => typeof s === 'string'));
        break;
      }
      const keyNode = pair.key as { range?: [number, number, number] };
      const valueNode = pair.value as { range?: [number, number, number] } | null;
      const last = i === path.length - 1;
      offset = (last && at === 'key') || !valueNode?.range ? (keyNode.range?.[0] ?? offset) : valueNode.range[0];
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      named.push(seg);
      const item = node.items[seg] as { range?: [number, number, number] } | undefined;
      if (!item) {
        found = false;
        break;
      }
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      // A scalar where a mapping was expected: the key is not there.
      if (typeof seg === 'string') found = false;
      if (typeof seg === 'string') named.push(seg, ...path.slice(i + 1).filter((s) => typeof s === 'string'));
      break;
    }
  }
  const pos = source.lines.linePos(offset);
  return { file: source.file, line: pos.line, column: pos.col, key: formatKeyPath(named), found };
}

export function errorAt(where: Where, problem: string): ConfigError {
  return new ConfigError(problem, { file: where.file, line: where.line, column: where.column, ...(where.key ? { key: where.key } : {}) });
}
