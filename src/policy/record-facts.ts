/**
 * The inverse of observability/decision-record.ts: a decision record (v1) back into the Facts
 * the policy decided on, so `postern replay` and `postern explain` can decide it again. Records
 * come from files an operator hands us (logs, decisions.file): every field is checked, and a
 * record that does not carry what a decision needs is refused with a reason, never guessed.
 */
import { AUTH_RESULTS, DMARC_POLICIES, TIERS, type AuthResult, type DkimSignatureFacts, type DmarcFacts, type DmarcPolicy, type DmarcPublished, type Facts, type Tier } from '../core/facts.ts';
import { ACTIONS, type Action } from '../core/verdict.ts';

const RESULTS: ReadonlySet<string> = new Set(AUTH_RESULTS);
const TIER_SET: ReadonlySet<string> = new Set(TIERS);
const POLICIES: ReadonlySet<string> = new Set(DMARC_POLICIES);
const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS);

export interface RecordedDecision {
  readonly facts: Facts;
  /** 'mail': refused at MAIL FROM, only the MAIL-stage facts exist. */
  readonly stage: 'mail' | 'data';
  /** The policy's verdict when the record was written. */
  readonly verdict: { readonly action: Action; readonly rule: string };
  readonly wouldHave: { readonly action: Action; readonly rule: string } | null;
  /** For reports and examples: session and time when the record has them. */
  readonly session: string;
  readonly time: string;
}

/** Why a record was not re-decided (counted by replay). */
export type SkipReason = 'not-v1' | 'no-verdict' | 'malformed';

type Obj = Record<string, unknown>;

class Malformed extends Error {}

function obj(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Malformed(`${what}: expected an object`);
  return value as Obj;
}
function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new Malformed(`${what}: expected a string`);
  return value;
}
function strOrNull(value: unknown, what: string): string | null {
  return value === null || value === undefined ? null : str(value, what);
}
function bool(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new Malformed(`${what}: expected true or false`);
  return value;
}
function num(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Malformed(`${what}: expected a number`);
  return value;
}
function result(value: unknown, what: string): AuthResult {
  if (typeof value !== 'string' || !RESULTS.has(value)) throw new Malformed(`${what}: not an authentication result`);
  return value as AuthResult;
}
function action(value: unknown, what: string): Action {
  if (typeof value !== 'string' || !ACTION_SET.has(value)) throw new Malformed(`${what}: not an action`);
  return value as Action;
}

function dmarcPolicy(value: unknown, what: string): DmarcPolicy {
  if (typeof value !== 'string' || !POLICIES.has(value)) throw new Malformed(`${what}: not a DMARC policy`);
  return value as DmarcPolicy;
}
function oneOf<T extends string>(value: unknown, allowed: readonly T[], what: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) throw new Malformed(`${what}: expected one of ${allowed.join(', ')}`);
  return value as T;
}
function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) throw new Malformed(`${what}: expected a list`);
  return value.map((x) => str(x, what));
}

function dkimOf(list: unknown): DkimSignatureFacts[] {
  if (!Array.isArray(list)) throw new Malformed('auth.dkim: expected a list');
  return list.map((raw: unknown, i) => {
    const d = obj(raw, `auth.dkim[${i}]`);
    return {
      result: result(d.result, `auth.dkim[${i}].result`), domain: str(d.domain, `auth.dkim[${i}].domain`),
      selector: str(d.selector ?? '', 'selector'), algorithm: str(d.algorithm ?? '', 'algorithm'),
      aligned: bool(d.aligned, `auth.dkim[${i}].aligned`), reason: str(d.reason ?? '', 'reason'),
    };
  });
}

function arcOf(raw: unknown): NonNullable<Facts['arc']> {
  const a = obj(raw, 'auth.arc');
  const sealers = a.sealers === undefined ? undefined : (Array.isArray(a.sealers) ? a.sealers.map((s) => str(s, 'auth.arc.sealers')) : []);
  const selectors = a.selectors === undefined ? undefined : strings(a.selectors, 'auth.arc.selectors');
  const said = a.sealer_dmarc === undefined || a.sealer_dmarc === null ? a.sealer_dmarc : obj(a.sealer_dmarc, 'auth.arc.sealer_dmarc');
  return {
    result: result(a.result, 'auth.arc.result'), reason: str(a.reason ?? '', 'reason'),
    ...(sealers ? { sealers } : {}),
    ...(selectors ? { selectors } : {}),
    ...(said === undefined ? {} : { sealerDmarc: said && { result: result(said.result, 'auth.arc.sealer_dmarc.result'), fromDomain: strOrNull(said.from_domain, 'auth.arc.sealer_dmarc.from_domain') } }),
  };
}

function appliedOf(raw: unknown): NonNullable<DmarcFacts['applied']> {
  const a = obj(raw, 'auth.dmarc.applied');
  return { tag: oneOf(a.tag, ['p', 'sp', 'np'], 'auth.dmarc.applied.tag'), value: dmarcPolicy(a.value, 'auth.dmarc.applied.value') };
}

