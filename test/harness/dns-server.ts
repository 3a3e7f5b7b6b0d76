/**
 * Loopback authoritative DNS server for tests: UDP and TCP on 127.0.0.1, one ephemeral port.
 * Zones use the `zonedata` format of the RFC 7208 test suite, so its scenarios load as they are.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as packet from 'dns-packet';

export type TxtValue = string | readonly string[];
/** One record; `ttl` overrides the default 300 s. `{ TXT: 'NONE' }` is the suite's "no TXT here" marker. */
export type ZoneRecordData = { readonly ttl?: number } & (
  | { readonly A: string }
  | { readonly AAAA: string }
  | { readonly TXT: TxtValue }
  | { readonly SPF: TxtValue }
  | { readonly MX: readonly [number, string] }
  | { readonly PTR: string }
  | { readonly CNAME: string }
);
/**
 * 'TIMEOUT': never answer (for types the name has no records of); 'SERVFAIL': answer SERVFAIL (same
 * rule); 'GARBAGE': answer every question for the name with a different kind of broken response
 * each time (see garbage()), whatever records it has.
 */
export type ZoneRecord = 'TIMEOUT' | 'SERVFAIL' | 'GARBAGE' | ZoneRecordData;
export type Zone = Readonly<Record<string, readonly ZoneRecord[]>>;

export interface DnsQueryLog {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

export interface DnsTestServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Replaces the whole zone. */
  setZone(zone: Zone): void;
  /** Merges: each name in `zone` replaces that name's records, other names stay. */
  addZone(zone: Zone): void;
  /** Every question received, in order. */
  readonly queries: DnsQueryLog[];
  close(): Promise<void>;
}

export interface DnsTestServerOptions {
  /** SOA TTL and MINIMUM in negative answers, i.e. their cache lifetime (RFC 2308 §5). Default 300. */
  readonly negativeTtl?: number;
}

const DEFAULT_TTL = 300;
const NO_EDNS_UDP_LIMIT = 512; // RFC 1035 §4.2.1
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;
const TYPES = ['A', 'AAAA', 'TXT', 'SPF', 'MX', 'PTR', 'CNAME'] as const;
type RType = (typeof TYPES)[number];

interface StoredRecord { readonly type: RType; readonly data: unknown; readonly ttl: number }
interface ZoneEntry {
  readonly name: string;
  readonly records: readonly StoredRecord[];
  readonly timeout: boolean;
  readonly servfail: boolean;
  readonly garbage: boolean;
  /** `TXT: NONE`: do not serve the SPF records as TXT. */
  readonly noTxt: boolean;
}

const key = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();

/** Octets of a zone string: the suite writes octets as "\xEF"-style chars, so chars up to U+00FF are octets. */
function octets(s: string): Buffer {
  return /^[\x00-\xff]*$/.test(s) ? Buffer.from(s, 'latin1') : Buffer.from(s, 'utf8');
}

/** RFC 1035 §3.3.14: a character-string holds 255 octets at most, so longer text is split. */
function characterStrings(value: TxtValue): Buffer[] {
  const out: Buffer[] = [];
  for (const s of typeof value === 'string' ? [value] : value) {
    const bytes = octets(s);
    if (bytes.length === 0) out.push(bytes);
    for (let i = 0; i < bytes.length; i += 255) out.push(bytes.subarray(i, i + 255));
  }
  return out;
}

function parseEntry(name: string, records: readonly ZoneRecord[]): ZoneEntry {
  let timeout = false;
  let servfail = false;
  let garbage = false;
  let noTxt = false;
  const stored: StoredRecord[] = [];
  for (const record of records) {
    if (record === 'TIMEOUT') timeout = true;
    else if (record === 'SERVFAIL') servfail = true;
    else if (record === 'GARBAGE') garbage = true;
    else {
      const type = TYPES.find((t) => t in record);
      if (type === undefined) throw new TypeError(`zone ${name}: unknown record ${JSON.stringify(record)}`);
      const value = (record as Record<string, unknown>)[type];
      const ttl = record.ttl ?? DEFAULT_TTL;
      if (type === 'TXT' && value === 'NONE') noTxt = true;
      else if (type === 'TXT' || type === 'SPF') stored.push({ type, ttl, data: characterStrings(value as TxtValue) });
      else if (type === 'MX') {
        const [preference, exchange] = value as readonly [number, string];
        stored.push({ type, ttl, data: { preference, exchange } });
      } else stored.push({ type, ttl, data: String(value) });
    }
  }
  return { name: key(name), records: stored, timeout, servfail, garbage, noTxt };
}

