/**
 * `postern explain`: every rule in order with why it matched or not, ending at the deciding
 * rule, for one message file (authenticated as `verify` does) or one recorded decision.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Facts } from '../../core/facts.ts';
import type { Decision } from '../../core/verdict.ts';
import { verifyMessage } from '../../devtools/verify.ts';
import { explainDecision, whyNot, type Explanation } from '../explain.ts';
import { factLine, inParens } from '../fact-view.ts';
import { recordedDecision, type RecordedDecision } from '../record-facts.ts';
import { fileLines } from '../replay/lines.ts';
import type { RuleSet, Stage } from '../types.ts';
import { EXIT, UsageError, commandConfig, countOption, loadRuleSet, parseCommand, processIo, runCommand, stringOption, type Io } from './common.ts';

export const EXPLAIN_HELP = `usage: postern explain FILE.eml --ip IP [--helo NAME] [--sender ADDR] [--rcpt ADDR]... [--policies DIR] [--config FILE]
       postern explain --record FILE [--session ID] [--message-id ID] [--nth N] [--policies DIR] [--config FILE]

Shows each policy rule in order with why it matched or not (the match keys that failed and
the facts they saw), ending at the rule that decides.

  FILE.eml        a message, authenticated as if it came from --ip (SPF, DKIM, ARC, DMARC
                  with the configured DNS), as \`postern verify\` does
  --record FILE   a decision record: a log or decisions.file, gzip too ("-" = stdin); the
                  first one, or the first of --session ID and/or --message-id ID
  --message-id ID the record of the message with this Message-ID (<> optional): picks one
                  message of a session that sent several
  --nth N         the Nth record that fits (1 = the first): a later message of a session,
                  also one refused at MAIL FROM (which has no Message-ID)
  --policies DIR  the policy folder to explain against (default: the configured one)

Exit status: 0 explained, 1 no such record, 2 usage error or a broken policy.
`;

/** The decision's text lines: action, rule, reason, reply, monitor and override. */
export function decisionLines(d: Decision | null): string[] {
  if (!d) return ['decision: not decided at MAIL FROM; the rules above need the message (decided at end of DATA)'];
  const v = d.enforced;
  return [
    `decision: ${v.action} ${v.rule ? `by rule ${v.rule}` : '(no rule matched)'}, reason ${v.reason}`,
    ...(v.action === 'reject' || v.action === 'tempfail' ? [`reply:    ${v.reply.code} ${v.reply.enhanced} ${v.reply.text}`] : []),
    ...(d.wouldHave ? [`monitor:  rule ${d.wouldHave.rule} would have done ${d.wouldHave.action}`] : []),
    ...(d.override ? [`override: DMARC p=${d.override.policy} not applied (${d.override.type}, by ${d.override.by}${d.override.sealer ? `, sealer ${d.override.sealer}` : ''})`] : []),
  ];
}

export function explanationText(e: Explanation, ruleSet: RuleSet): string {
  const lines = [`facts:    ${factLine(e.view)}`, `policies: ${ruleSet.dir} (${ruleSet.rules.length} rules)`, ''];
  e.rules.forEach((t, i) => {
    const r = t.rule;
    const head = `${String(i + 1).padStart(3)}. ${r.name} → ${r.action}${r.mode === 'monitor' ? ' (monitor)' : ''}  ${path.basename(r.file)}:${r.line}`;
    const held = t.keys.map((k) => `${k.negated ? 'not ' : ''}${k.key} ${inParens(k.fact)}`).join(', ') || 'no match keys: matches every message';
    const why = t.matched === 'yes' ? `MATCH: ${held}` : t.matched === 'unknown' ? `not known yet: ${whyNot(t)}` : `no: ${whyNot(t)}`;
    lines.push(head, `     ${why}`);
  });
  const reached = e.rules.length;
  if (reached < ruleSet.rules.length) lines.push(`     (${ruleSet.rules.length - reached} later rule(s) not consulted)`);
  lines.push('', ...decisionLines(e.decision));
  return lines.join('\n') + '\n';
}

/** `verify --explain`: the explanation of facts `verify` found, against the configured policies. */
export async function explainVerified(policies: string, facts: Facts): Promise<string> {
  const ruleSet = await loadRuleSet(policies);
  return explanationText(explainDecision(facts, ruleSet, 'data'), ruleSet);
}

/** Which record of a file to explain: the `nth` (1-based) of those of `session` and `messageId` when given. */
interface RecordFilter {
  readonly session: string | undefined;
  readonly messageId: string | undefined;
  readonly nth: number;
}

const bareId = (id: string): string => id.trim().replace(/^<|>$/g, '');

