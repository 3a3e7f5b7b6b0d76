/**
 * The pause before the greeting (limits.greetingDelayMs): smtp-server's fixed 100 ms made
 * ours, so fresh-connection throughput is not capped at C / 0.1 s (STYLE.md §2.8), while the
 * default still catches clients that talk before they are greeted.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { SmtpTestClient } from '../harness/smtp-client.ts';
import { startWorld } from '../harness/world.ts';

/** Milliseconds from the TCP connection to the greeting line. */
async function greetingAfter(port: number): Promise<{ ms: number; line: string }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const t0 = performance.now();
  const line = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      const end = buffered.indexOf('\r\n');
      if (end >= 0) resolve(buffered.slice(0, end));
    });
    socket.once('close', () => reject(new Error(`closed before the greeting: ${JSON.stringify(buffered)}`)));
  });
  const ms = performance.now() - t0;
  socket.destroy();
  return { ms, line };
}

/** Connects and writes EHLO at once, before any greeting can have come: the first reply line. */
async function talkFirst(port: number): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  socket.write('EHLO early.example\r\n');
  const client = await new Promise<string>((resolve) => {
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      const end = buffered.indexOf('\r\n');
      if (end >= 0) resolve(buffered.slice(0, end));
    });
    socket.once('close', () => resolve(buffered));
  });
  socket.destroy();
  return client;
}

describe('greeting pause (limits.greetingDelayMs)', () => {
  it('0: the greeting comes at once (well under the library\'s 100 ms)', async () => {
    const w = await startWorld({ config: { limits: { greetingDelayMs: 0 } } });
    try {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { ms, line } = await greetingAfter(w.gw.port);
        assert.match(line, /^220 /);
        times.push(ms);
      }
      // With a pause, no greeting can come before it: the fastest of five shows there is none.
      assert.ok(Math.min(...times) < 95, `greetings after ${times.map((t) => t.toFixed(1)).join(', ')} ms`);
    } finally {
      await w.close();
    }
  });

  it('a longer pause is kept: no greeting before it', async () => {
    const w = await startWorld({ config: { limits: { greetingDelayMs: 600 } } });
    try {
      const { ms, line } = await greetingAfter(w.gw.port);
      assert.match(line, /^220 /);
      assert.ok(ms >= 590, `greeting after ${ms.toFixed(1)} ms`);
    } finally {
      await w.close();
    }
  });

  it('default (100 ms): a client that talks first gets 421 "You talk too soon", one that waits is greeted', async () => {
    const w = await startWorld();
    try {
      assert.match(await talkFirst(w.gw.port), /^421 mx\.postern\.test You talk too soon/);
      const { client, greeting } = await SmtpTestClient.connect(w.gw.port);
      assert.equal(greeting.code, 220);
      client.destroy();
    } finally {
      await w.close();
    }
  });
});
