/** Self-signed certificates made at test time with the openssl CLI (Debian's openssl package). */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** Writes `<name>.crt` and `<name>.key` (EC P-256, unencrypted PEM) into `dir`. */
export function selfSignedPair(dir: string, name = 'mx', cn = 'mx.postern.test'): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', `/CN=${cn}`, '-days', '2', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}
