/**
 * Thin subclasses of smtp-server's classes, for two things the library does not offer:
 * - replies that already carry our enhanced status code are sent as they are (the library
 *   would prefix its own generic code for the basic code: "550 5.1.1 5.7.1 …"), while its own
 *   replies keep getting theirs, so ENHANCEDSTATUSCODES is advertised truthfully (RFC 2034);
 * - connections are handed in by our listener (after PROXY v1/v2 from trusted CIDRs), built
 *   with the connection class above;
 * - the pause before the greeting is ours to set (`limits.greetingDelayMs`): the library
 *   waits a fixed 100 ms (SMTPConnection#init) to catch early talkers, which caps a client
 *   that opens a connection per message at C / 0.1 s messages per second (STYLE.md §2.8).
 */
import type net from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { formatReply, REPLIES, type FailReply } from '../core/reply.ts';

const HAS_ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** The library's pause before the greeting (SMTPConnection#init in smtp-server 3). */
const LIBRARY_GREETING_DELAY_MS = 100;

class PosternConnection extends SMTPConnection {
  /**
   * SMTPConnection#init with our pause. A client that writes before the greeting still gets
   * "421 … You talk too soon" (the library refuses input until it has greeted: `_ready`), with
   * a pause of 0 too, during the reverse lookup and onConnect. The library's connection limit
   * (maxClients) is checked as it does; we do not set it (our listener counts connections).
   */
  override init(): void {
    const server = this._server as PosternSmtpServer;
    const delayMs = server.greetingDelayMs();
    this._setListeners(() => {
      if (server.options.maxClients && server.connections.size > server.options.maxClients) {
        return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
      }
      if (delayMs <= 0) return this.connectionReady();
      const timer = setTimeout(() => this.connectionReady(), delayMs);
      timer.unref(); // as the library: the pause does not keep the process alive
    });
  }

  /** VRFY discloses nothing (no directory harvesting), with a clear 252 instead of the library's joke. */
  override handler_VRFY(command: Buffer, callback: () => void): void {
    if (!command.toString().trim().split(/\s+/)[1]) {
      super.send(501, '5.5.4 Syntax: VRFY address', false);
    } else {
      const r = REPLIES.vrfyDisabled();
      super.send(r.code, `${r.enhanced} ${r.text}`, false);
    }
    callback();
  }

  /**
   * smtp-server resets the session on RSET, EHLO/HELO, after STARTTLS and after XCLIENT: a
   * transaction still open then is abandoned, and the pipeline ends it now rather than at the
   * next MAIL or the disconnect (its tokens and backend connection are given back in time).
   */
  override _resetSession(): void {
    super._resetSession();
    (this._server as PosternSmtpServer).onReset?.(this.id);
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (typeof data === 'string' && HAS_ENHANCED.test(data)) {
      super.send(code, data, false);
      return;
    }
    super.send(code, data, context);
  }
}

export interface Connection {
  readonly id: string;
  /** Sends a final reply and closes (used when draining). */
  closeWith(reply: FailReply): void;
  /** True while a MAIL transaction is open. */
  busy(): boolean;
}

export interface PosternSmtpServerOptions extends SMTPServerOptions {
  /** Pause before the greeting, read at each connection (so a reload applies); default the library's 100 ms. */
  readonly greetingDelayMs?: () => number;
}

export class PosternSmtpServer extends SMTPServer {
  /** Called when a session's state is reset (RSET, EHLO, STARTTLS, XCLIENT), with the session id. */
  onReset: ((sessionId: string) => void) | null = null;

  readonly greetingDelayMs: () => number;

  constructor(options: PosternSmtpServerOptions) {
    const { greetingDelayMs, ...rest } = options;
    super(rest);
    this.greetingDelayMs = greetingDelayMs ?? (() => LIBRARY_GREETING_DELAY_MS);
  }

  /** Creates the session on a socket we accepted; mirrors SMTPServer.connect with our connection class. */
  override connect(socket: net.Socket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new PosternConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => this._onClientConnect(data));
    connection.init();
  }

  /** Live sessions, for draining. */
  sessions(): Connection[] {
    return [...this.connections].map((c) => {
      const conn = c as SMTPConnection & { id: string; session?: { envelope?: { mailFrom?: unknown } }; close(): void };
      return {
        id: conn.id,
        closeWith: (reply: FailReply) => {
          conn.send(reply.code, formatReply(reply));
          conn.close();
        },
        busy: () => Boolean(conn.session?.envelope?.mailFrom),
      };
    });
  }
}
