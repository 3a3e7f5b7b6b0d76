/**
 * One pass over DATA: bytes are line-ending-normalised, kept for relaying, and streamed into
 * DKIM/ARC/DMARC verification at the same time (so DNS lookups overlap the upload).
 */
import type { Readable } from 'node:stream';
import type { HeaderBreach, HeaderMalformation } from '../message/header-guard.ts';
import { ClientGone } from '../core/errors.ts';
import { REPLIES } from '../core/reply.ts';
import type { DataDeps, MessageAuth } from './deps.ts';
import type { SessionState, Transaction } from './state.ts';

export interface ReadMessage {
  /** The message as the chunks it arrived in (never joined: no second copy of a large message), and its size. */
  readonly message: { readonly chunks: readonly Buffer[]; readonly size: number };
  /** Settles once verification has read the message; never rejects before it is awaited. */
  readonly auth: Promise<MessageAuth>;
  /** Bare CR or LF repaired to CRLF. */
  readonly repaired: number;
  readonly oversize: boolean;
  /** The in-flight byte budget could not hold the whole message: its bytes were dropped. */
  readonly overBudget: boolean;
  /** The header limit the message crossed, if any (its verification was abandoned). */
  readonly headerLimit: HeaderBreach | null;
  /** Why the header section is not one (its verification was abandoned), if it is not. */
  readonly headerMalformed: HeaderMalformation | null;
}

export type DataStream = Readable & { sizeExceeded?: boolean };

export async function readMessage(deps: DataDeps, state: SessionState, tx: Transaction, stream: DataStream): Promise<ReadMessage> {
  const { maxMessageSize, dataTimeoutMs } = deps.settings;
  const normaliser = deps.message.normaliser();
  // the header section's limits apply before the verifier sees it (message/header-guard.ts)
  const toAuth = deps.message.headerGuard();
  const chunks: Buffer[] = [];
  let size = 0;
  let oversize = false;
  let overBudget = false;
  const auth = deps.authenticate({ message: toAuth, ip: state.ip, helo: state.helo, sender: tx.sender, spf: tx.spf, withheld: { count: () => toAuth.withheldSignatures, oversigned: () => toAuth.oversignedSignatures } });
  auth.catch(() => undefined); // awaited by the caller; no unhandled rejection if it bails out first
  await new Promise<void>((resolve, reject) => {
    // RFC 5321 §4.5.3.2.6 bounds the wait per chunk (socketTimeout); this bounds the whole
    // message, so a client trickling bytes cannot hold a session and a backend connection.
    const timer = setTimeout(() => {
      state.log.warn({ limitMs: dataTimeoutMs, bytes: size }, 'client too slow sending the message, closing');
      state.closedBy = 'data-timeout';
      deps.dropConnection(state.id, REPLIES.dataTimeout());
    }, dataTimeoutMs);
    const resume = (): void => {
      normaliser.resume();
    };
    toAuth.once('close', resume);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      toAuth.destroy(); // lets the verifier finish instead of waiting for an end that never comes
      reject(err);
    };
    // Past the size limit or the in-flight budget the rest of the upload is read and dropped.
    const stopKeeping = (): void => {
      chunks.length = 0;
      deps.budget.give(state.ip, tx.heldBytes);
      tx.heldBytes = 0;
      toAuth.end();
    };
    normaliser.on('data', (chunk: Buffer) => {
      if (oversize || overBudget) return;
      size += chunk.length;
      if (size > maxMessageSize) {
        oversize = true;
        return stopKeeping();
      }
      if (!deps.budget.tryTake(state.ip, chunk.length)) {
        overBudget = true;
        return stopKeeping();
      }
      tx.heldBytes += chunk.length;
      chunks.push(chunk);
      // The verifier reads at its own pace: when it falls behind, the upload waits for it
      // (TCP backpressure to the client) instead of a second copy of the message piling up
      // in front of it. A verifier that gave up (header limit) or finished is not waited for.
      if (toAuth.destroyed || toAuth.writableEnded) return;
      if (!toAuth.write(chunk) && !toAuth.destroyed) {
        normaliser.pause();
        toAuth.once('drain', resume);
      }
    });
    normaliser.on('end', () => {
      clearTimeout(timer);
      if (!toAuth.writableEnded) toAuth.end();
      resolve();
    });
    normaliser.on('error', fail);
    // the client's stream fails when its connection closes mid-message (or we closed it: data
    // timeout, shutdown); anything else failing here is ours, not the client's
    stream.on('error', (err: Error) => fail(new ClientGone(err.message)));
    stream.pipe(normaliser);
  });
  return {
    message: oversize || overBudget ? { chunks: [], size: 0 } : { chunks, size },
    auth,
    repaired: normaliser.counts.bareCr + normaliser.counts.bareLf,
    oversize: oversize || Boolean(stream.sizeExceeded),
    overBudget,
    headerLimit: toAuth.breach,
    headerMalformed: toAuth.malformed,
  };
}
