/** Facts builders for the policy tests: a clean, authenticated message by default, overridden per case. */
import type { AuthResult, DkimSignatureFacts, DmarcPolicy, Facts, Tier } from '../../../src/core/facts.ts';

export interface MailOverrides {
  ip?: string;
  ptr?: string | null;
  helo?: string;
  tier?: Tier;
  sender?: string;
  spf?: AuthResult;
  spfDomain?: string;
}

export interface DataOverrides extends MailOverrides {
  recipients?: string[];
  fromDomain?: string | null;
  dkim?: Array<Partial<DkimSignatureFacts>>;
  arc?: AuthResult;
  dmarc?: AuthResult;
  dmarcPolicy?: DmarcPolicy | null;
  firstSeenSeconds?: number;
  fromFields?: number;
  fromAddresses?: number;
}

/** What is known at MAIL FROM: no recipients, no message, no DKIM/ARC/DMARC. */
export function mailFacts(o: MailOverrides = {}): Facts {
  const sender = o.sender ?? 'alice@sender.example';
  const senderDomain = sender.includes('@') ? sender.slice(sender.lastIndexOf('@') + 1).toLowerCase() : '';
  return {
    client: { ip: o.ip ?? '192.0.2.10', ptr: o.ptr === undefined ? 'mx1.sender.example' : o.ptr, helo: o.helo ?? 'mx1.sender.example', tls: true, tier: o.tier ?? 'neutral' },
    envelope: { sender, senderDomain, recipients: [] },
    spf: { result: o.spf ?? 'pass', domain: o.spfDomain ?? (senderDomain || 'mx1.sender.example'), identity: senderDomain ? 'mailfrom' : 'helo', reason: '' },
  };
}

/** Everything known at end of DATA. Default: SPF pass, one aligned passing DKIM signature, DMARC pass p=reject. */
export function dataFacts(o: DataOverrides = {}): Facts {
  const base = mailFacts(o);
  const fromDomain = o.fromDomain === undefined ? 'sender.example' : o.fromDomain;
  const dkim = (o.dkim ?? [{}]).map((s): DkimSignatureFacts => ({
    result: 'pass', domain: fromDomain ?? 'sender.example', selector: 's1', algorithm: 'rsa-sha256', aligned: true, reason: '', ...s,
  }));
  return {
    ...base,
    envelope: { ...base.envelope, recipients: o.recipients ?? ['bob@rcpt.example'] },
    message: {
      fromDomain, messageId: '<m1@sender.example>', size: 1000, firstSeenSeconds: o.firstSeenSeconds ?? 0,
      ...(o.fromFields !== undefined ? { fromFields: o.fromFields } : {}), ...(o.fromAddresses !== undefined ? { fromAddresses: o.fromAddresses } : {}),
    },
    dkim,
    arc: { result: o.arc ?? 'none', reason: '' },
    dmarc: {
      result: o.dmarc ?? 'pass', domain: fromDomain ?? '', policy: o.dmarcPolicy === undefined ? 'reject' : o.dmarcPolicy,
      spfAligned: true, dkimAligned: true, reason: '',
    },
  };
}
