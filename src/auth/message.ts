import type { Readable } from 'node:stream';
import { arc, type ARCData, type ARCResult, type DKIMResult, type DKIMVerifyResult, type DNSResolver } from 'mailauth';
import { evaluateDmarc } from 'mailauth/lib/dmarc/index.js';
import type { ArcFacts, DkimSignatureFacts, DmarcFacts, DmarcPolicy } from '../core/facts.ts';
import { buildAuthResults } from './auth-results.ts';
import { Deadline, deadlineResolver } from './deadline.ts';
import { createKeyMemo, type KeyMemo } from './dkim-keys.ts';
import { verifyDkim } from './dkim-verifier.ts';
import { publishedOf } from './published.ts';

import { domainOf, normaliseDomain } from '../core/domain.ts';
import { reasonOf, toAuthResult, toDmarcPolicy } from './normalise.ts';
import type { SpfOutcome } from './spf.ts';

/**
 * DKIM + ARC + DMARC at end of DATA, composed as mailauth's authenticate() does
 * (lib/mailauth.js), with three differences: SPF comes from MAIL FROM time (checkSpf), and
 * there is no BIMI, no ARC sealing and no trustReceived.
 */

export interface MessageAuthInput {
  /** The message as received (CRLF line endings), before we add any header. */
  readonly message: Buffer | Readable;
  /** Client IP, reported as smtp.remote-ip of arc= in strict mode (RFC 8617 §6). */
  readonly ip: string;
  /** MAIL FROM; '' for the null reverse-path. */
  readonly sender: string;
  readonly spf: SpfOutcome;
  /** Our host name, the authserv-id. */
  readonly hostname: string;
  readonly resolver: DNSResolver;
  readonly strict: boolean;
  /** Keys shorter than this give dkim=policy (weak-key). */
  readonly minBitLength: number;
  /** Milliseconds since the epoch for the t=/x= checks (the Clock seam); default: now. */
  readonly now?: number;
  /**
   * Time for DKIM, ARC and DMARC after the message's last byte was read. Past it every pending
   * and later DNS lookup fails as a timeout (the checks waiting on them are temperror), and a
   * verification still running a moment later is abandoned as temperror. Unset: no limit.
   */
  readonly timeoutMs?: number;
  /** ARC sets validated at most; a longer chain is arc=fail without any key lookup. */
  readonly maxArcSets?: number;
  /**
   * Signature fields the header guard kept from the verifier, read once it is done: DKIM-Signature
   * fields over the cap (`count`, `max`), and DKIM-Signature / ARC-Message-Signature fields whose
   * h= lists more than `maxHeaderNames` names (`oversigned`).
   */
  readonly withheldSignatures?: {
    readonly count: () => number;
    readonly max: number;
    readonly oversigned?: () => number;
    readonly maxHeaderNames?: number;
  };
  /** Parsed DKIM/ARC keys kept across messages (one per gateway); default: parsed for this message only. */
  readonly keys?: KeyMemo;
}

/** A per-message cap that applied: a metric label (postern_message_limits_total). */
export type AuthLimit = 'dkim-signatures' | 'dkim-header-names' | 'arc-sets' | 'auth-deadline';

/** Why DMARC could not be evaluated (RFC 9989 §5.3.1), mailauth's words, or our own. */
export type DmarcSkipReason =
  | 'no-author-domain' | 'multiple-author-domains' | 'invalid-author-domain' | 'multiple-from-fields'
  | 'evaluation-failed';

export interface MessageAuthOutcome {
  /** One entry per DKIM-Signature; empty when the message is not signed. */
  readonly dkim: DkimSignatureFacts[];
  readonly arc: ArcFacts;
  /** null when there is no single author domain; dmarcSkipReason says why. */
  readonly dmarc: DmarcFacts | null;
  readonly dmarcSkipReason: DmarcSkipReason | null;
  readonly fromDomain: string | null;
  readonly messageId: string | null;
  /** Authentication-Results field value: "hostname;\r\n spf=...;\r\n dkim=...;\r\n arc=...;\r\n dmarc=...". */
  readonly authResults: string;
  /**
   * From header fields, and author mailboxes in them (RFC 5322 §3.6.2: one of each, unless
   * Sender). Absent when the header was not read (verification abandoned): not counted is not
   * zero, so a rule refusing messages without From does not refuse them.
   */
  readonly fromFields?: number;
  readonly fromAddresses?: number;
  /** The caps that applied to this message's checks. */
  readonly limits: readonly AuthLimit[];
}

