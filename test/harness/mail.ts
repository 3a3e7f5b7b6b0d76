/**
 * Test mail: DKIM keys generated at test time (node:crypto), their DNS records, messages
 * signed with mailauth's signer, as a real sending domain would produce them.
 */
import crypto from 'node:crypto';
import { dkimSign } from 'mailauth';

export interface DkimKey {
  readonly algorithm: 'rsa' | 'ed25519';
  readonly privateKey: string;
  /** The TXT record value to publish at <selector>._domainkey.<domain>. */
  readonly record: string;
}

export function dkimKey(algorithm: 'rsa' | 'ed25519' = 'rsa', bits = 2048): DkimKey {
  if (algorithm === 'rsa') {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
    const der = publicKey.export({ type: 'spki', format: 'der' });
    return { algorithm, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record: `v=DKIM1; k=rsa; p=${der.toString('base64')}` };
  }
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  // RFC 8463 §4.2: p= is the raw 32-byte public key, i.e. the SPKI DER without its 12-byte prefix.
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(12);
  return { algorithm, privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record: `v=DKIM1; k=ed25519; p=${raw.toString('base64')}` };
}

let counter = 0;

/** A plain RFC 5322 message with CRLF line endings. */
export function message(opts: { from: string; to?: string; subject?: string; body?: string; headers?: string[]; messageId?: string } ): string {
  counter++;
  const lines = [
    ...(opts.headers ?? []),
    `From: <${opts.from}>`,
    `To: <${opts.to ?? 'user@example.net'}>`,
    `Subject: ${opts.subject ?? `test message ${counter}`}`,
    `Date: ${new Date('2026-11-23T10:00:00Z').toUTCString()}`,
    `Message-ID: <${opts.messageId ?? `${Date.now().toString(36)}.${counter}.${crypto.randomBytes(4).toString('hex')}@test`}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
  ];
  return lines.join('\r\n') + '\r\n\r\n' + (opts.body ?? `Hello, this is test message ${counter}.\r\n`);
}

/** Prepends a DKIM-Signature made with `key` for d=domain, s=selector. */
export async function sign(raw: string, opts: { domain: string; selector: string; key: DkimKey }): Promise<string> {
  const result = await dkimSign(raw, {
    signatureData: [{ signingDomain: opts.domain, selector: opts.selector, privateKey: opts.key.privateKey, algorithm: opts.key.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256', canonicalization: 'relaxed/relaxed' }],
  } as unknown as Parameters<typeof dkimSign>[1]);
  if (!result.signatures) throw new Error(`signing failed: ${JSON.stringify(result.errors ?? result)}`);
  return result.signatures + raw;
}
