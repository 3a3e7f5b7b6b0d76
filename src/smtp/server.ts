/**
 * The adapter between smtp-server and the pipeline: the only code that knows smtp-server's
 * callbacks. It keeps per-connection state, runs the stages, and turns their outcome into
 * replies: SmtpReplyError → its reply; anything unexpected → 451 4.3.0, never 250
 * (STYLE.md §4.3). AUTH is disabled (an MX, not a submission server: RFC 6409).
 */
import fs from 'node:fs';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Logger } from 'pino';
import { SmtpReplyError } from '../core/errors.ts';
import { normaliseIp } from '../core/ip.ts';
import { REPLIES } from '../core/reply.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import { dataStage, mailStage, rcptStage } from '../pipeline/stages.ts';
import { limitConnect } from '../pipeline/limits.ts';
import { closeTransaction, type Params, type SessionState } from '../pipeline/state.ts';
import { PosternSmtpServer, type PosternSmtpServerOptions } from './connection.ts';

type Callback = (err?: Error | null) => void;

export interface SmtpServers {
  readonly plain: PosternSmtpServer;
  readonly xclient: PosternSmtpServer;
  /** Open sessions, for draining and the in-flight gauge. */
  readonly sessions: ReadonlyMap<string, SessionState>;
}

export interface SmtpServerOptions {
  readonly deps: () => PipelineDeps;
  readonly logger: Logger;
  readonly reverse: (ip: string, cb: (err: Error | null, names?: string[]) => void) => void;
  readonly isDraining: () => boolean;
  /** Called whenever the number of open sessions changes (the in-flight gauge). */
  readonly onSessionCount?: (open: number) => void;
  /** A STARTTLS handshake completed: the session now talks over `socket`. */
  readonly onSecure?: (sessionId: string, socket: import('node:net').Socket) => void;
  /** The session ended, however it ended (its connection slots go back). */
  readonly onSessionClosed?: (sessionId: string) => void;
}

export function createSmtpServers(opts: SmtpServerOptions): SmtpServers {
  const sessions = new Map<string, SessionState>();
  const initial = opts.deps();
  const { config } = initial;
  const tls = config.tls.cert && config.tls.key
    ? { key: fs.readFileSync(config.tls.key), cert: fs.readFileSync(config.tls.cert) }
    : null;

  const stateOf = (session: SMTPServerSession): SessionState => {
    let state = sessions.get(session.id);
    if (!state) {
      state = {
        id: session.id,
        ip: normaliseIp(session.remoteAddress) ?? session.remoteAddress,
        connectedAt: Date.now(),
        log: opts.logger.child({ session: session.id }),
        ptr: null, helo: '', esmtp: true, tls: false, tlsInfo: null, tier: 'neutral', tierInfo: null, tx: null, messages: 0, closed: false,
        release: (reservations) => {
          const d = opts.deps();
          for (const r of reservations) d.reputation.release(r, d.clock.now()).catch(() => undefined);
        },
      };
      sessions.set(session.id, state);
      opts.onSessionCount?.(sessions.size);
    }
    // XCLIENT and STARTTLS change these within a connection.
    state.ip = normaliseIp(session.remoteAddress) ?? session.remoteAddress;
    const host = session.clientHostname;
    state.ptr = host && !host.startsWith('[') ? host : null;
    state.helo = session.hostNameAppearsAs || '';
    state.esmtp = (session.openingCommand || 'EHLO').toUpperCase() !== 'HELO';
    state.tls = Boolean(session.secure);
    const cipher = session.tlsOptions ? session.tlsOptions : null;
    state.tlsInfo = state.tls ? { version: cipher?.version ?? null, cipher: cipher?.name ?? null } : null;
    return state;
  };

  /** Runs a stage; maps its failure to the reply smtp-server sends. */
  const run = (session: SMTPServerSession, callback: Callback, stage: (state: SessionState) => Promise<void>): void => {
    const state = stateOf(session);
    stage(state).then(() => callback(), (err: unknown) => callback(toReplyError(err, state)));
  };

  const toReplyError = (err: unknown, state: SessionState): SmtpReplyError => {
    if (err instanceof SmtpReplyError) return err;
    if ((err as { code?: string }).code === 'ECONNECTION') {
      state.log.info('client disconnected before the end of the message; nothing was delivered');
    } else {
      state.log.error({ err }, 'unexpected error in transaction');
    }
    return new SmtpReplyError(REPLIES.internalError(), 'internal-error', state.id, { cause: err });
  };

  const options: PosternSmtpServerOptions = {
    name: config.hostname,
    banner: 'Postern ESMTP',
    size: config.limits.maxMessageSize,
    authOptional: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !tls,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    ...(tls ?? {}),
    logger: false,
    socketTimeout: config.limits.socketTimeoutMs,
    closeTimeout: config.shutdown.drainTimeoutMs,
    resolver: { reverse: opts.reverse },
    greetingDelayMs: () => opts.deps().config.limits.greetingDelayMs,

    onConnect(session, callback) {
      if (opts.isDraining()) return callback(new SmtpReplyError(REPLIES.shuttingDown(), 'shutting-down'));
      run(session, callback, async (state) => {
        state.log.debug({ ip: state.ip, ptr: state.ptr }, 'connected');
        await limitConnect(opts.deps(), state);
      });
    },
    onSecure(socket, session, callback) {
      opts.onSecure?.(session.id, socket);
      callback();
    },
    onMailFrom(address: SMTPServerAddress, session, callback) {
      run(session, callback, (state) => mailStage(opts.deps(), state, session.transaction, address.address, params(address)));
    },
    onRcptTo(address: SMTPServerAddress, session, callback) {
      run(session, callback, (state) => rcptStage(opts.deps(), state, address.address, params(address)));
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const state = stateOf(session);
      dataStage(opts.deps(), state, stream).then(
        (text) => callback(null, text),
        (err: unknown) => {
          stream.resume(); // drain what is left, smtp-server replies once the stream has ended
          callback(toReplyError(err, state));
        },
      );
    },
    onClose(session) {
      opts.onSessionClosed?.(session.id);
      const state = sessions.get(session.id);
      if (!state) return;
      sessions.delete(session.id);
      state.closed = true;
      opts.onSessionCount?.(sessions.size);
      // A client gone mid-transaction: drop the backend transaction, nothing was accepted.
      if (state.tx) void closeTransaction(state, 'abort');
      state.log.debug({ messages: state.messages }, 'disconnected');
    },
  };
  return {
    plain: new PosternSmtpServer({ ...options }),
    xclient: new PosternSmtpServer({ ...options, useXClient: true }),
    sessions,
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