/** The published record; written by the builder since it was added to v1, absent in older records. */
function publishedOf(raw: unknown): DmarcPublished {
  const p = obj(raw, 'auth.dmarc.published');
  const what = (key: string): string => `auth.dmarc.published.${key}`;
  const maybe = (v: unknown, key: string): DmarcPolicy | null => (v === null || v === undefined ? null : dmarcPolicy(v, what(key)));
  return {
    domain: str(p.domain, what('domain')), p: dmarcPolicy(p.p, what('p')), sp: maybe(p.sp, 'sp'), np: maybe(p.np, 'np'),
    adkim: oneOf(p.adkim ?? 'r', ['r', 's'], what('adkim')), aspf: oneOf(p.aspf ?? 'r', ['r', 's'], what('aspf')),
    testing: bool(p.testing ?? false, what('testing')), psd: oneOf(p.psd ?? 'u', ['y', 'n', 'u'], what('psd')),
    fo: strOrNull(p.fo, what('fo')), discovery: oneOf(p.discovery ?? 'treewalk', ['treewalk'], what('discovery')),
    rua: strings(p.rua ?? [], what('rua')), ruf: strings(p.ruf ?? [], what('ruf')),
  };
}

function dmarcOf(raw: unknown): NonNullable<Facts['dmarc']> {
  const d = obj(raw, 'auth.dmarc');
  return {
    result: result(d.result, 'auth.dmarc.result'), domain: str(d.domain, 'auth.dmarc.domain'),
    policy: d.policy === null || d.policy === undefined ? null : dmarcPolicy(d.policy, 'auth.dmarc.policy'),
    ...(d.applied !== undefined ? { applied: appliedOf(d.applied) } : {}),
    spfAligned: bool(d.spf_aligned ?? false, 'auth.dmarc.spf_aligned'), dkimAligned: bool(d.dkim_aligned ?? false, 'auth.dmarc.dkim_aligned'),
    reason: str(d.reason ?? '', 'reason'),
    ...(d.published !== undefined ? { published: publishedOf(d.published) } : {}),
  };
}

function factsOf(r: Obj, stage: 'mail' | 'data'): Facts {
  const c = obj(r.client, 'client');
  const e = obj(r.envelope, 'envelope');
  const auth = obj(r.auth, 'auth');
  const spf = obj(auth.spf, 'auth.spf');
  const tier = str(c.tier, 'client.tier');
  if (!TIER_SET.has(tier)) throw new Malformed('client.tier: not a tier');
  const to = e.to;
  if (!Array.isArray(to)) throw new Malformed('envelope.to: expected a list');
  const identity = str(spf.identity, 'auth.spf.identity');
  const base: Facts = {
    client: { ip: str(c.ip, 'client.ip'), ptr: strOrNull(c.ptr, 'client.ptr'), helo: str(c.helo, 'client.helo'), tls: bool(c.tls, 'client.tls'), tier: tier as Tier },
    envelope: { sender: str(e.from, 'envelope.from'), senderDomain: str(e.sender_domain, 'envelope.sender_domain'), recipients: to.map((x) => str(x, 'envelope.to')) },
    spf: { result: result(spf.result, 'auth.spf.result'), domain: str(spf.domain, 'auth.spf.domain'), identity: identity === 'helo' ? 'helo' : 'mailfrom', reason: str(spf.reason ?? '', 'reason') },
  };
  if (stage === 'mail') return base;
  return {
    ...base,
    message: {
      fromDomain: strOrNull(r.from_domain, 'from_domain'), messageId: strOrNull(r.message_id, 'message_id'),
      size: num(r.size ?? 0, 'size'), firstSeenSeconds: num(r.first_seen ?? 0, 'first_seen'),
      ...(r.from_fields !== undefined ? { fromFields: num(r.from_fields, 'from_fields') } : {}),
      ...(r.from_addresses !== undefined ? { fromAddresses: num(r.from_addresses, 'from_addresses') } : {}),
    },
    dkim: auth.dkim === null || auth.dkim === undefined ? [] : dkimOf(auth.dkim),
    ...(auth.arc ? { arc: arcOf(auth.arc) } : {}),
    ...(auth.dmarc ? { dmarc: dmarcOf(auth.dmarc) } : {}),
  };
}

/** A parsed JSON line → the decision it records, or why it cannot be decided again. */
export function recordedDecision(value: unknown): RecordedDecision | { skip: SkipReason; detail: string } {
  if (typeof value !== 'object' || value === null || (value as Obj).v !== 1) return { skip: 'not-v1', detail: 'not a version 1 decision record' };
  const r = value as Obj;
  if (r.verdict === null || r.verdict === undefined) return { skip: 'no-verdict', detail: `no policy verdict (ended with ${String(r.reason)})` };
  try {
    const stage = r.stage === 'mail' ? 'mail' : r.stage === 'data' ? 'data' : null;
    if (stage === null) throw new Malformed('stage: expected mail or data');
    const v = obj(r.verdict, 'verdict');
    const would = r.would_have === undefined ? null : obj(r.would_have, 'would_have');
    return {
      facts: factsOf(r, stage),
      stage,
      verdict: { action: action(v.action, 'verdict.action'), rule: str(v.rule, 'verdict.rule') },
      wouldHave: would ? { action: action(would.action, 'would_have.action'), rule: str(would.rule, 'would_have.rule') } : null,
      session: typeof r.session === 'string' ? r.session : '',
      time: typeof r.time === 'string' ? r.time : typeof r.time === 'number' ? new Date(r.time).toISOString() : '',
    };
  } catch (err) {
    if (err instanceof Malformed) return { skip: 'malformed', detail: err.message };
    throw err;
  }
}
