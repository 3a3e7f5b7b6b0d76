/**
 * Reply text templates: "Rejected by DMARC policy: {from_domain} publishes p=reject". Parsed
 * at load (an unknown placeholder is a load error), rendered per message. Inserted values come
 * from the sender, so they are reduced to printable ASCII without spaces and capped: the text
 * goes on the wire verbatim (RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets).
 */
import type { Facts } from '../core/facts.ts';

export const TEMPLATE_VARS = ['from_domain', 'sender_domain', 'spf_domain', 'dmarc_policy', 'dmarc_domain', 'dmarc_published', 'ip', 'rule'] as const;
export type TemplateVar = (typeof TEMPLATE_VARS)[number];

export type TemplatePart = { readonly literal: string } | { readonly variable: Exclude<TemplateVar, 'rule'> };
export type Template = readonly TemplatePart[];

/** Longest template text accepted at load, leaving room for the code, values and session id. */
export const MAX_TEMPLATE_LENGTH = 300;
const MAX_VALUE_LENGTH = 255;
const MAX_RENDERED_LENGTH = 420;

const PLACEHOLDER = /\{([^{}]*)\}/g;

function isTemplateVar(name: string): name is TemplateVar {
  return (TEMPLATE_VARS as readonly string[]).includes(name);
}

/** Parse a template; `{rule}` is substituted now since the rule name is known at load. */
export function compileTemplate(text: string, ruleName: string): { template: Template } | { error: string } {
  if (!/^[\x20-\x7e]+$/.test(text)) return { error: 'reply text must be one line of printable ASCII' };
  if (text.length > MAX_TEMPLATE_LENGTH) return { error: `reply text is longer than ${MAX_TEMPLATE_LENGTH} characters` };
  const parts: TemplatePart[] = [];
  let literal = '';
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const name = m[1] ?? '';
    if (!isTemplateVar(name)) return { error: `unknown placeholder {${name}} (known: ${TEMPLATE_VARS.map((v) => `{${v}}`).join(', ')})` };
    literal += text.slice(last, m.index);
    last = m.index + m[0].length;
    if (name === 'rule') {
      literal += ruleName;
      continue;
    }
    if (literal) parts.push({ literal });
    literal = '';
    parts.push({ variable: name });
  }
  literal += text.slice(last);
  if (/[{}]/.test(literal)) return { error: 'unbalanced { or } in reply text' };
  if (literal) parts.push({ literal });
  return { template: parts };
}

/** A sender-controlled value made safe for a reply line. */
export function sanitizeValue(value: string | null | undefined): string {
  const clean = (value ?? '').replace(/[^\x21-\x7e]/g, '?').slice(0, MAX_VALUE_LENGTH);
  return clean || 'unknown';
}

function variableValue(name: Exclude<TemplateVar, 'rule'>, facts: Facts): string | null {
  switch (name) {
    case 'from_domain': return facts.message?.fromDomain ?? facts.dmarc?.domain ?? null;
    case 'sender_domain': return facts.envelope.senderDomain;
    case 'spf_domain': return facts.spf.domain;
    case 'dmarc_policy': return facts.dmarc?.policy ?? 'absent';
    // where the applied record was found, and what it says there ("sp=reject"); facts without
    // them (older decision records) fall back to the author domain and p=
    case 'dmarc_domain': return facts.dmarc?.published?.domain ?? facts.dmarc?.domain ?? facts.message?.fromDomain ?? null;
    case 'dmarc_published': {
      const applied = facts.dmarc?.applied;
      return applied ? `${applied.tag}=${applied.value}` : `p=${facts.dmarc?.policy ?? 'absent'}`;
    }
    case 'ip': return facts.client.ip;
  }
}

/** The text of a template without placeholders, or null when it needs the facts. */
export function constantText(template: Template): string | null {
  let out = '';
  for (const part of template) {
    if (!('literal' in part)) return null;
    out += part.literal;
  }
  return out.slice(0, MAX_RENDERED_LENGTH);
}

export function renderTemplate(template: Template, facts: Facts): string {
  let out = '';
  for (const part of template) out += 'literal' in part ? part.literal : sanitizeValue(variableValue(part.variable, facts));
  return out.slice(0, MAX_RENDERED_LENGTH);
}
