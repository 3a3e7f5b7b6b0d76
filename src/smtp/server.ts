/**
 * The adapter between smtp-server and the pipeline: the only code that knows smtp-server's
 * callbacks. It keeps per-connection state, runs the stages, and turns their outcome into the
 * reply smtp-server sends: SmtpReplyError → its reply; ClientGone → none (nobody is there);
 * anything unexpected → 451 4.3.0, never 250 (STYLE.md §4.3). Every reply to MAIL, RCPT and
 * DATA, and every refusal of a session at connect, is counted here, once, where it is handed
 * over: those smtp-server sends for a stage, and the two written past it (a client too slow
 * with its message, a session cut by the drain), which go through drop() and shutDown().
 * AUTH is disabled (an MX, not a submission server: RFC 6409).
 */
import type net from 'node:net';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import { ClientGone, SmtpReplyError } from '../core/errors.ts';
import { normaliseIp } from '../core/ip.ts';
import { REPLIES, wireLine, type TempReply } from '../core/reply.ts';
import { replyClass } from '../observability/metrics.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import { dataStage } from '../pipeline/data.ts';
import { limitConnect } from '../pipeline/limits.ts';
import { abandonTransaction, mailStage } from '../pipeline/mail.ts';
import { rcptStage } from '../pipeline/rcpt.ts';
import { shutdownReply } from '../pipeline/replies.ts';
import type { Params, SessionState } from '../pipeline/state.ts';
import { PosternSmtpServer, type Connection, type PosternSmtpServerOptions } from './connection.ts';

type Stage = 'connect' | 'mail' | 'rcpt' | 'data';

export interface SmtpServers {
  readonly plain: PosternSmtpServer;
  readonly xclient: PosternSmtpServer;
  /** Open sessions, for draining and the in-flight gauge. */
  readonly sessions: ReadonlyMap<string, SessionState>;
  /** Writes `reply` past smtp-server on a session in DATA and closes it (a client too slow with its message): the answer to its DATA. */
  drop(sessionId: string, reply: TempReply): void;
  /** Closes a session with the shutdown reply (draining); its open transaction ends as shutdown. */
  shutDown(connection: Connection): void;
}

export interface SmtpServerOptions {
  readonly deps: () => PipelineDeps;
  readonly logger: Logger;
  /** Banner name. */
  readonly hostname: string;
  /** SIZE advertised and enforced by smtp-server. */
  readonly maxMessageSize: number;
  readonly socketTimeoutMs: number;
  /** How long smtp-server waits for sessions when closing. */
  readonly closeTimeoutMs: number;
  /** STARTTLS key and certificate (PEM), or null for no STARTTLS. */
  readonly tls: { readonly key: Buffer; readonly cert: Buffer } | null;
  readonly reverse: (ip: string, cb: (err: Error | null, names?: string[]) => void) => void;
  readonly isDraining: () => boolean;
  /** Called whenever the number of open sessions changes (the in-flight gauge). */
  readonly onSessionCount?: (open: number) => void;
  /** A STARTTLS handshake completed: the session now talks over `socket`. */
  readonly onSecure?: (sessionId: string, socket: net.Socket) => void;
  /** The session ended, however it ended (its connection slots go back). */
  readonly onSessionClosed?: (sessionId: string) => void;
  /** Writes a reply line on a session's connection past smtp-server and closes it (the listener's dropSession). */
  readonly writeAndClose: (sessionId: string, line: string) => void;
}

export function createSmtpServers(opts: SmtpServerOptions): SmtpServers {
  const sessions = new Map<string, SessionState>();
  const count = replyCounter(opts);
  const options = smtpOptions(opts, sessions, count);
  const plain = new PosternSmtpServer({ ...options });
  const xclient = new PosternSmtpServer({ ...options, useXClient: true });
  for (const server of [plain, xclient]) {
    server.onReset = (id) => {
      const state = sessions.get(id);
      if (state) abandonTransaction(opts.deps(), state, 'rset');
    };
  }
  return {
    plain, xclient, sessions,
    drop(sessionId, reply) {
      const state = sessions.get(sessionId);
      if (state) count.written('data', state, reply.code);
      opts.writeAndClose(sessionId, wireLine(reply, sessionId));
    },
    shutDown(connection) {
      const state = sessions.get(connection.id);
      const reply = shutdownReply();
      if (state) {
        // a session cut in its message: the 421 answers its DATA; between commands it answers none
        if (state.tx?.inData && state.closedBy === null) count.written('data', state, reply.code);
        state.closedBy = 'shutdown'; // its open transaction, if any, then ends as 'shutdown'
      }
      connection.closeWith(reply);
    },
  };
}

interface ReplyCount {
  /** A reply smtp-server sends for a stage. The greeting answers no command (not counted); a connection gone, or closed by us with a reply of our own, gets none. */
  handed(stage: Stage, state: SessionState, code: number): void;
  /** A reply we write past smtp-server ourselves, to a client still there. */
  written(stage: Stage, state: SessionState, code: number): void;
}

function replyCounter(opts: SmtpServerOptions): ReplyCount {
  const inc = (stage: Stage, code: number): void => opts.deps().metrics.replies.inc({ stage, class: replyClass(code) });
  return {
    handed(stage, state, code) {
      if (stage === 'connect' && code < 400) return;
      if (state.closed || state.closedBy !== null) return;
      inc(stage, code);
    },
    written(stage, state, code) {
      if (!state.closed) inc(stage, code);
    },
  };
}

