/**
 * `postern verify FILE.eml …`: authenticate message files as the gateway would, print the
 * Authentication-Results and the verdict (or one JSON object), and exit with the verdict so a
 * script can branch on it: 0 delivered (accept, tag, quarantine), 1 reject, 3 tempfail,
 * 2 usage or configuration error. With several files the most severe verdict decides.
 */
import fs from 'node:fs';
import { normaliseIp } from '../core/ip.ts';
import type { Verdict } from '../core/verdict.ts';
import { verifyMessage, type VerifyResult } from '../devtools/verify.ts';
import { formatField } from '../message/fold.ts';
import { explainVerified } from '../policy/cli/explain.ts';
import { CONFIG_HELP, CONFIG_OPTION, EXIT, loadCommandConfig, parseCommandArgs, UsageError, type Command } from './command.ts';

const synopsis = 'verify FILE.eml… --ip IP [--helo NAME] [--sender ADDR] [--json] [--explain] [--config FILE]';
const help = `usage: postern ${synopsis}

Authenticates each message file (SPF, DKIM, ARC, DMARC) as if it had come from --ip, with the
configured DNS and policy folder, and prints the Authentication-Results header and the verdict.

  --ip IP             the client address the message is checked as coming from (required)
  --helo NAME         the HELO name (SPF checks it when the sender is empty)
  --sender ADDR       the envelope sender (MAIL FROM); empty: the null sender
  --explain           after the verdict, each rule in order with why it matched or not
  --json              one JSON object on stdout: authResults, spf, dkim, arc, dmarc, fromDomain,
                      verdict {action, rule, reason, reply}, wouldHave, exitCode
                      (several files: {"files": [...], "exitCode": N})
${CONFIG_HELP}

Exit status: 0 delivered (accept, tag, quarantine), 1 reject, 3 tempfail, 2 usage or config error.`;

/** reject is the most severe, then tempfail, then delivered. */
function exitFor(v: Verdict): number {
  return v.action === 'reject' ? EXIT.reject : v.action === 'tempfail' ? EXIT.tempfail : EXIT.ok;
}
const SEVERITY: Readonly<Record<number, number>> = { [EXIT.ok]: 0, [EXIT.tempfail]: 1, [EXIT.reject]: 2 };

function replyOf(v: Verdict): string | null {
  return v.action === 'reject' || v.action === 'tempfail' ? `${v.reply.code} ${v.reply.enhanced} ${v.reply.text}` : null;
}

function verdictJson(v: Verdict): Record<string, unknown> {
  return { action: v.action, rule: v.rule, reason: v.reason, reply: replyOf(v) };
}

function asJson(file: string, r: VerifyResult): Record<string, unknown> {
  const { facts, decision } = r;
  return {
    file,
    authResults: r.authResults,
    spf: facts.spf,
    dkim: facts.dkim ?? [],
    arc: facts.arc ?? null,
    dmarc: facts.dmarc ?? null,
    fromDomain: facts.message?.fromDomain ?? null,
    verdict: verdictJson(decision.enforced),
    wouldHave: decision.wouldHave ? verdictJson(decision.wouldHave) : null,
    exitCode: exitFor(decision.enforced),
  };
}

function asText(r: VerifyResult): string {
  const v = r.decision.enforced;
  const reply = replyOf(v);
  const would = r.decision.wouldHave;
  return [
    formatField('Authentication-Results', r.authResults).trimEnd(),
    '',
    `verdict: ${v.action}${v.rule ? ` (rule ${v.rule})` : ' (no rule matched)'}, reason ${v.reason}`,
    ...(reply ? [`reply:   ${reply}`] : []),
    ...(would ? [`monitor: rule ${would.rule} would have done ${would.action}`] : []),
  ].join('\n') + '\n';
}

export const command: Command = {
  name: 'verify',
  synopsis,
  summary: 'authenticate message files with the configured DNS and policies; exit status = verdict',
  help,
  async run(argv) {
    const args = parseCommandArgs(command, argv, {
      ...CONFIG_OPTION, ip: { type: 'string' }, helo: { type: 'string' }, sender: { type: 'string' }, json: { type: 'boolean' },
      explain: { type: 'boolean' },
    }, { positionals: true });
    if (!args) return EXIT.ok;
    const files = args.positionals;
    const { ip, helo = '', sender = '', json = false } = args.values;
    if (files.length === 0 || !ip) throw new UsageError('verify needs at least one FILE.eml and --ip', help);
    if (normaliseIp(ip) === null) throw new UsageError(`verify: --ip: not an IP address: ${ip}`, help);
    for (const f of files) if (!fs.existsSync(f)) throw new UsageError(`verify: no such file: ${f}`, help);
    const { config } = loadCommandConfig(args.values.config);
    const results: Array<{ file: string; result: VerifyResult }> = [];
    for (const file of files) results.push({ file, result: await verifyMessage(config, { file, ip, helo, sender }) });
    const code = results.map((r) => exitFor(r.result.decision.enforced)).reduce((a, b) => (SEVERITY[b]! > SEVERITY[a]! ? b : a), EXIT.ok as number);
    if (json) {
      const objects = results.map((r) => asJson(r.file, r.result));
      process.stdout.write(JSON.stringify(objects.length === 1 ? objects[0] : { files: objects, exitCode: code }) + '\n');
    } else {
      process.stdout.write(results.map((r) => (results.length > 1 ? `== ${r.file}\n` : '') + asText(r.result)).join('\n'));
      // each rule in order, why it matched or not (src/policy/cli/explain.ts)
      if (args.values.explain) for (const r of results) process.stdout.write('\n' + await explainVerified(config.policies, r.result.facts));
    }
    return code;
  },
};
