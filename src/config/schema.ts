/**
 * The one configuration schema: keys, types, defaults and a doc string per key. Validated
 * once at load, then frozen. Key names are a contract with outside tools (DESIGN.md): keep them.
 * Every leaf can be overridden by an environment variable derived from its path
 * (backend.port → POSTERN_BACKEND_PORT, see envName()).
 */
import os from 'node:os';
import { z } from 'zod';
import { reputationConfigShape } from '../reputation/config.ts';
import { reportsConfigSchema } from '../reports/config.ts';
import { decisionsConfigShape } from '../observability/decision-file.ts';
import { cidr, dnsServer, flag, listenAddress, optionalListenAddress, servedDomain, size, wholeDuration } from './values.ts';

const port = z.number({ error: 'expected a port number (1-65535)' }).int('expected a port number (1-65535)').min(1, 'a port is 1-65535').max(65535, 'a port is 1-65535');
const ms = (def: number, doc: string) => wholeDuration('ms', 1).default(def).describe(doc);
const seconds = (def: number, min: number, doc: string) => wholeDuration('s', min).default(def).describe(doc);

const backend = z.strictObject({
  host: z.string().min(1).default('127.0.0.1').describe('Backend mail store host that receives accepted mail'),
  port: port.default(10025).describe('Backend SMTP port'),
  tls: z.enum(['none', 'starttls']).default('none').describe('STARTTLS towards the backend (`none` | `starttls`)'),
  rejectUnauthorized: flag().default(true).describe('Verify the backend certificate when tls is starttls'),
  xclient: flag().default(false).describe('Pass the original client address/name/HELO with XCLIENT when the backend offers it'),
  poolSize: z.number().int().min(0).default(32).describe('Idle backend connections kept for reuse (each holds a Postfix smtpd process)'),
  idleTimeoutMs: ms(60_000, 'Idle backend connections are closed after this (keep below Postfix\'s 300 s)'),
  maxMessagesPerConnection: z.number().int().min(1).default(100).describe('Messages sent over one backend connection before it is replaced'),
  maxRcptErrorsPerConnection: z.number().int().min(1).default(5).describe('Refused RCPTs on one backend connection before it is replaced (Postfix slows down from the 10th)'),
  maxRcptErrorsPerTransaction: z.number().int().min(1).default(9).describe('Refused RCPTs in one transaction after which further recipients get 452 4.5.3 (keeps under Postfix\'s smtpd_soft_error_limit of 10)'),
  recipientCacheSeconds: seconds(60, 0, 'How long a mailbox the backend refused as such (5.1.1, 5.1.6, 5.1.10, 5.2.1) is refused without asking it again; other refusals are never cached; 0 = never'),
  connectTimeoutMs: ms(10_000, 'Backend connect + greeting timeout'),
  commandTimeoutMs: ms(30_000, 'Backend timeout for MAIL/RCPT/RSET'),
  dataTimeoutMs: ms(300_000, 'Backend timeout for the final reply after the message (RFC 5321 §4.5.3.2.6)'),
}).prefault({});

const dns = z.strictObject({
  servers: z.array(dnsServer).default([]).describe('Resolvers as host:port ([v6]:port; port 53 if left out), IP addresses only; empty = the system resolvers of /etc/resolv.conf'),
  timeoutMs: ms(2_000, 'Timeout of one DNS query attempt'),
  attempts: z.number().int().min(1).max(5).default(2).describe('Attempts per query, rotating over servers'),
  cacheSize: z.number().int().min(0).default(10_000).describe('DNS answers kept in the in-process cache'),
  maxTtlSeconds: seconds(3_600, 0, 'Cap on the TTL of cached answers'),
  maxNegativeTtlSeconds: seconds(300, 0, 'Cap on caching NXDOMAIN/NODATA (RFC 2308)'),
  probeIntervalMs: wholeDuration('ms', 0).default(10_000).describe('How often the resolvers are asked for the root NS while idle, so a dead resolver shows in /readyz, postern_dns_up and the log within seconds (0 = only when a lookup fails)'),
}).prefault({});

const limits = z.strictObject({
  maxMessageSize: size(1024).default(10_000_000).describe('Largest message accepted, bytes or 10MB/10MiB (leave room under the backend\'s SIZE for the headers we add)'),
  maxRecipients: z.number().int().min(1).default(100).describe('Recipients per message (RFC 5321 §4.5.3.1.8 requires at least 100)'),
  maxConnections: z.number().int().min(1).default(1_000).describe('Concurrent SMTP connections in total'),
  maxConnectionsPerIp: z.number().int().min(1).default(20).describe('Concurrent SMTP connections per client IP (per IPv6 network, see ipv6PrefixLength)'),
  ipv6PrefixLength: z.number().int().min(32).max(128).default(64).describe('IPv6 clients count against maxConnectionsPerIp per network of this prefix length (a /64 is usually one subscriber)'),
  socketTimeoutMs: ms(300_000, 'Idle time allowed between client commands (RFC 5321 §4.5.3.2.7: 5 min)'),
  dataTimeoutMs: ms(600_000, 'Time allowed for the client to send the whole message'),
  maxHeaderBytes: size(1024).default(1_000_000).describe('Largest header block accepted, bytes or 1MB'),
  // mailauth's header parser is quadratic in folded lines (docs/upstream/mailauth-header-parser.md):
  // these bound its work before it sees the header; over them → 552 5.3.4 naming the limit
  maxHeaderFields: z.number().int().min(100).max(5_000).default(1_000).describe('Header fields per message (over → 552 5.3.4)'),
  maxHeaderFieldLines: z.number().int().min(50).max(5_000).default(1_000).describe('Physical lines of one header field, its folds included (over → 552 5.3.4)'),
  maxHeaderLines: z.number().int().min(500).max(20_000).default(10_000).describe('Physical lines of the whole header section (over → 552 5.3.4)'),
  maxBytesInFlightPerClient: size(1_000_000).default(67_108_864).describe('Message bytes one client (IP address, IPv6 network of ipv6PrefixLength) may hold in memory at once, bytes or 64MiB; past it its new messages get 452 4.3.1; with workers, per worker'),
  maxBytesInFlight: size(1_000_000).default(268_435_456).describe('Message bytes held in memory at once, all sessions together (there is no spool), bytes or 256MiB; past it new messages get 452 4.3.1 until bytes drain; with workers each holds max(this / workers, maxMessageSize), so the node holds at most max(this, workers × maxMessageSize)'),
  bareLineEndings: z.enum(['repair', 'reject']).default('repair').describe('Bare CR or LF in a message: `repair` to CRLF (as Postfix\'s normalize) or `reject` with 550 5.6.0'),
  greetingDelayMs: wholeDuration('ms', 0, 30_000).default(100).describe('Pause before the 220 greeting; a client that talks before it gets 421 (early-talker detection). 0 = greet at once'),
}).prefault({});