/** The session's state, created at its first callback and refreshed at each (XCLIENT and STARTTLS change it). */
function stateOf(opts: SmtpServerOptions, sessions: Map<string, SessionState>, session: SMTPServerSession): SessionState {
  let state = sessions.get(session.id);
  if (!state) {
    state = {
      id: session.id,
      ip: normaliseIp(session.remoteAddress) ?? session.remoteAddress,
      connectedAt: Date.now(),
      log: opts.logger.child({ session: session.id }),
      ptr: null, helo: '', esmtp: true, tls: false, tlsInfo: null, tier: 'neutral', tierInfo: null, tx: null, messages: 0,
      closed: false, closedBy: null,
    };
    sessions.set(session.id, state);
    opts.onSessionCount?.(sessions.size);
  }
  state.ip = normaliseIp(session.remoteAddress) ?? session.remoteAddress;
  const host = session.clientHostname;
  state.ptr = host && !host.startsWith('[') ? host : null;
  state.helo = session.hostNameAppearsAs || '';
  state.esmtp = (session.openingCommand || 'EHLO').toUpperCase() !== 'HELO';
  state.tls = Boolean(session.secure);
  const cipher = session.tlsOptions ? session.tlsOptions : null;
  state.tlsInfo = state.tls ? { version: cipher?.version ?? null, cipher: cipher?.name ?? null } : null;
  return state;
}

/** The error smtp-server sends for a failed stage; unexpected errors become 451 4.3.0. */
function toReplyError(err: unknown, state: SessionState): SmtpReplyError | ClientGone {
  if (err instanceof SmtpReplyError || err instanceof ClientGone) return err;
  state.log.error({ err }, 'unexpected error in transaction');
  return new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id, { cause: err });
}

/**
 * Runs a stage and hands its outcome to smtp-server, counting the reply once, unless the
 * connection is gone (nothing is sent then).
 */
function settler(opts: SmtpServerOptions, sessions: Map<string, SessionState>, count: ReplyCount) {
  return (stage: Stage, session: SMTPServerSession, callback: (err: Error | null, text?: string) => void, work: (state: SessionState) => Promise<string | void>): void => {
    const state = stateOf(opts, sessions, session);
    work(state).then((text) => {
      count.handed(stage, state, 250);
      callback(null, text ?? undefined);
    }, (err: unknown) => {
      const e = toReplyError(err, state);
      if (e instanceof SmtpReplyError) count.handed(stage, state, e.responseCode);
      callback(e);
    });
  };
}

function smtpOptions(opts: SmtpServerOptions, sessions: Map<string, SessionState>, count: ReplyCount): PosternSmtpServerOptions {
  const settle = settler(opts, sessions, count);
  return {
    name: opts.hostname,
    banner: 'Postern ESMTP',
    size: opts.maxMessageSize,
    authOptional: true,
    disabledCommands: opts.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !opts.tls,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    ...(opts.tls ?? {}),
    logger: false,
    socketTimeout: opts.socketTimeoutMs,
    closeTimeout: opts.closeTimeoutMs,
    resolver: { reverse: opts.reverse },
    // read at each connection, so a reload applies (limits.greetingDelayMs)
    greetingDelayMs: () => opts.deps().settings.greetingDelayMs,

    onConnect(session, callback) {
      settle('connect', session, callback, async (state) => {
        if (opts.isDraining()) throw new SmtpReplyError(shutdownReply(), 'shutting-down');
        state.log.debug({ ip: state.ip, ptr: state.ptr }, 'connected');
        await limitConnect(opts.deps(), state);
      });
    },
    onSecure(socket, session, callback) {
      opts.onSecure?.(session.id, socket);
      callback();
    },
    onMailFrom(address: SMTPServerAddress, session, callback) {
      settle('mail', session, callback, (state) => mailStage(opts.deps(), state, session.transaction, address.address, params(address)));
    },
    onRcptTo(address: SMTPServerAddress, session, callback) {
      settle('rcpt', session, callback, (state) => rcptStage(opts.deps(), state, address.address, params(address)));
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      settle('data', session, (err, text) => {
        if (err) stream.resume(); // drain what is left, smtp-server replies once the stream has ended
        callback(err, text);
      }, (state) => dataStage(opts.deps(), state, stream));
    },
    onClose(session) {
      opts.onSessionClosed?.(session.id);
      const state = sessions.get(session.id);
      if (!state) return;
      sessions.delete(session.id);
      state.closed = true;
      opts.onSessionCount?.(sessions.size);
      // A client gone mid-transaction: nothing was accepted; a transaction in DATA ends itself.
      abandonTransaction(opts.deps(), state, 'disconnect');
      state.log.debug({ messages: state.messages }, 'disconnected');
    },
  };
}

/** MAIL/RCPT parameters as the client sent them (keys upper-case); the relay filters them. */
function params(address: SMTPServerAddress): Params {
  const out: Params = {};
  if (!address.args) return out;
  for (const [k, v] of Object.entries(address.args)) {
    if (v === undefined) continue;
    out[k.toUpperCase()] = v === true ? true : String(v);
  }
  return out;
}
