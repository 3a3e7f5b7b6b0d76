/**
 * A backend that is Postern itself: `backend` set to one of our own listeners (a copied
 * `listen` line, a port swapped with Postfix's). Every RCPT would be asked of ourselves, which
 * asks ourselves again, until the connections run out: 451 4.4.1 for all mail and no hint why.
 * Refused at start and by check-config. Only what can be known without DNS is compared: an IP
 * address or `localhost` as backend.host.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Location } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { splitHostPort } from '../config/values.ts';
import { ConfigError } from '../core/errors.ts';

/** backend.host as the addresses it names, or [] when it is a name only DNS could tell. */
function backendAddresses(host: string): string[] {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === 'localhost.') return ['127.0.0.1', '::1'];
  return isIP(bare) === 0 ? [] : [ipaddr.process(bare).toString()];
}

/** Whether a listener on `listenHost` accepts connections to `address` (`local`: this host's addresses). */
function listenerCovers(listenHost: string, address: string, local: ReadonlySet<string>): boolean {
  const listening = ipaddr.process(listenHost).toString();
  if (listening === address) return true;
  const isLocal = local.has(address) || ipaddr.parse(address).range() === 'loopback';
  // [::] is dual-stack (node listens with IPV6_V6ONLY off): it takes IPv4 too
  if (listening === '::') return isLocal;
  return listening === '0.0.0.0' && isIP(address) === 4 && isLocal;
}

export function backendLoopProblems(config: Config, where: (key: string) => Location, local: ReadonlySet<string>): ConfigError[] {
  const addresses = backendAddresses(config.backend.host);
  const { port } = config.backend;
  const listeners = [
    ...config.listen.map((text, i) => ({ text, key: config.listen.length > 1 ? `listen.${i}` : 'listen', what: 'SMTP listener' })),
    ...(config.metrics.listen ? [{ text: config.metrics.listen, key: 'metrics.listen', what: 'metrics listener' }] : []),
  ];
  for (const l of listeners) {
    const parsed = splitHostPort(l.text);
    if (!parsed.ok || parsed.port === 0 || parsed.port !== port || isIP(parsed.host) === 0) continue;
    if (!addresses.some((a) => listenerCovers(parsed.host, a, local))) continue;
    return [new ConfigError(
      `backend ${config.backend.host}:${port} is Postern's own ${l.what} (${l.key}: ${l.text}): accepted mail would be relayed back to Postern itself; point backend.host and backend.port at the mail server behind Postern (e.g. Postfix on 127.0.0.1:10025)`,
      where('backend.port'),
    )];
  }
  return [];
}
