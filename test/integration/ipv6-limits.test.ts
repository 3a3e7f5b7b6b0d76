/**
 * limits.maxConnectionsPerIp counts an IPv6 client by its /64 (limits.ipv6PrefixLength): a
 * subscriber holds 2^64 addresses, so counting per /128 gave one IPv6 network no limit at all
 * (issue 10). The gateway listens on ::1 and trusts PROXY headers from it, which claim the
 * client addresses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { eventually } from '../harness/wait.ts';
import { proxyV1, startWorld } from '../harness/world.ts';

const connect = (port: number, ip: string): ReturnType<typeof SmtpTestClient.connect> =>
  SmtpTestClient.connect(port, { host: '::1', preface: proxyV1(ip) });

describe('per-client connection limit for IPv6', () => {
  const config = (ipv6PrefixLength?: number) => ({
    listen: ['[::1]:0'],
    limits: { maxConnectionsPerIp: 2, ...(ipv6PrefixLength === undefined ? {} : { ipv6PrefixLength }) },
    proxyProtocol: { trusted: ['::1'] },
  });

  it('three addresses of one /64 share its 2 slots (421 4.7.0 for the third); another /64 and IPv4 are not affected', async () => {
    const w = await startWorld({ config: config() });
    try {
      const a = await connect(w.gw.port, '2001:db8:1:2::a');
      const b = await connect(w.gw.port, '2001:db8:1:2:ffff:ffff:ffff:ffff');
      const c = await connect(w.gw.port, '2001:db8:1:2::c');
      assert.deepEqual([a.greeting.code, b.greeting.code, c.greeting.code], [220, 220, 421]);
      assert.match(c.greeting.text, /^4\.7\.0 Too many connections/);
      const otherNet = await connect(w.gw.port, '2001:db8:1:3::a');
      const v4 = await connect(w.gw.port, '192.0.2.7');
      assert.equal(otherNet.greeting.code, 220);
      assert.equal(v4.greeting.code, 220);
      // a slot of the /64 given back is usable by any address in it
      await a.client.quit();
      await eventually(() => w.gw.gateway.openConnections() === 3, 'the closed sessions gave their slots back');
      const d = await connect(w.gw.port, '2001:db8:1:2::d');
      assert.equal(d.greeting.code, 220);
      for (const x of [b, c, otherNet, v4, d]) x.client.destroy();
    } finally {
      await w.close();
    }
  });

  it('limits.ipv6PrefixLength: 128 counts each address on its own', async () => {
    const w = await startWorld({ config: config(128) });
    try {
      const sessions = [];
      for (const ip of ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2::c']) sessions.push(await connect(w.gw.port, ip));
      assert.deepEqual(sessions.map((s) => s.greeting.code), [220, 220, 220]);
      for (const s of sessions) s.client.destroy();
    } finally {
      await w.close();
    }
  });
});