function parseZone(zone: Zone): Map<string, ZoneEntry> {
  return new Map(Object.entries(zone).map(([name, records]) => [key(name), parseEntry(name, records)]));
}

function rr(owner: string, record: StoredRecord, asType: RType = record.type): packet.Answer {
  if (asType === 'SPF') {
    // dns-packet has no SPF codec: RDATA is the character-strings, raw (RFC 4408 §3.1.1)
    const data = Buffer.concat((record.data as Buffer[]).flatMap((b) => [Buffer.from([b.length]), b]));
    return { name: owner, type: 'SPF' as 'NULL', ttl: record.ttl, class: 'IN', data };
  }
  return { name: owner, type: asType, ttl: record.ttl, class: 'IN', data: record.data } as packet.Answer;
}

/** The records of `type` at a name; SPF records are served as TXT when the name has no TXT of its own. */
function recordsOf(entry: ZoneEntry, type: string): packet.Answer[] {
  const own = entry.records.filter((r) => r.type === type);
  if (own.length > 0 || type !== 'TXT' || entry.noTxt) return own.map((r) => rr(entry.name, r));
  return entry.records.filter((r) => r.type === 'SPF').map((r) => rr(entry.name, r, 'TXT'));
}

type Reply = { readonly drop: true } | { readonly garbage: true }
  | { readonly drop: false; readonly rcode: number; readonly answers: packet.Answer[]; readonly negative: boolean };

/** Walks the CNAME chain from the name asked (RFC 1034 §4.3.2), as a recursive server would answer. */
function lookup(zone: Map<string, ZoneEntry>, qname: string, qtype: string): Reply {
  const answers: packet.Answer[] = [];
  const seen = new Set<string>();
  let name = key(qname);
  for (;;) {
    seen.add(name);
    const entry = zone.get(name);
    if (entry === undefined) return { drop: false, rcode: RCODE.NXDOMAIN, answers, negative: true };
    if (entry.garbage) return { garbage: true };
    const own = recordsOf(entry, qtype);
    if (own.length > 0) return { drop: false, rcode: RCODE.NOERROR, answers: [...answers, ...own], negative: false };
    if (entry.timeout) return { drop: true };
    if (entry.servfail) return { drop: false, rcode: RCODE.SERVFAIL, answers: [], negative: false };
    const cname = entry.records.find((r) => r.type === 'CNAME');
    if (cname === undefined || qtype === 'CNAME') return { drop: false, rcode: RCODE.NOERROR, answers, negative: true };
    answers.push(rr(entry.name, cname));
    name = key(cname.data as string);
    // a loop is left to the client to detect, as its chain is in the answer
    if (seen.has(name)) return { drop: false, rcode: RCODE.NOERROR, answers, negative: false };
  }
}

