import { readFileSync } from 'node:fs';
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { DnsServer } from './types.ts';

const DNS_PORT = 53;

/**
 * Parses "host:port", "[v6]:port", "host" or a bare IPv6 address (port 53) — the `dns.servers`
 * config syntax and what `dns.getServers()` prints. The host must be an IP address.
 */
export function parseServer(s: string): DnsServer {
  const text = s.trim();
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new TypeError(`DNS server "${s}": missing "]"`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw new TypeError(`DNS server "${s}": expected ":port" after "]"`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else if (text.indexOf(':') !== text.lastIndexOf(':')) {
    host = text; // a bare IPv6 address: its colons are not a port separator
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (isIP(host) === 0) throw new TypeError(`DNS server "${s}": "${host}" is not an IP address`);
  const unusable = unusableAddress(host);
  if (unusable) throw new TypeError(`DNS server "${s}": ${unusable}`);
  return { host, port: portText === undefined ? DNS_PORT : parsePort(portText, s) };
}

/**
 * Addresses no resolver can be reached at: the host cannot connect a socket to them (an IPv6
 * link-local address without its interface, the IPv4 broadcast address), or an answer could
 * never come from them (multicast). Refused here so check-config names the key.
 */
function unusableAddress(host: string): string | null {
  let addr = ipaddr.parse(host);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  const range = addr.range();
  if (range === 'linkLocal' && addr.kind() === 'ipv6' && !host.includes('%')) {
    return `"${host}" is an IPv6 link-local address without its interface: write it as [${host}%eth0]:53 with the interface it is on`;
  }
  if (range === 'broadcast') return `"${host}" is the broadcast address, not a resolver`;
  if (range === 'multicast') return `"${host}" is a multicast address, not a resolver`;
  return null;
}

function parsePort(text: string, whole: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new TypeError(`DNS server "${whole}": bad port "${text}"`);
  return port;
}

/** `nameserver` lines of a resolv.conf (resolv.conf(5)); other lines and bad addresses are skipped. */
export function parseResolvConf(text: string): DnsServer[] {
  const servers: DnsServer[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined && isIP(m[1]) !== 0) servers.push({ host: m[1], port: DNS_PORT });
  }
  return servers;
}

export interface SystemServerSources {
  readonly readResolvConf?: () => string;
  readonly nodeServers?: () => string[];
}

/** The system's resolvers: /etc/resolv.conf, else node's own list, else 127.0.0.1 (the resolv.conf default). */
export function systemServers(sources: SystemServerSources = {}): DnsServer[] {
  const read = sources.readResolvConf ?? (() => readFileSync('/etc/resolv.conf', 'utf8'));
  let servers: DnsServer[] = [];
  try {
    servers = parseResolvConf(read());
  } catch {
    servers = []; // no resolv.conf (containers, Windows): node's list below
  }
  if (servers.length === 0) {
    servers = (sources.nodeServers ?? getServers)().flatMap((s) => {
      try {
        return [parseServer(s)];
      } catch {
        return [];
      }
    });
  }
  return servers.length > 0 ? servers : [{ host: '127.0.0.1', port: DNS_PORT }];
}
