import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema, type ConfigInput } from '../../../src/config/schema.ts';
import { backendLoopProblems } from '../../../src/startup/backend-loop.ts';

/** This host, for the test: loopback and one interface address. */
const LOCAL = new Set(['0.0.0.0', '::', '127.0.0.1', '::1', '192.0.2.10']);

function problems(input: ConfigInput): string[] {
  const config = configSchema.parse({ domains: ['example.net'], metrics: { listen: '' }, ...input });
  return backendLoopProblems(config, (key) => ({ file: 'postern.yaml', line: 9, key }), LOCAL).map((e) => e.message);
}

void describe('a backend that is Postern itself', () => {
  void it('is refused at backend.port, naming the listener, when it is the same address or one a wildcard listener takes', () => {
    const [same] = problems({ listen: ['127.0.0.1:2525'], backend: { host: '127.0.0.1', port: 2525 } });
    assert.equal(same, 'postern.yaml:9: backend.port: backend 127.0.0.1:2525 is Postern\'s own SMTP listener (listen: 127.0.0.1:2525): accepted mail would be relayed back to Postern itself; point backend.host and backend.port at the mail server behind Postern (e.g. Postfix on 127.0.0.1:10025)');
    assert.match(problems({ listen: ['0.0.0.0:25'], backend: { host: 'localhost', port: 25 } })[0] ?? '', /listen: 0\.0\.0\.0:25/);
    assert.match(problems({ listen: ['0.0.0.0:25'], backend: { host: '192.0.2.10', port: 25 } })[0] ?? '', /own SMTP listener/);
    assert.match(problems({ listen: ['0.0.0.0:25'], backend: { host: '127.0.0.2', port: 25 } })[0] ?? '', /own SMTP listener/, 'all of 127/8 is this host');
    assert.match(problems({ listen: ['[::]:25'], backend: { host: '127.0.0.1', port: 25 } })[0] ?? '', /own SMTP listener/, '[::] is dual-stack');
    assert.match(problems({ listen: ['[::1]:25'], backend: { host: '::1', port: 25 } })[0] ?? '', /own SMTP listener/);
    assert.match(problems({ listen: ['127.0.0.1:25', '127.0.0.1:587'], backend: { host: '::ffff:127.0.0.1', port: 587 } })[0] ?? '', /\(listen\.1: 127\.0\.0\.1:587\)/);
    assert.match(problems({ listen: ['0.0.0.0:25'], metrics: { listen: '127.0.0.1:9465' }, backend: { host: '127.0.0.1', port: 9465 } })[0] ?? '', /own metrics listener \(metrics\.listen/);
  });

  void it('is not what another port, another host, an IPv4 wildcard for an IPv6 backend, or a name (no DNS at start) is', () => {
    assert.deepEqual(problems({ listen: ['0.0.0.0:25'], backend: { host: '127.0.0.1', port: 10025 } }), []);
    assert.deepEqual(problems({ listen: ['0.0.0.0:25'], backend: { host: '198.51.100.7', port: 25 } }), [], 'another host');
    assert.deepEqual(problems({ listen: ['127.0.0.1:25'], backend: { host: '192.0.2.10', port: 25 } }), [], 'another address of this host');
    assert.deepEqual(problems({ listen: ['0.0.0.0:25'], backend: { host: '::1', port: 25 } }), []);
    assert.deepEqual(problems({ listen: ['0.0.0.0:25'], backend: { host: 'mail.example', port: 25 } }), []);
    assert.deepEqual(problems({ listen: ['127.0.0.1:0'], backend: { host: '127.0.0.1', port: 10025 } }), [], 'an ephemeral port');
  });
});
