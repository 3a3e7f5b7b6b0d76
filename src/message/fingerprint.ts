import { createHash } from 'node:crypto';

/**
 * A stable key for "first seen" tracking (MessageFacts.firstSeenSeconds): the same message
 * offered again by a retrying client gets the same key. It hashes the envelope and the
 * Message-ID, or the body when there is no Message-ID, never the header fields we add.
 */
export interface FingerprintInput {
  /** MAIL FROM; '' for the null reverse-path. */
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The Message-ID field value, or null when the message has none. */
  readonly messageId: string | null;
  /** The message (as one buffer or its pieces in order), hashed only when there is no Message-ID. */
  readonly body: Uint8Array | readonly Uint8Array[] | null;
}

/** Hex SHA-256 of the canonical envelope + identity; addresses compared case-insensitively. */
export function messageFingerprint(input: FingerprintInput): string {
  const recipients = [...new Set(input.recipients.map((r) => r.trim().toLowerCase()))].sort();
  const messageId = input.messageId?.trim() || null;
  const identity = messageId !== null
    ? ['id', messageId]
    : ['body', hashOf(input.body)];
  // JSON of an array is an unambiguous encoding: no separator can be forged by a value
  const canonical = JSON.stringify(['v1', input.sender.trim().toLowerCase(), recipients, identity]);
  return createHash('sha256').update(canonical).digest('hex');
}

function hashOf(body: Uint8Array | readonly Uint8Array[] | null): string {
  const hash = createHash('sha256');
  for (const piece of body === null ? [] : body instanceof Uint8Array ? [body] : body) hash.update(piece);
  return hash.digest('hex');
}
