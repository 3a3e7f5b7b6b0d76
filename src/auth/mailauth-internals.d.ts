/**
 * Types for the parts of mailauth 7 that Postern uses below its documented API (it ships no
 * declarations for them). Read from node_modules/mailauth/lib/tools.js and
 * lib/dkim/dkim-verifier.js; dkim-verifier.ts explains why each is used.
 */
declare module 'mailauth/lib/tools.js' {
  import type { KeyObject } from 'node:crypto';
  import type { DNSResolver } from 'mailauth';

  export interface PublicKeyOptions {
    readonly strict?: boolean;
    readonly hashAlgo?: string;
  }

  /** What getPublicKey() resolves with: `publicKey` is PEM text (a KeyObject once cached by us). */
  export interface PublicKeyRecord {
    readonly publicKey: string | KeyObject;
    readonly rr: string;
    readonly modulusLength?: number;
    readonly keyType: string;
    readonly flags: readonly string[];
    readonly testing: boolean;
    readonly warnings: readonly string[];
  }

  /** The per-message key lookup DkimVerifier and arc() call (`createKeyCache` in tools.js). */
  export interface KeyCache {
    readonly resolver: DNSResolver;
    get(type: string, name: string, minBitLength?: number, options?: PublicKeyOptions): Promise<PublicKeyRecord>;
  }

  export function getPublicKey(type: string, name: string, minBitLength: number | undefined, resolver: DNSResolver, options?: PublicKeyOptions): Promise<PublicKeyRecord>;
  export function toALabel(domain: string): string;
  export function writeToStream(stream: NodeJS.WritableStream, input: Buffer | string | NodeJS.ReadableStream, chunkSize?: number): Promise<void>;
}

declare module 'mailauth/lib/dkim/dkim-verifier.js' {
  import { Writable } from 'node:stream';
  import type { DKIMResult, DKIMVerifyOptions } from 'mailauth';
  import type { KeyCache } from 'mailauth/lib/tools.js';

  export class DkimVerifier extends Writable {
    constructor(options?: DKIMVerifyOptions);
    keyCache: KeyCache;
    /** ARC data for arc(); its hidden, writable `keyCache` property is the lookup arc() reuses. */
    arc: Record<string, unknown> & { keyCache?: KeyCache };
    headers?: { parsed: Array<{ key: string; line: Buffer }> };
    headerFrom: string[];
    fromFields: number;
    envelopeFrom: string | false;
    results: DKIMResult[];
    lastByte?: number;
    ensureLinebreaks(input: Buffer): Generator<Buffer>;
  }
}
