/**
 * The config file's YAML, turned into plain data without ever throwing a library exception at
 * the operator. Two YAML traps get their own located, one-line errors:
 * - an unquoted `*.example.com` is an alias (`*name` refers to an anchor `&name`), which the
 *   parser accepts and only fails on when converting: say "quote it" with file:line;
 * - aliases expanding into aliases (a "billion laughs" document) are capped by the yaml
 *   package's maxAliasCount; a config never needs them.
 */
import { LineCounter, isPair, isScalar, isSeq, parseDocument, visit, type Document } from 'yaml';
import { ConfigError, ConfigErrors } from '../core/errors.ts';

/** Alias expansions allowed while converting (the yaml package's own default is 100, set here on purpose). */
export const MAX_ALIAS_COUNT = 100;

export interface ParsedYaml {
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly data: unknown;
}

/** `domains.2` for a node reached through `path` (the visitor's ancestors) and `node`. */
function keyPathOf(path: readonly unknown[], node: unknown): string {
  const parts: string[] = [];
  for (let i = 0; i < path.length; i++) {
    const here = path[i];
    const next = path[i + 1] ?? node;
    if (isPair(here) && isScalar(here.key)) parts.push(String(here.key.value));
    else if (isSeq(here)) parts.push(String(here.items.indexOf(next)));
  }
  return parts.join('.');
}

function unresolvedAliases(file: string, doc: Document, lines: LineCounter): ConfigError[] {
  const errors: ConfigError[] = [];
  visit(doc, {
    Alias(_key, node, path) {
      if (node.resolve(doc) !== undefined) return;
      const pos = lines.linePos(node.range?.[0] ?? 0);
      const text = `*${node.source}`;
      const key = keyPathOf(path, node);
      errors.push(new ConfigError(
        `${text} is read as a YAML alias (a leading * refers to an anchor); quote it: "${text}"`,
        { file, line: pos.line, column: pos.col, ...(key ? { key } : {}) },
      ));
    },
  });
  return errors;
}

/**
 * What plain data `doc` converts to, or the located errors that prevent it: unresolved aliases
 * (an unquoted `*.example.com`) and alias expansion over MAX_ALIAS_COUNT. For the config file
 * and the policy files alike (src/policy/yaml-source.ts).
 */
export function toPlainData(file: string, doc: Document, lines: LineCounter): { errors: ConfigError[]; data: unknown } {
  const errors = unresolvedAliases(file, doc, lines);
  if (errors.length > 0) return { errors, data: null };
  try {
    return { errors, data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (err) {
    // The only conversion failure left after the check above is the alias cap.
    let first: number | undefined;
    visit(doc, { Alias(_k, node) { first ??= node.range?.[0]; return visit.BREAK; } });
    const pos = lines.linePos(first ?? 0);
    return {
      data: null,
      errors: [new ConfigError(
        `YAML aliases expand too much (${(err as Error).message}; at most ${MAX_ALIAS_COUNT} expansions): write the values out instead of using anchors and aliases`,
        { file, line: pos.line, column: pos.col },
      )],
    };
  }
}

/** Parses `text` (from `file`); throws ConfigErrors with file:line:column for every problem. */
export function parseConfigYaml(file: string, text: string): ParsedYaml {
  const lines = new LineCounter();
  // uniqueKeys: a key written twice is an error, not "the last one wins".
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors.map((e) => {
    const pos = lines.linePos(e.pos[0]);
    return new ConfigError(`YAML syntax error: ${e.message.split('\n')[0] ?? e.code}`, { file, line: pos.line, column: pos.col });
  });
  if (syntax.length > 0) throw new ConfigErrors(syntax);
  const { errors, data } = toPlainData(file, doc, lines);
  if (errors.length > 0) throw new ConfigErrors(errors);
  return { doc, lines, data };
}
