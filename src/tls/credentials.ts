/**
 * The STARTTLS certificate and key, loaded the one way `check-config`, `serve` and a SIGHUP
 * reload all use: read both files, parse them, check that the key belongs to the
 * certificate, and build the secure context node will use. Each failure is a sentence naming
 * the key (tls.cert or tls.key) and what to do, never a library stack trace.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';

export interface TlsCredentials {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** Subject and expiry of the first certificate of the chain, for logs. */
  readonly subject: string;
  readonly notAfter: Date;
}

/** A problem with one of the two files; `key` is the config key that names it. */
export class TlsLoadError extends Error {
  readonly key: 'tls.cert' | 'tls.key';
  constructor(key: 'tls.cert' | 'tls.key', message: string) {
    super(message);
    this.name = 'TlsLoadError';
    this.key = key;
  }
}

function read(key: 'tls.cert' | 'tls.key', file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file'
      : code === 'EACCES' ? 'permission denied (the service user, e.g. group postern, needs read access)'
      : code === 'EISDIR' ? 'it is a directory, not a PEM file'
      : (err as Error).message;
    throw new TlsLoadError(key, `cannot read ${file}: ${why}`);
  }
}

/** Loads and checks `cert` and `key` (PEM). Throws TlsLoadError. */
export function loadTlsCredentials(paths: { readonly cert: string; readonly key: string }): TlsCredentials {
  const cert = read('tls.cert', paths.cert);
  const key = read('tls.key', paths.key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new TlsLoadError('tls.cert', `${paths.cert} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsLoadError('tls.key', `${paths.key} is not an unencrypted PEM private key (a key with a passphrase cannot be used)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsLoadError('tls.key', `${paths.key} does not belong to the certificate in ${paths.cert} (key and certificate mismatch: install the key issued with this certificate)`);
  }
  try {
    // What smtp-server will do with them: anything node's TLS refuses is refused here.
    tls.createSecureContext({ key, cert });
  } catch (err) {
    throw new TlsLoadError('tls.cert', `${paths.cert} and ${paths.key} cannot be used for TLS: ${(err as Error).message}`);
  }
  return { key, cert, subject: x509.subject.replace(/\n/g, ', '), notAfter: new Date(x509.validTo) };
}

/** A warning for an expired or soon expiring certificate (it still loads: senders may not verify). */
export function expiryWarning(creds: TlsCredentials, now: number, warnDays = 14): string | null {
  const left = (creds.notAfter.getTime() - now) / 86_400_000;
  if (left < 0) return `the certificate (${creds.subject}) expired on ${creds.notAfter.toISOString()}`;
  if (left < warnDays) return `the certificate (${creds.subject}) expires in ${Math.floor(left)} day(s), on ${creds.notAfter.toISOString()}`;
  return null;
}