type DmarcEvaluation = Awaited<ReturnType<typeof evaluateDmarc>>;
type DmarcResponse = Exclude<DmarcEvaluation['response'], false | null | undefined>;

/**
 * A key name the resolver refuses to ask for (EBADNAME: a selector label over 63 octets) can
 * never exist: report it as "no such name" so the signature is neutral (no key). mailauth
 * would make it a temperror, and a forged signature could then hold mail in tempfail.
 */
export function keyLookups(resolver: DNSResolver): DNSResolver {
  return async (name, rrtype) => {
    try {
      return await resolver(name, rrtype);
    } catch (err) {
      if ((err as { code?: string }).code === 'EBADNAME') {
        throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND', hostname: name });
      }
      throw err;
    }
  };
}

/** How long a verification may run on after its deadline before it is abandoned (CPU work only by then). */
const ABANDON_AFTER_MS = 1_000;

/**
 * Rejects only when reading the message fails (a stream error) or the authserv-id is not
 * usable (a configuration error). DNS trouble is a temperror result, never an exception.
 */
export async function authenticateMessage(input: MessageAuthInput): Promise<MessageAuthOutcome> {
  const timeoutMs = input.timeoutMs;
  if (timeoutMs === undefined) return verifyMessage(input, input.resolver, null);
  const deadline = new Deadline();
  // the clock runs from the message's last byte: the upload has its own limit (dataTimeoutMs)
  if (Buffer.isBuffer(input.message)) deadline.start(timeoutMs);
  else input.message.once('end', () => deadline.start(timeoutMs));
  const work = verifyMessage(input, deadlineResolver(input.resolver, deadline), deadline);
  let timer: NodeJS.Timeout | undefined;
  const abandon = deadline.passed.then(() => new Promise<MessageAuthOutcome>((resolve) => {
    timer = setTimeout(() => resolve(abandoned(input, timeoutMs)), ABANDON_AFTER_MS);
  }));
  try {
    return await Promise.race([work, abandon]);
  } finally {
    deadline.cancel();
    clearTimeout(timer);
  }
}

async function verifyMessage(input: MessageAuthInput, resolver: DNSResolver, deadline: Deadline | null): Promise<MessageAuthOutcome> {
  const { strict, minBitLength } = input;
  const dkimResolver = keyLookups(resolver);
  const keys = input.keys ?? createKeyMemo({ max: 16 });
  const dkimResult = await verifyDkim(input.message, {
    resolver: dkimResolver,
    sender: input.sender || undefined,
    minBitLength,
    strict,
    ...(input.now !== undefined ? { curTime: new Date(input.now) } : {}),
  }, {
    dkim: keys.lookup(dkimResolver),
    // arc() reuses this lookup because its resolver is the one verifyArc passes (lib/arc/index.js)
    arc: keys.lookup(resolver),
  });
  const arcOutcome = await verifyArc(dkimResult, input, resolver);
  const { evaluation, dmarcError } = await evaluate(dkimResult, arcOutcome.result, input, resolver);

  const response = evaluation?.response || null;
  const fromDomain = response ? normaliseDomain(response.status.header?.from) : dmarcError ? singleAuthorDomain(dkimResult) : null;
  const dkim = dkimFacts(dkimResult.results, evaluation);
  const dkimInfos = dkimResult.results.map((r) => r.info);
  const withheld = withheldOutcome(input.withheldSignatures);
  dkim.push(...withheld.dkim);
  dkimInfos.push(...withheld.infos);
  const dmarcPart = dmarcOf(response, dmarcError, fromDomain, evaluation);
  const limits: AuthLimit[] = [...withheld.limits];
  if (arcOutcome.capped) limits.push('arc-sets');
  const outcome: MessageAuthOutcome = {
    dkim,
    arc: arcOutcome.facts,
    dmarc: dmarcPart.dmarc,
    dmarcSkipReason: dmarcPart.skipReason,
    fromDomain,
    messageId: messageIdOf(dkimResult),
    authResults: buildAuthResults(input.hostname, { spf: input.spf.header, dkim: dkimInfos, arc: arcOutcome.info, dmarc: dmarcPart.info }),
    fromFields: dkimResult.fromFields,
    fromAddresses: dkimResult.headerFrom.length,
    limits,
  };
  return deadline?.hasPassed ? pastDeadline(outcome) : outcome;
}

