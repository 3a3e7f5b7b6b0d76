/** Every metric of the catalogue is documented in the README's Observability table. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createMetrics } from '../../../src/observability/metrics.ts';

describe('metrics catalogue', () => {
  it('README.md documents every postern_ metric the gateway registers', async () => {
    const registry = new Registry();
    createMetrics(registry, { defaultMetrics: false });
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    assert.ok(names.length > 15, names.join(','));
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../../README.md'), 'utf8');
    const missing = names.filter((n) => !readme.includes(`| \`${n}\` |`));
    assert.deepEqual(missing, []);
  });
});
