/**
 * PROXY protocol v1 (text) and v2 (binary) header reader, used only for peers in
 * proxyProtocol.trusted (from them the header is then required). smtp-server itself knows
 * only v1 and only exact addresses (STYLE.md §2.5), so we read the header before handing the
 * socket over. Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';
import { normaliseIp } from '../core/ip.ts';

export interface ProxiedAddress {
  /** null for v2 LOCAL / v1 UNKNOWN: a health check from the balancer itself; keep the socket address. */
  readonly remoteAddress: string | null;
  readonly remotePort: number | null;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107; // §2.1: the longest v1 line, CRLF included
const V2_MAX = 16 + 536; // generous: addresses plus TLVs

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

type Parse = { need: true } | { done: ProxiedAddress; length: number };

export function parseProxyHeader(buf: Buffer): Parse {
  if (buf.length < 6) return { need: true };
  if (buf.subarray(0, 6).toString('latin1') === 'PROXY ') return parseV1(buf);
  const sigLen = Math.min(buf.length, 12);
  if (buf.subarray(0, sigLen).equals(V2_SIGNATURE.subarray(0, sigLen))) return parseV2(buf);
  throw new ProxyHeaderError('expected a PROXY protocol header from this trusted peer');
}

function parseV1(buf: Buffer): Parse {
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyHeaderError('PROXY v1 header too long');
    return { need: true };
  }
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') return { done: { remoteAddress: null, remotePort: null }, length: end + 2 };
  if ((proto !== 'TCP4' && proto !== 'TCP6') || parts.length !== 6) throw new ProxyHeaderError('malformed PROXY v1 header');
  const raw = parts[2] ?? '';
  // TCP6 may carry an IPv4-mapped address (a dual-stack balancer); it is normalised to IPv4.
  if ((proto === 'TCP4' && !isIPv4(raw)) || (proto === 'TCP6' && !isIPv6(raw))) throw new ProxyHeaderError('PROXY v1 address does not match its family');
  const ip = normaliseIp(raw);
  const port = Number(parts[4]);
  if (!ip || !Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyHeaderError('malformed PROXY v1 address');
  return { done: { remoteAddress: ip, remotePort: port }, length: end + 2 };
}

function parseV2(buf: Buffer): Parse {
  if (buf.length < 16) return { need: true };
  const verCmd = buf[12]!;
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError('unsupported PROXY v2 version');
  if (16 + len > V2_MAX) throw new ProxyHeaderError('PROXY v2 header too long');
  if (buf.length < 16 + len) return { need: true };
  const total = 16 + len;
  const cmd = verCmd & 0x0f;
  if (cmd === 0x0) return { done: { remoteAddress: null, remotePort: null }, length: total }; // LOCAL
  if (cmd !== 0x1) throw new ProxyHeaderError('unsupported PROXY v2 command');
  const family = fam >> 4;
  const body = buf.subarray(16, total);
  if (family === 0x1 && body.length >= 12) {
    const ip = `${body[0]}.${body[1]}.${body[2]}.${body[3]}`;
    return { done: { remoteAddress: ip, remotePort: body.readUInt16BE(8) }, length: total };
  }
  if (family === 0x2 && body.length >= 36) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { done: { remoteAddress: normaliseIp(groups.join(':')), remotePort: body.readUInt16BE(32) }, length: total };
  }
  // AF_UNSPEC or AF_UNIX: no usable client address, keep the socket's (spec §2.2).
  return { done: { remoteAddress: null, remotePort: null }, length: total };
}

/** Reads the header off the socket, leaving the bytes after it unread for the SMTP session. */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxiedAddress> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onFail);
      socket.off('end', onEnd);
    };
    const onFail = (err: Error): void => { cleanup(); reject(err); };
    const onEnd = (): void => onFail(new ProxyHeaderError('connection closed before the PROXY header'));
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buf = Buffer.concat([buf, chunk]);
        let parsed: Parse;
        try {
          parsed = parseProxyHeader(buf);
        } catch (err) {
          onFail(err as Error);
          return;
        }
        if ('done' in parsed) {
          cleanup();
          const rest = buf.subarray(parsed.length);
          if (rest.length) socket.unshift(rest);
          resolve(parsed.done);
          return;
        }
      }
    };
    const timer = setTimeout(() => onFail(new ProxyHeaderError('timed out waiting for the PROXY header')), timeoutMs);
    socket.on('readable', onReadable);
    socket.on('error', onFail);
    socket.on('end', onEnd);
  });
}
