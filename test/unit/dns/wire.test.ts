import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { createResolver } from '../../../src/dns/resolver.ts';
import type { DnsServer } from '../../../src/dns/types.ts';

/** A UDP server on 127.0.0.1:0 that answers each query with whatever `script` returns (raw datagrams). */
async function scriptedServer(script: (query: packet.DecodedPacket) => Buffer[]): Promise<DnsServer & { seen: packet.DecodedPacket[]; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const seen: packet.DecodedPacket[] = [];
  socket.on('message', (msg, rinfo) => {
    const query = packet.decode(msg);
    seen.push(query);
    for (const out of script(query)) socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    host: '127.0.0.1', port: socket.address().port, seen,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function reply(query: packet.DecodedPacket, over: Partial<packet.Packet> = {}): Buffer {
  return packet.encode({ type: 'response', id: query.id ?? 0, flags: 0, questions: query.questions ?? [], ...over });
}

const txt = (name: string, text: string, ttl = 300): packet.Answer => ({ type: 'TXT', name, ttl, class: 'IN', data: [text] });

void describe('dns wire transport', () => {
  void it('sends RD=1 and an EDNS0 OPT record advertising 1232 octets', async () => {
    const server = await scriptedServer((q) => [reply(q, { answers: [txt('q.example', 'ok')] })]);
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      await r.resolve('q.example', 'TXT');
      const query = server.seen[0];
      assert.ok(query && ((query.flags ?? 0) & packet.RECURSION_DESIRED));
      const opt = query.additionals?.find((a) => a.type === 'OPT');
      assert.equal(opt && 'udpPayloadSize' in opt ? opt.udpPayloadSize : undefined, 1232);
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('ignores answers with the wrong ID or question and takes the matching one (RFC 5452)', async () => {
    const server = await scriptedServer((q) => [
      reply({ ...q, id: ((q.id ?? 0) + 1) & 0xffff }, { answers: [txt('q.example', 'wrong id')] }),
      reply(q, { questions: [{ name: 'other.example', type: 'TXT', class: 'IN' }], answers: [txt('other.example', 'wrong name')] }),
      reply(q, { questions: [{ name: 'q.example', type: 'A', class: 'IN' }] }),
      Buffer.from('garbage'),
      reply(q, { answers: [txt('Q.EXAMPLE', 'genuine')] }),
    ]);
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      assert.deepEqual(await r.resolve('q.example', 'TXT'), [['genuine']]);
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('reports a server that only sends garbage as EBADRESP, not a timeout', async () => {
    const server = await scriptedServer(() => [Buffer.from('not dns at all')]);
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      await assert.rejects(r.resolve('q.example', 'TXT'), { code: 'EBADRESP' });
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('moves to the next server when the first does not answer', async () => {
    const silent = await scriptedServer(() => []);
    const good = await scriptedServer((q) => [reply(q, { answers: [txt('q.example', 'second server')] })]);
    const r = createResolver({ servers: [silent, good], timeoutMs: 1_000, attempts: 2 });
    try {
      assert.deepEqual(await r.resolve('q.example', 'TXT'), [['second server']]);
      assert.equal(silent.seen.length, 1);
      assert.equal(good.seen.length, 1);
    } finally {
      r.close();
      await Promise.all([silent.close(), good.close()]);
    }
  });

  void it('does not cache a negative answer without an SOA', async () => {
    const server = await scriptedServer((q) => [reply(q, { flags: 3 /* NXDOMAIN */ })]);
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
      await assert.rejects(r.resolve('gone.example', 'A'), { code: 'ENOTFOUND' });
      assert.equal(server.seen.length, 2);
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('maps REFUSED to EREFUSED', async () => {
    const server = await scriptedServer((q) => [reply(q, { flags: 5 })]);
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      await assert.rejects(r.resolve('q.example', 'A'), { code: 'EREFUSED' });
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('follows a CNAME chain of 8 and refuses a longer one or a loop', async () => {
    const chain = (length: number, qname: string): packet.Answer[] => {
      const names = [qname, ...Array.from({ length }, (_, i) => `c${i}.example`)];
      const cnames = names.slice(0, -1).map((n, i): packet.Answer => ({ type: 'CNAME', name: n, ttl: 60, class: 'IN', data: names[i + 1] ?? '' }));
      return [...cnames, { type: 'A', name: names[names.length - 1] ?? '', ttl: 60, class: 'IN', data: '192.0.2.1' }];
    };
    const server = await scriptedServer((q) => {
      const name = q.questions?.[0]?.name ?? '';
      if (name === 'loop.example') {
        return [reply(q, { answers: [{ type: 'CNAME', name, ttl: 60, class: 'IN', data: 'Loop.Example' }] })];
      }
      return [reply(q, { answers: chain(name === 'eight.example' ? 8 : 9, name) })];
    });
    const r = createResolver({ servers: [server], timeoutMs: 1_000, attempts: 1 });
    try {
      assert.deepEqual(await r.resolve('eight.example', 'A'), ['192.0.2.1']);
      await assert.rejects(r.resolve('nine.example', 'A'), { code: 'EBADRESP' });
      await assert.rejects(r.resolve('loop.example', 'A'), { code: 'EBADRESP' });
    } finally {
      r.close();
      await server.close();
    }
  });

  void it('a server the host cannot connect to fails the lookup as unreachable at once, without crashing the process', async () => {
    // connect(2) to the IPv4 broadcast address without SO_BROADCAST fails with EACCES: the error
    // reaches only the connect callback (a send() after it threw outside any handler)
    const outcomes: string[] = [];
    const r = createResolver({
      servers: [{ host: '255.255.255.255', port: 53 }], timeoutMs: 30_000, attempts: 2, cacheSize: 0,
      observer: { lookup: (_type, outcome) => outcomes.push(outcome), cacheHit: () => undefined },
    });
    try {
      await assert.rejects(r.resolve('q.example', 'TXT'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ECONNREFUSED');
        assert.match(err.message, /connect EACCES/, 'the connect error, not the 30 s timeout');
        return true;
      });
      assert.deepEqual(outcomes, ['unreachable'], 'the metric label');
    } finally {
      r.close();
    }
  });

  void it('refuses a DNS server that is not an IP address', () => {
    assert.throws(() => createResolver({ servers: [{ host: 'dns.example', port: 53 }] }), TypeError);
    assert.throws(() => createResolver({ servers: [{ host: '127.0.0.1', port: 0 }] }), TypeError);
  });
});
