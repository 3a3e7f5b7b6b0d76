/**
 * The `facts:` of a policy test case → Facts. Names are the rule match keys, so a case reads
 * like the rule it tests: `{ dmarc: fail, dmarc_policy: reject, from_domain: bank.example }`.
 * What a case leaves out is the plainest value: nothing authenticated and nothing published
 * (SPF/DKIM/ARC/DMARC none), a neutral client, first seen now. Keys that are derived from
 * other facts (dkim_aligned, auth_temperror, arc_chain, arc_dmarc) shape the facts they come
 * from; afterwards every key given is checked against the facts built, so a case whose facts
 * contradict each other (`dkim: fail` with `dkim_aligned: true`) is an error, not a silent pass.
 */
import { z } from 'zod';
import { AUTH_RESULTS, TIERS, type AuthResult, type DkimSignatureFacts, type Facts } from '../../core/facts.ts';
import { ARC_CHAIN_STATES, DMARC_POLICY_VALUES, DURATION, parseDuration } from '../schema.ts';

const result = z.enum(AUTH_RESULTS, { error: `expected one of ${AUTH_RESULTS.join(', ')}` });
const oneOrMany = <T extends z.ZodType>(item: T) => z.union([item, z.array(item)]);
const domain = z.string({ error: 'expected a domain' }).min(1, 'expected a domain');
const signature = z.strictObject({
  result,
  domain: domain.optional(),
  selector: z.string().optional(),
  aligned: z.boolean().optional(),
});

/** The facts of a case. Same names as the match keys; `sender` and `first_seen` besides. */
export const caseFactsSchema = z.strictObject({
  ip: z.string({ error: 'expected an IP address' }).optional().describe('Client IP address'),
  helo: z.string().optional().describe('HELO/EHLO name'),
  ptr: z.string().nullable().optional().describe('Forward-confirmed reverse name of the client, null for none'),
  tier: z.enum(TIERS).optional().describe('Reputation tier of the client'),
  sender: z.string().optional().describe('MAIL FROM address ("" for the null sender <>)'),
  sender_domain: domain.optional().describe('MAIL FROM domain (default: the domain of sender)'),
  from_domain: domain.nullable().optional().describe('RFC 5322 From domain'),
  recipient: oneOrMany(z.string()).optional().describe('Recipient address(es)'),
  spf: result.optional().describe('SPF result'),
  dkim: z.union([result, z.array(z.union([result, signature]))]).optional()
    .describe('DKIM result, or one entry per signature: a result or { result, domain, selector, aligned }'),
  dkim_domain: oneOrMany(domain).optional().describe('d= of the signatures (default: from_domain)'),
  dkim_aligned: z.boolean().optional().describe('A passing signature aligned with From exists'),
  arc: result.optional().describe('ARC result'),
  arc_chain: z.enum(ARC_CHAIN_STATES).optional().describe('ARC chain: pass, fail or none'),
  arc_sealer: oneOrMany(domain).optional().describe('ARC sealers, oldest first; the last one is the newest sealer'),
  arc_dmarc: result.optional().describe('DMARC result the newest sealer recorded for from_domain'),
  dmarc: result.optional().describe('DMARC result'),
  dmarc_policy: z.enum(DMARC_POLICY_VALUES).optional().describe('Published DMARC policy, absent for no record'),
  auth_temperror: z.boolean().optional().describe('Any check ended in temperror (checked against the results given)'),
  multiple_from: z.boolean().optional().describe('More than one From field or author (true: two From fields)'),
  from_count: z.number().int().min(0).optional().describe('From header fields (default: 2 with multiple_from: true, else 1)'),
  first_seen: z.union([z.number().int().min(0), z.string().regex(DURATION, 'expected a duration like 30m, 4h or 1h30m')]).optional()
    .describe('How long ago the message was first offered: seconds or a duration (for first_seen_within)'),
  tls: z.boolean().optional().describe('The client used STARTTLS'),
  size: z.number().int().min(0).optional().describe('Message size in bytes'),
});

export type CaseFacts = z.output<typeof caseFactsSchema>;