async function evaluate(
  dkimResult: DKIMVerifyResult, arcResult: ARCResult | null, input: MessageAuthInput, resolver: DNSResolver,
): Promise<{ evaluation: DmarcEvaluation | null; dmarcError: string | null }> {
  const raw = input.spf.raw;
  try {
    const evaluation = await evaluateDmarc({
      headerFrom: dkimResult.headerFrom,
      fromFields: dkimResult.fromFields,
      // as authenticate(): the SPF-authenticated domain only when SPF passed
      spfDomains: raw && raw.status.result === 'pass' && raw.domain ? [raw.domain] : [],
      dkimDomains: dkimResult.results
        .filter((r) => r.status.result === 'pass' && r.signingDomain)
        .map((r) => ({ id: r.id, domain: r.signingDomain ?? '', aligned: r.status.aligned, underSized: r.status.underSized })),
      arcResult: arcResult ?? undefined,
      resolver,
      strict: input.strict,
    });
    return { evaluation, dmarcError: null };
  } catch (err) {
    return { evaluation: null, dmarcError: err instanceof Error ? err.message : String(err) };
  }
}

function dmarcOf(
  response: DmarcEvaluation['response'] | null, dmarcError: string | null, fromDomain: string | null, evaluation: DmarcEvaluation | null,
): { dmarc: DmarcFacts | null; skipReason: DmarcSkipReason | null; info: string } {
  if (response) {
    const applied = appliedTag(response, fromDomain ?? '');
    const dmarc: DmarcFacts = {
      result: toAuthResult(response.status.result),
      domain: fromDomain ?? '',
      policy: toDmarcPolicy(response.policy),
      ...(applied ? { applied } : {}),
      spfAligned: Boolean(response.alignment?.spf?.result),
      dkimAligned: Boolean(response.alignment?.dkim?.result),
      reason: reasonOf(response.status, response.error),
      ...publishedOf(response),
    };
    return { dmarc, skipReason: null, info: response.info };
  }
  if (dmarcError !== null && fromDomain) {
    const dmarc: DmarcFacts = { result: 'temperror', domain: fromDomain, policy: null, spfAligned: false, dkimAligned: false, reason: dmarcError };
    return { dmarc, skipReason: null, info: `dmarc=temperror (dmarc evaluation failed) header.from=${fromDomain}` };
  }
  const skipReason: DmarcSkipReason = dmarcError !== null ? 'evaluation-failed' : (evaluation?.reason ?? 'no-author-domain');
  // RFC 9989 §5.3.1: not evaluable; written as permerror so that no reader takes it for a
  // domain without a policy (RFC 9989 §11.5 suggests treating such messages as suspicious)
  return { dmarc: null, skipReason, info: `dmarc=permerror (${skipReason})` };
}

/**
 * The signatures the header guard withheld, as results. RFC 6376 §6.1: a verifier may limit
 * the signatures it evaluates; RFC 8601 §2.7.1 policy: signed, but not acceptable to us.
 * Reported once for each kind, whatever their number.
 */
function withheldOutcome(w: MessageAuthInput['withheldSignatures']): { dkim: DkimSignatureFacts[]; infos: string[]; limits: AuthLimit[] } {
  const out = { dkim: [] as DkimSignatureFacts[], infos: [] as string[], limits: [] as AuthLimit[] };
  const policy = (reason: string): DkimSignatureFacts => ({ result: 'policy', domain: '', selector: '', algorithm: '', aligned: false, reason });
  const overCount = w?.count() ?? 0;
  if (overCount > 0) {
    out.dkim.push(policy(`${overCount} more DKIM signature(s) not verified (auth.maxDkimSignatures ${w?.max ?? 0})`));
    out.infos.push(`dkim=policy (${overCount} more signatures not verified, at most ${w?.max ?? 0} per message)`);
    out.limits.push('dkim-signatures');
  }
  const oversigned = w?.oversigned?.() ?? 0;
  if (oversigned > 0) {
    const max = w?.maxHeaderNames ?? 0;
    out.dkim.push(policy(`${oversigned} signature(s) listing more than ${max} header names in h= not verified (auth.maxDkimHeaderNames ${max})`));
    out.infos.push(`dkim=policy (${oversigned} signatures with more than ${max} signed header names not verified)`);
    out.limits.push('dkim-header-names');
  }
  return out;
}

