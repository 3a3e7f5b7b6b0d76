/**
 * What a matching rule produces: the Verdict for its action, with the headers of tag and
 * quarantine and the reply of tempfail and reject. Replies default to the REPLIES catalogue
 * by reason; a code and enhanced code of different classes are a load error (RFC 3463 §2:
 * the class of the enhanced code must agree with the reply code).
 */
import type { Facts } from '../core/facts.ts';
import { REPLIES, type FailReply, type PermCode, type PermReply, type TempCode, type TempReply } from '../core/reply.ts';
import type { HeaderField, Reason, Verdict } from '../core/verdict.ts';
import type { RuleSpec } from './schema.ts';
import { deepFreeze } from './freeze.ts';
import { compileTemplate, constantText, renderTemplate } from './template.ts';

const TEMP_CODES: readonly TempCode[] = [421, 450, 451, 452];
const PERM_CODES: readonly PermCode[] = [550, 551, 552, 553, 554];
/** Headers the verdict itself writes; a rule may not set them. */
const RESERVED_HEADERS = new Set(['x-postern-verdict', 'x-postern-quarantine']);

export interface VerdictProblem { readonly path: readonly string[]; readonly problem: string }

/** The catalogue reply for a reason, with placeholders where the catalogue takes a domain. */
export function defaultReply(action: 'tempfail' | 'reject', reason: Reason): FailReply {
  if (action === 'tempfail') {
    if (reason === 'spf-fail') return REPLIES.spfTemperror();
    if (reason === 'auth-temperror') return REPLIES.authTemperror();
    return REPLIES.policyTempfail();
  }
  switch (reason) {
    // names the record that decided, not the author domain: a subdomain inherits sp=/np=
    case 'dmarc-policy': return REPLIES.dmarcReject('{dmarc_domain}', '{dmarc_published}');
    case 'spf-fail': return REPLIES.spfFail('{spf_domain}');
    case 'dkim-required': return REPLIES.dkimRequired();
    case 'multiple-from': return REPLIES.multipleFrom();
    case 'from-count': return REPLIES.fromCount();
    default: return REPLIES.policyReject();
  }
}

/**
 * RFC 7372 §3.1 for a rule that requires DKIM and names no reply of its own: no passing
 * signature (5.7.20), passing ones but none by the author's domain (5.7.22), or author-matched
 * ones the rule still did not accept, e.g. not from a required signer (5.7.21).
 */
export function dkimReply(facts: Facts): PermReply {
  const passing = (facts.dkim ?? []).filter((d) => d.result === 'pass');
  if (passing.length === 0) return REPLIES.dkimRequired();
  if (!passing.some((d) => d.aligned)) return REPLIES.dkimNoAuthor();
  return REPLIES.dkimNotAcceptable();
}

function checkReply(spec: RuleSpec, action: 'tempfail' | 'reject', reason: Reason, problems: VerdictProblem[]): FailReply | null {
  const fallback = defaultReply(action, reason);
  const code = spec.reply?.code ?? fallback.code;
  const enhanced = spec.reply?.enhanced ?? fallback.enhanced;
  const allowed: readonly number[] = action === 'tempfail' ? TEMP_CODES : PERM_CODES;
  const before = problems.length;
  if (!allowed.includes(code)) {
    problems.push({ path: ['reply', 'code'], problem: `${action} needs a ${action === 'tempfail' ? '4xx' : '5xx'} code (one of ${allowed.join(', ')}), got ${code}` });
  } else if (enhanced[0] !== String(code)[0]) {
    problems.push({ path: ['reply', spec.reply?.enhanced ? 'enhanced' : 'code'], problem: `enhanced code ${enhanced} does not match reply code ${code}: the class must agree (RFC 3463 §2)` });
  }
  return problems.length > before ? null : { code, enhanced, text: spec.reply?.text ?? fallback.text } as FailReply;
}

function checkOptions(spec: RuleSpec, problems: VerdictProblem[]): void {
  const action = spec.action;
  if (spec.reply && action !== 'tempfail' && action !== 'reject') problems.push({ path: ['reply'], problem: `reply applies to tempfail and reject, not to ${action}` });
  if (spec.headers && action !== 'tag' && action !== 'quarantine') problems.push({ path: ['headers'], problem: `headers apply to tag and quarantine, not to ${action}` });
  if (spec.mailbox && action !== 'quarantine') problems.push({ path: ['mailbox'], problem: `mailbox applies to quarantine, not to ${action}` });
  spec.headers?.forEach((h, i) => {
    if (RESERVED_HEADERS.has(h.name.toLowerCase())) problems.push({ path: ['headers', String(i), 'name'], problem: `${h.name} is written by Postern itself` });
  });
}

/**
 * The verdict builder of a rule, or null with problems. Constant verdicts are built once;
 * a reply with placeholders is rendered from the facts of each message.
 */
export function compileVerdict(spec: RuleSpec, reason: Reason, problems: VerdictProblem[]): ((facts: Facts) => Verdict) | null {
  const before = problems.length;
  checkOptions(spec, problems);
  const rule = spec.name;
  const extra: readonly HeaderField[] = (spec.headers ?? []).map((h) => Object.freeze({ name: h.name, value: h.value }));
  let verdict: Verdict | null = null;
  let render: ((facts: Facts) => Verdict) | null = null;
  switch (spec.action) {
    case 'accept':
      verdict = { action: 'accept', rule, reason };
      break;
    case 'tag':
      verdict = { action: 'tag', rule, reason, headers: [{ name: 'X-Postern-Verdict', value: `tag; rule=${rule}` }, ...extra] };
      break;
    case 'quarantine':
      verdict = {
        action: 'quarantine', rule, reason,
        headers: [{ name: 'X-Postern-Quarantine', value: `yes; rule=${rule}` }, { name: 'X-Postern-Verdict', value: `quarantine; rule=${rule}` }, ...extra],
        ...(spec.mailbox ? { mailbox: spec.mailbox } : {}),
      };
      break;
    case 'tempfail':
    case 'reject': {
      const reply = checkReply(spec, spec.action, reason, problems);
      if (!reply) break;
      const compiled = compileTemplate(reply.text, rule);
      if ('error' in compiled) {
        problems.push({ path: spec.reply?.text ? ['reply', 'text'] : ['action'], problem: compiled.error });
        break;
      }
      const template = compiled.template;
      const make = (text: string): Verdict => deepFreeze(spec.action === 'tempfail'
        ? { action: 'tempfail', rule, reason, reply: { ...(reply as TempReply), text } }
        : { action: 'reject', rule, reason, reply: { ...(reply as PermReply), text } });
      const text = constantText(template);
      if (spec.action === 'reject' && reason === 'dkim-required' && !spec.reply) {
        render = (facts) => { const r = dkimReply(facts); return deepFreeze({ action: 'reject', rule, reason, reply: r }); };
      } else if (text !== null) verdict = make(text);
      else render = (facts) => make(renderTemplate(template, facts));
      break;
    }
  }
  if (problems.length > before) return null;
  if (render) return render;
  const fixed = deepFreeze(verdict as Verdict);
  return () => fixed;
}
