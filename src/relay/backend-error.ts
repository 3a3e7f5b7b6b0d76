/**
 * Every failure of a backend connection that is not an SMTP reply: the pipeline maps it to
 * `451 4.4.1` (the client retries; nothing was accepted). A connection that produced one is
 * destroyed and never reused.
 */
export type BackendErrorKind = 'connect' | 'timeout' | 'closed' | 'protocol' | 'tls';

export class BackendError extends Error {
  /** Closed set, usable as a metric label. */
  readonly kind: BackendErrorKind;

  constructor(kind: BackendErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
    this.kind = kind;
  }
}
