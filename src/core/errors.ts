import { formatReply, type FailReply } from './reply.ts';
import type { Reason } from './verdict.ts';

/**
 * What the SMTP adapter hands to smtp-server's callbacks. smtp-server reads `responseCode`
 * and sends `message` after it, so the message carries the enhanced code (we keep
 * hideENHANCEDSTATUSCODES at its default: our Reply type is the only source of codes).
 */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly reply: FailReply;
  readonly reason: Reason;

  constructor(reply: FailReply, reason: Reason, sessionId?: string, options?: { cause?: unknown }) {
    super(formatReply(reply, sessionId), options);
    this.name = 'SmtpReplyError';
    this.responseCode = reply.code;
    this.reply = reply;
    this.reason = reason;
  }
}

/** A configuration or policy problem, located so an operator can fix it: "file:line:col: key: message". */
export class ConfigError extends Error {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly key: string | undefined;
  readonly problem: string;

  constructor(problem: string, where: { file?: string; line?: number; column?: number; key?: string } = {}) {
    const loc = [where.file, where.line, where.column].filter((p) => p !== undefined).join(':');
    const key = where.key ? `${where.key}: ` : '';
    super(`${loc ? `${loc}: ` : ''}${key}${problem}`);
    this.name = 'ConfigError';
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
    this.key = where.key;
    this.problem = problem;
  }
}

/** Several located problems found in one pass, so an operator can fix them all at once. */
export class ConfigErrors extends Error {
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}

/**
 * The client connection is gone (or we closed it ourselves, having written our reply out of
 * band): there is no one to answer, and no reply to count.
 */
export class ClientGone extends Error {
  /** Should the connection still be open after all, smtp-server sends this (never a 2xx). */
  readonly responseCode = 451;
  constructor(detail = 'the client connection is gone') {
    super('4.3.0 Transaction ended', { cause: detail });
    this.name = 'ClientGone';
  }
}