/** The deadline passed during the checks: what ended as temperror says so in its reason. */
function pastDeadline(outcome: MessageAuthOutcome): MessageAuthOutcome {
  const note = (reason: string): string => `${reason ? `${reason}; ` : ''}authentication deadline passed`;
  return {
    ...outcome,
    dkim: outcome.dkim.map((d) => (d.result === 'temperror' ? { ...d, reason: note(d.reason) } : d)),
    arc: outcome.arc.result === 'temperror' ? { ...outcome.arc, reason: note(outcome.arc.reason) } : outcome.arc,
    dmarc: outcome.dmarc?.result === 'temperror' ? { ...outcome.dmarc, reason: note(outcome.dmarc.reason) } : outcome.dmarc,
    limits: [...outcome.limits, 'auth-deadline'],
  };
}

/**
 * The verification outran its deadline by ABANDON_AFTER_MS although every lookup fails at
 * once by then: its result is not waited for. Everything is temperror, so the policy's
 * tempfail path decides (the sender retries), never a hung session.
 */
function abandoned(input: MessageAuthInput, timeoutMs: number): MessageAuthOutcome {
  const reason = `authentication abandoned ${ABANDON_AFTER_MS} ms after its deadline (auth.timeoutMs ${timeoutMs})`;
  return {
    dkim: [{ result: 'temperror', domain: '', selector: '', algorithm: '', aligned: false, reason }],
    arc: { result: 'temperror', reason },
    dmarc: null,
    dmarcSkipReason: 'evaluation-failed',
    fromDomain: null,
    messageId: null,
    authResults: buildAuthResults(input.hostname, {
      spf: input.spf.header,
      dkim: ['dkim=temperror (authentication deadline passed)'],
      arc: 'arc=temperror (authentication deadline passed)',
      dmarc: 'dmarc=temperror (authentication deadline passed)',
    }),
    limits: ['auth-deadline'],
  };
}

/** RFC 9989 §4.7 t=y: the policy applied is one step weaker than the one published. */
const TEST_MODE: Readonly<Record<DmarcPolicy, DmarcPolicy>> = { reject: 'quarantine', quarantine: 'none', none: 'none' };

/**
 * Which tag of the record at the Policy Domain applied, with its published value, so that a
 * refusal can say what the domain owner published: p= at the author domain itself; for a
 * subdomain sp= (or p= when there is no sp=), or np= when the author domain does not exist
 * (RFC 9989 §4.10.1). mailauth reports the applied policy and the record's tags; the choice
 * between sp= and np= is read back from the applied policy, and is 'sp' where both agree.
 */
function appliedTag(response: DmarcResponse, authorDomain: string): NonNullable<DmarcFacts['applied']> | null {
  const p = toDmarcPolicy(response.p);
  const applied = toDmarcPolicy(response.policy);
  if (!p || !applied || !response.policyDomain) return null;
  if (normaliseDomain(response.policyDomain) === authorDomain) return { tag: 'p', value: p };
  const record = (response as { record?: { sp?: unknown } }).record; // mailauth keeps the raw record as a hidden property
  const sp = toDmarcPolicy(record?.sp);
  const inherited = sp ? { tag: 'sp' as const, value: sp } : { tag: 'p' as const, value: p };
  const np = toDmarcPolicy(response.np);
  if (!np || np === inherited.value) return inherited;
  const effective = (v: DmarcPolicy): DmarcPolicy => (response.testMode ? TEST_MODE[v] : v);
  return effective(np) === applied && effective(inherited.value) !== applied ? { tag: 'np', value: np } : inherited;
}

