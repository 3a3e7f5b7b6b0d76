/**
 * `postern verify`: authenticate one message file as if it had arrived over SMTP, with the
 * configured DNS and policies, and say what the backend would see (Authentication-Results)
 * and what the policy would do. No SMTP involved. The CLI (src/cli/verify.ts) prints it as
 * text or JSON and turns the verdict into the exit status.
 */
import fs from 'node:fs';
import type { Config } from '../config/schema.ts';
import { domainOf } from '../core/domain.ts';
import type { Facts } from '../core/facts.ts';
import { normaliseIp } from '../core/ip.ts';
import { REPLIES } from '../core/reply.ts';
import { ACCEPT_DEFAULT, type Decision, type Verdict } from '../core/verdict.ts';
import { checkSpf } from '../auth/spf.ts';
import { authenticateMessage } from '../auth/message.ts';
import { createResolver, mailauthResolver, parseServer } from '../dns/index.ts';
import { normaliseLineEndings } from '../message/line-endings.ts';
import { decide } from '../policy/decide.ts';
import { loadPolicies } from '../policy/load.ts';

export interface VerifyInput { file: string; ip: string; helo: string; sender: string }

export interface VerifyResult {
  /** The Authentication-Results value the gateway would prepend (after "Authentication-Results: "). */
  readonly authResults: string;
  readonly facts: Facts;
  readonly decision: Decision;
}

const LEADING_WHITESPACE: Verdict = { action: 'reject', rule: '', reason: 'bad-header', reply: REPLIES.headerStartsWithWhitespace() };

/** RFC 5322 §2.2: a first line starting with SP or HTAB is no header field (it would continue ours). */
function startsWithWhitespace(message: Buffer): boolean {
  return message[0] === 0x20 || message[0] === 0x09;
}

export async function verifyMessage(config: Config, input: VerifyInput): Promise<VerifyResult> {
  const ip = normaliseIp(input.ip);
  if (!ip) throw new Error(`--ip: not an IP address: ${input.ip}`);
  const resolver = createResolver({ servers: config.dns.servers.map(parseServer), timeoutMs: config.dns.timeoutMs, attempts: config.dns.attempts });
  try {
    const ruleSet = await loadPolicies(config.policies);
    const message = normaliseLineEndings(fs.readFileSync(input.file)).data;
    const common = { hostname: config.hostname, resolver: mailauthResolver(resolver), strict: config.auth.strict };
    const spf = await checkSpf({ ip, helo: input.helo, sender: input.sender, ...common });
    const auth = await authenticateMessage({ message, ip, sender: input.sender, spf, minBitLength: config.auth.minKeyBits, ...common });
    const facts: Facts = {
      client: { ip, ptr: null, helo: input.helo, tls: false, tier: 'neutral' },
      envelope: { sender: input.sender, senderDomain: input.sender ? domainOf(input.sender) : '', recipients: [] },
      spf: spf.facts,
      message: {
        fromDomain: auth.fromDomain, messageId: auth.messageId, size: message.length, firstSeenSeconds: 0,
        ...(auth.fromFields !== undefined ? { fromFields: auth.fromFields } : {}),
        ...(auth.fromAddresses !== undefined ? { fromAddresses: auth.fromAddresses } : {}),
      },
      dkim: auth.dkim,
      arc: auth.arc,
      ...(auth.dmarc ? { dmarc: auth.dmarc } : {}),
    };
    // the gateway refuses this before any rule (src/message/header-guard.ts)
    const decision = startsWithWhitespace(message) ? { enforced: LEADING_WHITESPACE } : decide(facts, ruleSet, 'data') ?? { enforced: ACCEPT_DEFAULT };
    return { authResults: auth.authResults, facts, decision };
  } finally {
    resolver.close();
  }
}
