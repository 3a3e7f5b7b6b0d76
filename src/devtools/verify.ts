/**
 * `postern verify`: authenticate one message file as if it had arrived over SMTP, with the
 * configured DNS and policies, and print what the backend would see (Authentication-Results)
 * and what the policy would do. No SMTP involved.
 */
import fs from 'node:fs';
import { parseHostPort } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Facts } from '../core/facts.ts';
import { normaliseIp } from '../core/ip.ts';
import { checkSpf } from '../auth/spf.ts';
import { authenticateMessage } from '../auth/message.ts';
import { createResolver, mailauthResolver } from '../dns/index.ts';
import { normaliseLineEndings } from '../message/line-endings.ts';
import { formatField } from '../message/fold.ts';
import { decide } from '../policy/decide.ts';
import { loadPolicies } from '../policy/load.ts';
import { normaliseDomain } from '../pipeline/recipient.ts';

export interface VerifyInput { file: string; ip: string; helo: string; sender: string }

export async function verifyMessage(config: Config, input: VerifyInput): Promise<{ text: string; facts: Facts }> {
  const ip = normaliseIp(input.ip);
  if (!ip) throw new Error(`--ip: not an IP address: ${input.ip}`);
  const resolver = createResolver({ servers: config.dns.servers.map((s) => parseHostPort(s, 53)), timeoutMs: config.dns.timeoutMs, attempts: config.dns.attempts });
  try {
    const ruleSet = await loadPolicies(config.policies);
    const message = normaliseLineEndings(fs.readFileSync(input.file)).data;
    const common = { hostname: config.hostname, resolver: mailauthResolver(resolver), strict: config.auth.strict };
    const spf = await checkSpf({ ip, helo: input.helo, sender: input.sender, ...common });
    const auth = await authenticateMessage({ message, ip, sender: input.sender, spf, minBitLength: config.auth.minKeyBits, ...common });
    const senderDomain = input.sender ? normaliseDomain(input.sender.slice(input.sender.lastIndexOf('@') + 1)) : '';
    const facts: Facts = {
      client: { ip, ptr: null, helo: input.helo, tls: false, tier: 'neutral' },
      envelope: { sender: input.sender, senderDomain, recipients: [] },
      spf: spf.facts,
      message: { fromDomain: auth.fromDomain, messageId: auth.messageId, size: message.length, firstSeenSeconds: 0 },
      dkim: auth.dkim,
      arc: auth.arc,
      ...(auth.dmarc ? { dmarc: auth.dmarc } : {}),
    };
    const decision = decide(facts, ruleSet, 'data') ?? { enforced: { action: 'accept' as const, rule: '', reason: 'default' as const } };
    const v = decision.enforced;
    const lines = [
      formatField('Authentication-Results', auth.authResults).trimEnd(),
      '',
      `verdict: ${v.action}${v.rule ? ` (rule ${v.rule})` : ' (no rule matched)'}, reason ${v.reason}`,
      ...(v.action === 'reject' || v.action === 'tempfail' ? [`reply:   ${v.reply.code} ${v.reply.enhanced} ${v.reply.text}`] : []),
      ...(decision.wouldHave ? [`monitor: rule ${decision.wouldHave.rule} would have done ${decision.wouldHave.action}`] : []),
    ];
    return { text: lines.join('\n') + '\n', facts };
  } finally {
    resolver.close();
  }
}