async function verifyArc(
  dkimResult: DKIMVerifyResult,
  input: MessageAuthInput,
  resolver: DNSResolver,
): Promise<{ facts: ArcFacts; info: string; result: ARCResult | null; capped: boolean }> {
  const sets = Array.isArray(dkimResult.arc?.chain) ? dkimResult.arc.chain.length : 0;
  if (input.maxArcSets !== undefined && sets > input.maxArcSets) {
    // RFC 8617 §5.1.1 fails a chain over 50 sets unseen; ours is shorter: the same, earlier
    const reason = `ARC chain of ${sets} sets is longer than auth.maxArcSets (${input.maxArcSets})`;
    return { facts: { result: 'fail', reason }, info: `arc=fail (chain of ${sets} sets, at most ${input.maxArcSets} validated)`, result: null, capped: true };
  }
  try {
    // dkimVerify's ARC data has chain: false when there is none, which arc() handles; its
    // declared type (ARCSigningData) differs from arc()'s parameter only in that
    const data = (dkimResult.arc ?? { chain: false }) as unknown as ARCData;
    const result = await arc(data, { resolver, minBitLength: input.minBitLength, strict: input.strict, ip: input.ip });
    const facts: ArcFacts = { result: toAuthResult(result.status.result), reason: reasonOf(result.status), ...arcChainFacts(result) };
    // the lenient mode leaves arc=none out of the header; we always write it
    return { facts, info: result.info || `arc=${facts.result}`, result, capped: false };
  } catch (err) {
    const reason = `arc evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
    return { facts: { result: 'temperror', reason }, info: 'arc=temperror (arc evaluation failed)', result: null, capped: false };
  }
}

/**
 * Who sealed a validated chain and what its newest sealer said about DMARC (RFC 8617 §5.2:
 * only a chain that validated says anything; its AAR is the sealer's claim, which a policy may
 * trust for a sealer it names). Nothing for a chain that did not validate.
 */
function arcChainFacts(result: ARCResult): Pick<ArcFacts, 'sealers' | 'selectors' | 'sealerDmarc'> {
  if (result.status.result !== 'pass' || !Array.isArray(result.chain)) return {};
  const sealers = result.chain.map((set) => normaliseDomain(String(set['arc-seal']?.parsed?.d?.value ?? '')));
  const selectors = result.chain.map((set) => String(set['arc-seal']?.parsed?.s?.value ?? ''));
  const dmarc = (result.authenticationResults as { dmarc?: { result?: unknown; header?: { from?: unknown } } } | undefined)?.dmarc;
  const from = typeof dmarc?.header?.from === 'string' ? normaliseDomain(dmarc.header.from) : '';
  return {
    sealers,
    selectors,
    sealerDmarc: dmarc ? { result: toAuthResult(dmarc.result), fromDomain: from || null } : null,
  };
}

/**
 * Per-signature facts. `aligned` follows the fix-up authenticate() does after DMARC: a passing
 * signature is aligned when DMARC counted it; a failing one keeps the verifier's relaxed guess,
 * narrowed to an exact match when the record asks for strict DKIM alignment (adkim=s).
 */
function dkimFacts(results: readonly DKIMResult[], evaluation: DmarcEvaluation | null): DkimSignatureFacts[] {
  const response = evaluation?.response || null;
  const alignedSet = evaluation?.dkimAligned;
  const from = normaliseDomain(response ? response.status.header?.from : '');
  return results
    .filter((r) => !(r.status.result === 'none' && !r.signingDomain)) // "message not signed"
    .map((r) => {
      const domain = normaliseDomain(r.signingDomain);
      let aligned = Boolean(r.status.aligned);
      if (alignedSet && response) {
        if (r.status.result === 'pass') aligned = alignedSet.has(domain);
        else if (response.alignment.dkim.strict) aligned = aligned && domain === from;
      }
      return {
        result: toAuthResult(r.status.result),
        domain,
        selector: r.selector ?? '',
        algorithm: r.algo ?? '',
        aligned,
        reason: reasonOf(r.status),
      };
    });
}

/** The one author domain when evaluateDmarc itself failed: one From field, one domain. */
function singleAuthorDomain(dkimResult: DKIMVerifyResult): string | null {
  const domains = new Set(dkimResult.headerFrom.map(domainOf));
  const [only] = domains;
  return dkimResult.fromFields === 1 && domains.size === 1 && only ? only : null;
}

/** The first Message-ID field, unfolded (RFC 5322 §3.6.4). */
function messageIdOf(dkimResult: DKIMVerifyResult): string | null {
  const row = dkimResult.headers?.parsed.find((h) => h.key === 'message-id');
  if (!row) return null;
  const text = row.line.toString('utf8');
  const value = text.slice(text.indexOf(':') + 1).replace(/\r?\n/g, '').trim();
  return value || null;
}
