import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { dkimSign } from 'mailauth';

/** DKIM test keys made at test time (no committed private keys). */
export interface TestKey {
  readonly privateKeyPem: string;
  /** The DKIM key record (RFC 6376 §3.6.1; RFC 8463 §4.2 for Ed25519). */
  readonly record: string;
}

function pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function rsaKey(bits = 2048): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { privateKeyPem: pem(privateKey), record: `v=DKIM1; k=rsa; p=${p}` };
}

export function ed25519Key(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // RFC 8463 §4.2: p= is the raw 32-byte public key, the tail of the SPKI encoding
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return { privateKeyPem: pem(privateKey), record: `v=DKIM1; k=ed25519; p=${raw}` };
}

/** Returns the message with a DKIM-Signature prepended. */
export async function sign(
  message: Buffer,
  opts: { domain: string; selector: string; key: TestKey; algorithm?: string; signTime?: Date; expires?: Date },
): Promise<Buffer> {
  const entry = {
    signingDomain: opts.domain,
    selector: opts.selector,
    privateKey: opts.key.privateKeyPem,
    ...(opts.algorithm ? { algorithm: opts.algorithm } : {}),
  };
  const times = { ...(opts.signTime ? { signTime: opts.signTime } : {}), ...(opts.expires ? { expires: opts.expires } : {}) };
  const result = await dkimSign(message, { ...entry, ...times, signatureData: [entry] });
  if (!result.signatures) throw new Error(`signing failed: ${JSON.stringify(result.errors)}`);
  return Buffer.concat([Buffer.from(result.signatures), message]);
}
