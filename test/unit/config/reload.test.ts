/** What a SIGHUP applies and what waits for a restart. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configChange } from '../../../src/config/reload.ts';
import { configSchema } from '../../../src/config/schema.ts';

const base = configSchema.parse({ domains: ['example.net'], listen: ['127.0.0.1:2525'] });

describe('configChange', () => {
  it('applies hot settings and keeps the running value of restart-only ones, naming them', () => {
    const next = configSchema.parse({
      domains: ['example.net', 'example.org'], listen: ['127.0.0.1:2526'],
      limits: { maxRecipients: 50, maxConnections: 10 }, backend: { port: 10026, recipientCacheSeconds: 120 },
      rateLimits: { ipMessages: { rate: '1/min', burst: 1 } }, log: { level: 'warn' },
    });
    const change = configChange(base, next);
    assert.deepEqual([...change.applied].sort(), ['domains', 'limits.maxRecipients', 'log.level', 'rateLimits.ipMessages.burst', 'rateLimits.ipMessages.rate']);
    assert.deepEqual([...change.needsRestart].sort(), ['backend.port', 'backend.recipientCacheSeconds', 'limits.maxConnections', 'listen']);
    assert.deepEqual(change.effective.domains, ['example.net', 'example.org']);
    assert.equal(change.effective.limits.maxRecipients, 50);
    assert.deepEqual(change.effective.listen, ['127.0.0.1:2525'], 'listener kept');
    assert.equal(change.effective.backend.port, 10025, 'backend kept');
    assert.equal(change.effective.limits.maxConnections, 1000);
    assert.ok(Object.isFrozen(change.effective.backend));
  });

  it('no change, nothing to report', () => {
    const change = configChange(base, configSchema.parse({ domains: ['example.net'], listen: ['127.0.0.1:2525'] }));
    assert.deepEqual(change.applied, []);
    assert.deepEqual(change.needsRestart, []);
  });
});