const auth = z.strictObject({
  strict: flag().default(true).describe('mailauth strict mode (RFC-exact: rsa-sha1 is dkim=policy, body hash mismatch is fail)'),
  minKeyBits: z.number().int().min(512).default(1024).describe('Smallest RSA DKIM/ARC key accepted'),
  firstSeenTtlSeconds: seconds(86_400, 60, 'How long a message\'s first-seen time is remembered (for first_seen_within rules)'),
  // each hop signs on top, so the author's own signature is the lowest: a small cap would drop
  // it from mail that crossed a few forwarders and lists
  maxDkimSignatures: z.number().int().min(1).max(50).default(10).describe('DKIM signatures verified per message: those whose d= aligns with the From domain first, then top down; the rest are not verified and reported as dkim=policy'),
  // mailauth scans the whole header once per h= name: names × fields work per signature
  maxDkimHeaderNames: z.number().int().min(100).max(100_000).default(1_000).describe('Header names a DKIM-Signature or ARC-Message-Signature may list in h=; one with more is not verified (dkim=policy; an ARC chain fails)'),
  maxArcSets: z.number().int().min(1).max(50).default(10).describe('ARC sets validated per message (RFC 8617 allows 50); a longer chain is arc=fail without key lookups'),
  timeoutMs: wholeDuration('ms', 100).default(20_000).describe('Time for DKIM, ARC and DMARC of one message after its last byte; past it the pending checks are temperror'),
  spfTimeoutMs: wholeDuration('ms', 100).default(20_000).describe('Time for SPF at MAIL FROM (RFC 7208 §4.6.4); past it SPF is temperror'),
}).prefault({});

export const configSchema = z.strictObject({
  listen: z.array(listenAddress).min(1).default(['0.0.0.0:25']).describe('SMTP listeners, host:port'),
  workers: z.number().int().min(1).max(256).default(os.availableParallelism()).describe('Worker processes sharing the SMTP listeners (node:cluster), supervised by a primary that serves /metrics and /readyz; 1 = one process'),
  hostname: z.string().regex(/^[A-Za-z0-9.-]+$/, 'expected a host name').default(os.hostname()).describe('Banner name and Authentication-Results authserv-id'),
  domains: z.array(servedDomain).default([]).describe('Recipient domains accepted; anything else is relaying and refused (required for serve). `example.com` exact, `.example.com` or `*.example.com` its subdomains only (not example.com itself); IDN as U- or A-labels; public suffixes (com, co.uk, github.io) refused'),
  backend,
  dns,
  proxyProtocol: z.strictObject({
    trusted: z.array(cidr).default([]).describe('CIDRs allowed to send a PROXY v1/v2 header (it is then required from them)'),
  }).prefault({}),
  xclient: z.strictObject({
    trusted: z.array(cidr).default([]).describe('CIDRs allowed to use XCLIENT'),
  }).prefault({}),
  ...reputationConfigShape, // redis, reputation, rateLimits, lists (src/reputation/config.ts)
  policies: z.string().min(1).default('policies').describe('Folder of policy YAML files (relative to the config file). Not set: `policies/` beside the config file if there is one, else the shipped default set (DMARC as published)'),
  metrics: z.strictObject({
    listen: optionalListenAddress.default('127.0.0.1:9465').describe('HTTP endpoint for /metrics, /healthz, /readyz (empty = off)'),
  }).prefault({}),
  tls: z.strictObject({
    cert: z.string().optional().describe('PEM certificate file (chain) for STARTTLS; re-read on SIGHUP'),
    key: z.string().optional().describe('PEM private key file for STARTTLS; re-read on SIGHUP'),
  }).prefault({}),
  limits,
  auth,
  ...decisionsConfigShape, // decisions.file (src/observability/decision-file.ts)
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level (`fatal` `error` `warn` `info` `debug` `trace` `silent`)'),
    pretty: flag().default(false).describe('Human-readable log lines instead of JSON'),
  }).prefault({}),
  shutdown: z.strictObject({
    drainTimeoutMs: ms(30_000, 'On SIGTERM, how long in-flight transactions may take before exit'),
  }).prefault({}),
  reports: reportsConfigSchema, // DMARC aggregate reports (src/reports/config.ts)
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
