/**
 * Loading a policy folder: every `*.yaml`/`*.yml` file in lexical order, rules concatenated.
 * All-or-nothing: every problem of every file is collected, with file:line:column and key
 * path, and thrown together as ConfigErrors; a RuleSet is returned only when there is none.
 * The caller (reload on SIGHUP) keeps its old RuleSet when this throws.
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ConfigError, ConfigErrors } from '../core/errors.ts';
import { compileRule, ruleListRefs } from './compile.ts';
import { deepFreeze } from './freeze.ts';
import type { ListStore } from './lists.ts';
import { fileSchema, ruleSchema, type RuleSpec } from './schema.ts';
import { issuesToErrors } from './schema-errors.ts';
import type { CompiledRule, Mode, PolicyFileInfo, RuleSet } from './types.ts';
import { errorAt, locate, parseYamlSource, type Where, type YamlSource } from './yaml-source.ts';

// check-config prints the loaded set; exported here too so the CLI needs one import.
export { describeRuleSet } from './describe.ts';

export interface PolicyFileText {
  readonly path: string;
  readonly text: string;
}

/**
 * `.yaml`/`.yml`, not hidden: skips `*.sample`, editor backups and Kubernetes' `..data` entries,
 * and the policy tests beside the policies (`*.test.yaml`, `postern policy test`).
 */
export function isPolicyFileName(name: string): boolean {
  return !name.startsWith('.') && /\.ya?ml$/.test(name) && !/\.test\.ya?ml$/.test(name);
}

/** Lexical by file name (code-unit order, the same on every locale), then by full path. */
function byFileName(a: PolicyFileText, b: PolicyFileText): number {
  const [x, y] = [basename(a.path), basename(b.path)];
  if (x !== y) return x < y ? -1 : 1;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

interface ParsedFile {
  readonly source: YamlSource;
  readonly mode: Mode;
  readonly rules: ReadonlyArray<{ readonly index: number; readonly spec: RuleSpec }>;
}

interface Parsed {
  readonly files: readonly ParsedFile[];
  readonly errors: ConfigError[];
  /** Absolute paths of the list files referenced by valid rules. */
  readonly listRefs: ReadonlySet<string>;
}

function formatWhere(w: Where): string {
  return `${w.file}:${w.line}:${w.column}`;
}

/** Parse and validate every file; compile nothing yet (list files are read in between). */
function parseFiles(files: readonly PolicyFileText[], dir: string): Parsed {
  const errors: ConfigError[] = [];
  const parsedFiles: ParsedFile[] = [];
  const listRefs = new Set<string>();
  const names = new Map<string, Where>();
  for (const file of [...files].sort(byFileName)) {
    const { source, errors: syntax } = parseYamlSource(file.path, file.text);
    if (syntax.length > 0) {
      errors.push(...syntax);
      continue;
    }
    const data: unknown = source.doc.toJS();
    const top = fileSchema.safeParse(data);
    if (!top.success) errors.push(...issuesToErrors(source, [], top.error.issues));
    const rawRules: unknown[] = top.success ? top.data.rules : Array.isArray((data as { rules?: unknown } | null)?.rules) ? (data as { rules: unknown[] }).rules : [];
    const rules: Array<{ index: number; spec: RuleSpec }> = [];
    rawRules.forEach((raw, index) => {
      const name = (raw as { name?: unknown } | null)?.name;
      if (typeof name === 'string') {
        const here = locate(source, ['rules', index, 'name']);
        const first = names.get(name);
        if (first) errors.push(errorAt(here, `duplicate rule name "${name}", first defined at ${formatWhere(first)}`));
        else names.set(name, here);
      }
      const result = ruleSchema.safeParse(raw);
      if (!result.success) {
        errors.push(...issuesToErrors(source, ['rules', index], result.error.issues));
        return;
      }
      rules.push({ index, spec: result.data });
      for (const ref of ruleListRefs(result.data, dir)) listRefs.add(ref);
    });
    parsedFiles.push({ source, mode: top.success ? (top.data.mode ?? 'enforce') : 'enforce', rules });
  }
  return { files: parsedFiles, errors, listRefs };
}

function build(parsed: Parsed, lists: ListStore, dir: string): RuleSet {
  const errors = [...parsed.errors];
  const rules: CompiledRule[] = [];
  const infos: PolicyFileInfo[] = [];
  for (const file of parsed.files) {
    let count = 0;
    for (const { index, spec } of file.rules) {
      const rule = compileRule(spec, { source: file.source, path: ['rules', index], fileMode: file.mode, dir, lists, errors });
      if (rule) {
        rules.push(rule);
        count++;
      }
    }
    infos.push({ path: file.source.file, mode: file.mode, rules: count });
  }
  if (errors.length > 0) throw new ConfigErrors(sortErrors(errors));
  return deepFreeze({ dir, files: infos, rules });
}

/** Report in file order, then line order, whatever pass found the problem. */
function sortErrors(errors: ConfigError[]): ConfigError[] {
  const byFile = (a: ConfigError, b: ConfigError): number => ((a.file ?? '') < (b.file ?? '') ? -1 : (a.file ?? '') > (b.file ?? '') ? 1 : 0);
  return [...errors].sort((a, b) => byFile(a, b) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

function noFiles(dir: string): ConfigErrors {
  return new ConfigErrors([new ConfigError(`no policy files in ${dir} (expected *.yaml or *.yml)`, { file: dir })]);
}

/**
 * Compile policy files given as text (tests, check-policy on stdin). Files are ordered by name
 * as loadPolicies does; list files are read synchronously through `readList` (absolute path).
 */
export function compilePolicies(files: readonly PolicyFileText[], dir: string, readList: (path: string) => string = (p) => readFileSync(p, 'utf8')): RuleSet {
  if (files.length === 0) throw noFiles(dir);
  const parsed = parseFiles(files, dir);
  const lists = new Map<string, string | Error>();
  for (const ref of parsed.listRefs) {
    try {
      lists.set(ref, readList(ref));
    } catch (err) {
      lists.set(ref, err instanceof Error ? err : new Error(String(err)));
    }
  }
  return build(parsed, lists, dir);
}

/** Load every policy file of a folder. Throws ConfigErrors naming file:line of each problem. */
export async function loadPolicies(dir: string): Promise<RuleSet> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new ConfigErrors([new ConfigError(`cannot read policy folder: ${(err as Error).message}`, { file: dir })]);
  }
  const paths = entries.filter(isPolicyFileName).map((name) => join(dir, name));
  if (paths.length === 0) throw noFiles(dir);
  const readErrors: ConfigError[] = [];
  const files: PolicyFileText[] = [];
  for (const [path, text] of await Promise.all(paths.map(async (p) => [p, await readFile(p, 'utf8').catch((e: unknown) => e as Error)] as const))) {
    if (typeof text === 'string') files.push({ path, text });
    else readErrors.push(new ConfigError(`cannot read policy file: ${text.message}`, { file: path }));
  }
  const parsed = parseFiles(files, dir);
  parsed.errors.push(...readErrors);
  const refs = [...parsed.listRefs];
  const texts = await Promise.all(refs.map((ref) => readFile(ref, 'utf8').catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))))));
  return build(parsed, new Map(refs.map((ref, i) => [ref, texts[i] ?? new Error('not read')])), dir);
}
