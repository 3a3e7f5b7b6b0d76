/**
 * JSON Schemas for editors (yaml-language-server, VS Code, IntelliJ), generated from the very
 * zod schemas the loader validates with (schema.ts, testing/cases.ts), so they cannot disagree
 * with it. policies/policy.schema.json and policies/policy-test.schema.json are this output;
 * a test fails when they are stale (`postern policy schema > policies/policy.schema.json`).
 */
import { z } from 'zod';
import { caseSchema } from './testing/cases.ts';
import { MODES, ruleSchema } from './schema.ts';
import type { MatchKey } from './types.ts';

/** Shown by editors on hover and completion; the full text is policies/README.md. */
const MATCH_DOCS: Record<MatchKey, string> = {
  ip: 'Client IP addresses or CIDRs (v4, v6), or file: lists',
  helo: 'HELO/EHLO name: domain patterns or an address literal like [192.0.2.1]',
  ptr: 'Forward-confirmed reverse name of the client: domain patterns',
  sender_domain: 'MAIL FROM domain: example.com, .example.com (subdomains), or file: lists',
  from_domain: 'RFC 5322 From domain: domain patterns or file: lists',
  recipient: 'Any recipient: addresses or domain patterns',
  spf: 'SPF result(s)',
  dkim: 'Any DKIM signature with one of these results; none = not signed',
  dkim_aligned: 'A passing DKIM signature aligned with From exists (true) or not (false)',
  dkim_domain: 'd= of a passing DKIM signature: domain patterns',
  arc: 'ARC result(s)',
  dmarc: 'DMARC result(s)',
  dmarc_policy: 'Policy the From domain publishes (p=, sp=, np=), absent for no DMARC record',
  tier: 'Reputation tier of the client',
  auth_temperror: 'Any of SPF, DKIM, ARC, DMARC ended in temperror',
  first_seen_within: 'The message was first offered less than this long ago (30m, 4h, 1h30m)',
  multiple_from: 'More than one From field, or more than one author in From (true), or a single author (false)',
  from_count: 'Number of From header fields: a count (0) or a comparison (">1", ">=2", "<1"), or a list of them (any)',
  arc_chain: 'ARC chain: pass (validated), fail, none (no ARC headers)',
  arc_sealer: 'Newest sealer (ARC-Seal d=) of a validated chain: domain patterns or file: lists (trusted sealers)',
  arc_dmarc: 'DMARC result the newest sealer recorded (its ARC-Authentication-Results) for this From domain',
};

type Json = Record<string, unknown>;

/** `oneOrMany` (a z.preprocess pipe) accepts one value or a list: say so, as the loader does. */
function override(ctx: { zodSchema: unknown; jsonSchema: Json }): void {
  const def = (ctx.zodSchema as { _zod: { def: { type: string; in?: { _zod: { def: { type: string } } } } } })._zod.def;
  if (def.type !== 'pipe' || def.in?._zod.def.type !== 'transform') return;
  const { items } = ctx.jsonSchema;
  for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
  ctx.jsonSchema.anyOf = [items, { type: 'array', minItems: 1, items }];
}

/** Adds the MATCH_DOCS descriptions to every mapping of match keys (match: and not:). */
function describeMatchKeys(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(describeMatchKeys);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const props = (node as Json).properties as Record<string, Json> | undefined;
  if (props && 'dmarc_policy' in props) {
    for (const [key, doc] of Object.entries(MATCH_DOCS)) if (props[key]) props[key].description = doc;
  }
  for (const value of Object.values(node)) describeMatchKeys(value);
}

function generate(schema: z.ZodType, title: string): Json {
  const json = z.toJSONSchema(schema, { io: 'input', override }) as Json;
  return { $schema: json.$schema, title, ...json };
}

export function policyFileJsonSchema(): Json {
  const file = z.strictObject({
    mode: z.enum(MODES).optional().describe('enforce (default) or monitor: every rule of this file only reports what it would do'),
    rules: z.array(ruleSchema).describe('Rules in order; across files (lexical order) the first rule that matches decides'),
  });
  const json = generate(file, 'Postern policy file (policies/*.yaml)');
  describeMatchKeys(json);
  return json;
}

export function policyTestJsonSchema(): Json {
  return generate(z.array(caseSchema), 'Postern policy tests (policies/*.test.yaml)');
}
