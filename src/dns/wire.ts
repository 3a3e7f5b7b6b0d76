import { randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { connect, isIP } from 'node:net';
import * as packet from 'dns-packet';
import ipaddr from 'ipaddr.js';
import type { DnsErrorCode } from './errors.ts';
import type { DnsServer } from './types.ts';

/** RFC 9715 / DNS Flag Day 2020: a payload that avoids IP fragmentation, big enough for 2048-bit DKIM keys. */
export const EDNS_UDP_PAYLOAD = 1232;

export interface WireQuestion {
  readonly name: string;
  /** Upper-case mnemonic known to dns-packet ('TXT', 'MX', …). */
  readonly type: string;
}

export type Transport = 'udp' | 'tcp';

export interface ExchangeOptions {
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** A failure to get a usable response from one server. */
export class TransportError extends Error {
  readonly code: DnsErrorCode;
  constructor(code: DnsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
  }
}

/** One question to one server: UDP first, TCP when the UDP answer is truncated (RFC 7766 §5). */
export async function exchange(server: DnsServer, q: WireQuestion, options: ExchangeOptions): Promise<packet.DecodedPacket> {
  const udp = await queryUdp(server, q, options);
  if ((udp.flags ?? 0) & packet.TRUNCATED_RESPONSE) return queryTcp(server, q, options);
  return udp;
}

function buildQuery(id: number, q: WireQuestion): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name: q.name, type: q.type as packet.RecordType, class: 'IN' }],
    // RFC 6891 §6.1.1: the OPT pseudo-record advertises how big a UDP answer we accept
    additionals: [{
      type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_PAYLOAD,
      extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [],
    }],
  });
}

/** RFC 5452 §9.1: accept only the answer to our question (ID, name case-insensitively, type, class). */
function answersQuestion(p: packet.DecodedPacket, id: number, q: WireQuestion): boolean {
  const asked = p.questions?.[0];
  return p.type === 'response' && p.id === id && p.questions?.length === 1 && asked !== undefined
    && asked.name.toLowerCase() === q.name.toLowerCase() && asked.type === q.type && asked.class === 'IN';
}

function sameAddress(rinfo: RemoteInfo, server: DnsServer): boolean {
  if (rinfo.port !== server.port) return false;
  const norm = (ip: string): string => {
    const bare = ip.split('%')[0] ?? ip;
    return isIP(bare) === 6 ? ipaddr.IPv6.parse(bare).toNormalizedString() : bare;
  };
  return norm(rinfo.address) === norm(server.host);
}

/**
 * Runs one request with a deadline and cancellation; `start` gets `settle` and returns its cleanup.
 * Exactly one of resolve/reject happens, and cleanup always runs.
 */
function withDeadline<T>(
  options: ExchangeOptions,
  onTimeout: () => TransportError,
  start: (settle: (err: TransportError | null, value?: T) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (options.signal.aborted) {
      reject(new TransportError('ECANCELLED', 'resolver closed'));
      return;
    }
    let done = false;
    let cleanup: () => void = () => undefined;
    const onAbort = (): void => settle(new TransportError('ECANCELLED', 'resolver closed'));
    const timer = setTimeout(() => settle(onTimeout()), options.timeoutMs);
    function settle(err: TransportError | null, value?: T): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      cleanup();
      if (err) reject(err);
      else resolve(value as T);
    }
    options.signal.addEventListener('abort', onAbort);
    cleanup = start(settle);
  });
}

/** A fresh socket per query, so each gets its own random source port (RFC 5452 §9.2). */
function queryUdp(server: DnsServer, q: WireQuestion, options: ExchangeOptions): Promise<packet.DecodedPacket> {
  const id = randomInt(0x10000);
  const query = buildQuery(id, q);
  let malformed = false;
  return withDeadline(
    options,
    // a server that only ever sent garbage is a bad response, not silence
    () => malformed ? new TransportError('EBADRESP', `malformed UDP response from ${server.host}`)
      : new TransportError('ETIMEOUT', `no UDP response from ${server.host}:${server.port}`),
    (settle) => {
      const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      socket.on('error', (err) => settle(new TransportError('ECONNREFUSED', `UDP to ${server.host}: ${err.message}`, { cause: err })));
      socket.on('message', (msg, rinfo) => {
        if (!sameAddress(rinfo, server)) return;
        let p: packet.DecodedPacket;
        try {
          p = packet.decode(msg);
        } catch {
          malformed = true;
          return;
        }
        // anything else may be spoofed: keep waiting for the real answer until the deadline
        if (answersQuestion(p, id, q)) settle(null, p);
      });
      // connect() also lets the kernel drop datagrams from other peers and report ICMP errors.
      // It fails at once when the host has no route to the server (ENETUNREACH, an unscoped
      // link-local address, a broadcast address): that error reaches only this callback, and
      // send() on the unconnected socket would throw outside any handler and end the process.
      socket.connect(server.port, server.host, (connectErr?: Error) => {
        if (connectErr) {
          settle(new TransportError('ECONNREFUSED', `UDP to ${server.host}:${server.port}: ${connectErr.message}`, { cause: connectErr }));
          return;
        }
        socket.send(query, (err) => {
          if (err) settle(new TransportError('ECONNREFUSED', `UDP to ${server.host}: ${err.message}`, { cause: err }));
        });
      });
      return () => {
        try {
          socket.close();
        } catch {
          // already closed after a socket error
        }
      };
    },
  );
}

/** RFC 1035 §4.2.2: over TCP each message is preceded by its two-octet length. */
function queryTcp(server: DnsServer, q: WireQuestion, options: ExchangeOptions): Promise<packet.DecodedPacket> {
  const id = randomInt(0x10000);
  const query = buildQuery(id, q);
  const framed = Buffer.alloc(2 + query.length);
  framed.writeUInt16BE(query.length, 0);
  query.copy(framed, 2);
  return withDeadline(
    options,
    () => new TransportError('ETIMEOUT', `no TCP response from ${server.host}:${server.port}`),
    (settle) => {
      const socket = connect({ host: server.host, port: server.port });
      let received = Buffer.alloc(0);
      socket.on('connect', () => socket.write(framed));
      socket.on('error', (err) => settle(new TransportError('ECONNREFUSED', `TCP to ${server.host}: ${err.message}`, { cause: err })));
      socket.on('close', () => settle(new TransportError('EBADRESP', `TCP connection to ${server.host} closed before the answer`)));
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        let p: packet.DecodedPacket;
        try {
          p = packet.decode(received.subarray(2, 2 + length));
        } catch (err) {
          settle(new TransportError('EBADRESP', `malformed TCP response from ${server.host}`, { cause: err }));
          return;
        }
        if (answersQuestion(p, id, q)) settle(null, p);
        else settle(new TransportError('EBADRESP', `TCP response from ${server.host} does not match the question`));
      });
      return () => socket.destroy();
    },
  );
}