function soa(owner: string, ttl: number): packet.Answer {
  const apex = owner.split('.').slice(-2).join('.') || 'test';
  return {
    name: apex, type: 'SOA', ttl, class: 'IN',
    data: { mname: `ns.${apex}`, rname: `hostmaster.${apex}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: ttl },
  };
}

/** The response bytes for one query, or null to stay silent. */
function respond(zone: Map<string, ZoneEntry>, query: packet.DecodedPacket, transport: 'udp' | 'tcp', negativeTtl: number): Buffer | null {
  const q = query.questions?.[0];
  if (q === undefined) return null;
  const reply = lookup(zone, q.name, q.type);
  if ('garbage' in reply) return garbage(query, q, transport);
  if (reply.drop) return null;
  const opt = query.additionals?.find((a): a is packet.OptAnswer => a.type === 'OPT');
  const flags = packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE | ((query.flags ?? 0) & packet.RECURSION_DESIRED) | reply.rcode;
  const response: packet.Packet = {
    type: 'response', id: query.id ?? 0, flags, questions: query.questions ?? [],
    answers: reply.answers,
    authorities: reply.negative ? [soa(key(q.name), negativeTtl)] : [],
    // RFC 6891 §6.1.1: answer EDNS with EDNS
    additionals: opt ? [{ ...opt, udpPayloadSize: 1232, options: [] }] : [],
  };
  const bytes = packet.encode(response);
  const limit = opt ? Math.max(NO_EDNS_UDP_LIMIT, opt.udpPayloadSize) : NO_EDNS_UDP_LIMIT;
  if (transport === 'tcp' || bytes.length <= limit) return bytes;
  // RFC 2181 §9: too big for the client's UDP buffer → TC set, nothing but the question
  return packet.encode({ ...response, flags: flags | packet.TRUNCATED_RESPONSE, answers: [], authorities: [] });
}

let garbageServed = 0;

/**
 * A broken response, a different kind each time, as a faulty or hostile server sends them:
 * octets no parser can read; a response cut short; a record of the wrong type; TXT strings of
 * random octets; the answer to another question (a spoofing attempt the client must ignore);
 * a truncated UDP answer whose TCP retry gets junk.
 */
function garbage(query: packet.DecodedPacket, q: packet.Question, transport: 'udp' | 'tcp'): Buffer {
  const base = { type: 'response' as const, id: query.id ?? 0, flags: packet.AUTHORITATIVE_ANSWER, questions: [q] };
  const junkTxt = (): packet.Answer => ({ name: q.name, type: 'TXT', class: 'IN', ttl: 1, data: [randomBytes(randomInt(1, 200)), randomBytes(randomInt(0, 50))] });
  switch (garbageServed++ % 6) {
    case 0: return randomBytes(randomInt(1, 600));
    case 1: {
      const whole = packet.encode({ ...base, answers: [junkTxt()] });
      return whole.subarray(0, randomInt(1, whole.length));
    }
    case 2: return packet.encode({ ...base, answers: [{ name: q.name, type: 'A', class: 'IN', ttl: 1, data: '203.0.113.9' }] });
    case 3: return packet.encode({ ...base, answers: [junkTxt(), junkTxt()] });
    case 4: return packet.encode({ ...base, questions: [{ ...q, name: 'spoofed.invalid' }], answers: [{ ...junkTxt(), name: 'spoofed.invalid' }] });
    default: return transport === 'udp' ? packet.encode({ ...base, flags: base.flags | packet.TRUNCATED_RESPONSE }) : randomBytes(randomInt(1, 300));
  }
}

function decodeQuery(bytes: Buffer): packet.DecodedPacket | null {
  try {
    const p = packet.decode(bytes);
    return p.type === 'query' ? p : null;
  } catch {
    return null;
  }
}

async function bindPair(): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (let tries = 0; tries < 20; tries++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve());
    });
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve, reject) => {
      tcp.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) return { udp, tcp, port };
    await new Promise<void>((resolve) => udp.close(() => resolve())); // TCP port taken: try another
  }
  throw new Error('no free port for both UDP and TCP on 127.0.0.1');
}

export async function startDnsServer(zone: Zone = {}, options: DnsTestServerOptions = {}): Promise<DnsTestServer> {
  const negativeTtl = options.negativeTtl ?? DEFAULT_TTL;
  let entries = parseZone(zone);
  const queries: DnsQueryLog[] = [];
  const { udp, tcp, port } = await bindPair();
  const connections = new Set<Socket>();

  const handle = (bytes: Buffer, transport: 'udp' | 'tcp'): Buffer | null => {
    const query = decodeQuery(bytes);
    const q = query?.questions?.[0];
    if (query === null || q === undefined) return null;
    queries.push({ name: q.name, type: q.type, transport });
    return respond(entries, query, transport, negativeTtl);
  };

  udp.on('message', (msg, rinfo) => {
    const out = handle(msg, 'udp');
    if (out !== null) udp.send(out, rinfo.port, rinfo.address);
  });

  tcp.on('connection', (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // RFC 1035 §4.2.2: two-octet length, then the message; several may follow on one connection
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        const out = handle(buffered.subarray(2, 2 + length), 'tcp');
        buffered = buffered.subarray(2 + length);
        if (out !== null) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(out.length, 0);
          socket.write(Buffer.concat([prefix, out]));
        }
      }
    });
  });

  return {
    host: '127.0.0.1',
    port,
    queries,
    setZone(next) {
      entries = parseZone(next);
    },
    addZone(more) {
      entries = new Map([...entries, ...parseZone(more)]);
    },
    async close() {
      for (const socket of connections) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}
