/**
 * DKIM and ARC public keys, parsed once per DNS answer instead of once per message.
 *
 * mailauth's getPublicKey() parses the key record (tag list, base64, DER → KeyObject → PEM) for
 * every message, and crypto.verify() then parses the PEM again for every signature: together
 * about half of the cost of a DKIM check. Here the DNS answer is still fetched per message
 * (through our resolver and its TTL-bound cache, so a changed or revoked key is seen as soon
 * as the DNS says so), but the parse of that exact answer is kept: the memo key is the answer
 * text plus every option that changes the outcome, so a result is never used for another
 * question. The parsed key is a KeyObject (crypto.verify takes it without parsing); its
 * toString() still gives the PEM text that mailauth copies into its result (`publicKey`).
 *
 * Errors of the DNS lookup pass through untouched (mailauth maps their codes). A key record
 * that cannot be used is a deterministic outcome of its text and is remembered like a key.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { DNSResolver } from 'mailauth';
import { getPublicKey, toALabel, type KeyCache, type PublicKeyOptions, type PublicKeyRecord } from 'mailauth/lib/tools.js';

export interface KeyMemo {
  /**
   * A lookup for one message, as mailauth's createKeyCache(): the same question within the
   * message is asked once. `resolver` answers the TXT queries (and is the identity arc()
   * compares to reuse a lookup).
   */
  lookup(resolver: DNSResolver): KeyCache;
  readonly size: number;
}

/** Parsed key records kept (each a few hundred bytes and one KeyObject); least recently used go. */
const DEFAULT_MAX = 2_000;

export function createKeyMemo(opts: { readonly max?: number } = {}): KeyMemo {
  const parsed = new LRUCache<string, Promise<PublicKeyRecord>>({ max: opts.max ?? DEFAULT_MAX });

  const parse = (question: string, type: string, name: string, minBitLength: number | undefined, options: PublicKeyOptions, answer: unknown): Promise<PublicKeyRecord> => {
    const key = `${question}\n${JSON.stringify(answer)}`;
    let record = parsed.get(key);
    if (!record) {
      // getPublicKey asks its resolver once; this one hands it the answer we already have.
      const given: DNSResolver = () => Promise.resolve(answer as never);
      record = getPublicKey(type, name, minBitLength, given, options).then(withKeyObject);
      record.catch(() => undefined); // a bad record rejects every caller; none is left unhandled
      parsed.set(key, record);
    }
    return record;
  };

  return {
    get size() {
      return parsed.size;
    },
    lookup(resolver) {
      const asked = new Map<string, Promise<PublicKeyRecord>>();
      return {
        resolver,
        get(type, name, minBitLength, options = {}) {
          const question = [type, Boolean(options.strict), minBitLength ?? '', options.hashAlgo ?? '', name].join(':');
          let record = asked.get(question);
          if (!record) {
            record = resolver(toALabel(name), 'TXT').then((answer) => parse(question, type, name, minBitLength, options, answer));
            record.catch(() => undefined);
            asked.set(question, record);
          }
          return record;
        },
      };
    },
  };
}

/** The PEM text becomes a KeyObject that still prints as that text. */
function withKeyObject(record: PublicKeyRecord): PublicKeyRecord {
  if (typeof record.publicKey !== 'string') return record;
  const pem = record.publicKey;
  const key: KeyObject = createPublicKey(pem);
  Object.defineProperty(key, 'toString', { value: () => pem });
  return Object.freeze({ ...record, publicKey: key, flags: Object.freeze([...record.flags]), warnings: Object.freeze([...record.warnings]) });
}