const list = <T>(v: T | readonly T[] | undefined): readonly T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v as T]);

function dkimFacts(c: CaseFacts, from: string | null): DkimSignatureFacts[] {
  const domains = list(c.dkim_domain);
  const entries = c.dkim === undefined
    ? (domains.length > 0 || c.dkim_aligned === true ? ['pass' as const] : [])
    : list(c.dkim);
  return entries.map((entry, i) => {
    const e = typeof entry === 'string' ? { result: entry } : entry;
    const d = (e.domain ?? domains[i] ?? domains[0] ?? from ?? 'unknown.invalid').toLowerCase();
    return {
      result: e.result, domain: d, selector: e.selector ?? 's1', algorithm: 'rsa-sha256',
      aligned: e.aligned ?? c.dkim_aligned ?? d === from, reason: '',
    };
  });
}

function arcFacts(c: CaseFacts, from: string | null): Facts['arc'] {
  const sealers = list(c.arc_sealer).map((s) => s.toLowerCase());
  const chain = c.arc_chain ?? (sealers.length > 0 || c.arc_dmarc !== undefined ? 'pass' : undefined);
  const arc: AuthResult = c.arc ?? chain ?? 'none';
  if (arc !== 'pass') return { result: arc, reason: '' };
  return {
    result: 'pass', reason: '',
    sealers: sealers.length > 0 ? sealers : ['sealer.invalid'],
    sealerDmarc: c.arc_dmarc === undefined ? null : { result: c.arc_dmarc, fromDomain: from },
  };
}

function senderOf(c: CaseFacts): { sender: string; senderDomain: string } {
  if (c.sender !== undefined) {
    const at = c.sender.lastIndexOf('@');
    return { sender: c.sender, senderDomain: c.sender_domain?.toLowerCase() ?? (at >= 0 ? c.sender.slice(at + 1).toLowerCase() : '') };
  }
  const senderDomain = c.sender_domain?.toLowerCase() ?? 'sender.invalid';
  return { sender: `sender@${senderDomain}`, senderDomain };
}

/**
 * From fields and authors: one of each unless the case says otherwise. `multiple_from: true`
 * alone is two From fields; `from_count: 0` is no From (and so no author).
 */
function fromCounts(c: CaseFacts): { fromFields: number; fromAddresses: number } {
  const fromFields = c.from_count ?? (c.multiple_from === true ? 2 : 1);
  return { fromFields, fromAddresses: c.multiple_from === true ? Math.max(2, fromFields) : fromFields };
}

export function caseFacts(c: CaseFacts): Facts {
  const from = c.from_domain === undefined || c.from_domain === null ? null : c.from_domain.toLowerCase();
  const { sender, senderDomain } = senderOf(c);
  const dkim = dkimFacts(c, from);
  const spf: AuthResult = c.spf ?? 'none';
  const policy = c.dmarc_policy === undefined || c.dmarc_policy === 'absent' ? null : c.dmarc_policy;
  const hasDmarc = c.dmarc !== undefined || policy !== null;
  return {
    client: { ip: c.ip ?? '192.0.2.1', ptr: c.ptr ?? null, helo: c.helo ?? 'mail.sender.invalid', tls: c.tls ?? false, tier: c.tier ?? 'neutral' },
    envelope: { sender, senderDomain, recipients: [...list(c.recipient)] },
    spf: { result: spf, domain: senderDomain || (c.helo ?? 'mail.sender.invalid'), identity: senderDomain ? 'mailfrom' : 'helo', reason: '' },
    message: {
      fromDomain: from, messageId: null, size: c.size ?? 1000,
      firstSeenSeconds: typeof c.first_seen === 'string' ? parseDuration(c.first_seen) : (c.first_seen ?? 0),
      ...fromCounts(c),
    },
    dkim,
    arc: arcFacts(c, from),
    ...(hasDmarc ? {
      dmarc: {
        result: c.dmarc ?? 'none', domain: from ?? '', policy,
        spfAligned: spf === 'pass' && senderDomain === from, dkimAligned: dkim.some((s) => s.result === 'pass' && s.aligned), reason: '',
      },
    } : {}),
  };
}