function fits(value: { session?: unknown; message_id?: unknown }, filter: RecordFilter): boolean {
  if (filter.session !== undefined && value.session !== filter.session) return false;
  return filter.messageId === undefined || (typeof value.message_id === 'string' && bareId(value.message_id) === bareId(filter.messageId));
}

/** The decision record `filter` picks in a log or decision file, gzip too, streamed; "-" is stdin. */
async function readRecord(file: string, filter: RecordFilter): Promise<RecordedDecision | null> {
  const lines: Iterable<string> | AsyncIterable<string> = file === '-' ? fs.readFileSync(0, 'utf8').split('\n') : fileLines(file);
  let seen = 0;
  for await (const line of lines) {
    if (!line.includes('"decision"')) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if ((value as { event?: unknown }).event !== 'decision') continue;
    if (!fits(value as { session?: unknown; message_id?: unknown }, filter) || ++seen < filter.nth) continue;
    const rec = recordedDecision(value);
    if ('skip' in rec) throw new UsageError(`${file}: the decision record cannot be explained: ${rec.detail}`);
    return rec;
  }
  return null;
}

function describeFilter(filter: RecordFilter): string {
  const parts = [filter.session !== undefined ? `session ${filter.session}` : '', filter.messageId !== undefined ? `Message-ID ${filter.messageId}` : ''].filter(Boolean);
  return parts.length > 0 ? ` for ${parts.join(' and ')}` : '';
}

function explainFacts(facts: Facts, stage: Stage, ruleSet: RuleSet, recorded: string | null, io: Io): number {
  const e = explainDecision(facts, ruleSet, stage);
  io.out(explanationText(e, ruleSet) + (recorded ? `recorded: ${recorded}\n` : ''));
  return EXIT.ok;
}

export async function explainCommand(argv: string[], io: Io = processIo): Promise<number> {
  return runCommand(io, EXPLAIN_HELP, async () => {
    const { values, positionals, help } = parseCommand(argv, {
      config: { type: 'string', short: 'c' }, policies: { type: 'string' }, record: { type: 'string' }, session: { type: 'string' },
      'message-id': { type: 'string' }, nth: { type: 'string' },
      ip: { type: 'string' }, helo: { type: 'string' }, sender: { type: 'string' }, rcpt: { type: 'string', multiple: true },
    });
    if (help) {
      io.out(EXPLAIN_HELP);
      return EXIT.ok;
    }
    const config = commandConfig(stringOption(values, 'config'));
    const dir = path.resolve(stringOption(values, 'policies') ?? config.policies);
    const recordFile = stringOption(values, 'record');
    if (recordFile !== undefined) {
      if (positionals.length > 0) throw new UsageError('explain takes a message file or --record, not both');
      const filter: RecordFilter = { session: stringOption(values, 'session'), messageId: stringOption(values, 'message-id'), nth: countOption(values, 'nth', 1) };
      if (filter.nth < 1) throw new UsageError('--nth: counts from 1 (the first record)');
      const ruleSet = await loadRuleSet(dir);
      const rec = await readRecord(recordFile, filter).catch((err: unknown) => {
        if (err instanceof UsageError) throw err;
        throw new UsageError(`cannot read ${recordFile}: ${(err as Error).message}`);
      });
      if (!rec) {
        io.err(`postern: no ${filter.nth > 1 ? `record number ${filter.nth} among the decision records` : 'decision record'}${describeFilter(filter)} in ${recordFile}\n`);
        return EXIT.failed;
      }
      return explainFacts(rec.facts, rec.stage, ruleSet, `${rec.verdict.action}${rec.verdict.rule ? ` by rule ${rec.verdict.rule}` : ''} (when the record was written)`, io);
    }
    const file = positionals[0];
    const ip = stringOption(values, 'ip');
    if (!file || positionals.length > 1) throw new UsageError('explain needs one message file (or --record FILE)');
    if (!ip) throw new UsageError('explain FILE.eml needs --ip (the client the message came from)');
    if (!fs.existsSync(file)) throw new UsageError(`no such file: ${file}`);
    const ruleSet = await loadRuleSet(dir);
    const verified = await verifyMessage({ ...config, policies: dir }, { file, ip, helo: stringOption(values, 'helo') ?? '', sender: stringOption(values, 'sender') ?? '' })
      .catch((err: unknown) => {
        throw new UsageError((err as Error).message);
      });
    const rcpt = (values.rcpt as string[] | undefined) ?? [];
    const facts: Facts = { ...verified.facts, envelope: { ...verified.facts.envelope, recipients: rcpt } };
    return explainFacts(facts, 'data', ruleSet, null, io);
  });
}
