/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
/**
 * policies/policy.schema.json and policy-test.schema.json are generated from the loader's own
 * zod schemas: stale files fail here, and a JSON Schema validator (what editors run) accepts
 * every shipped policy and test file and refuses what the loader refuses.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { policyFileJsonSchema, policyTestJsonSchema } from '../../../src/policy/json-schema.ts';

const POLICIES = path.resolve(import.meta.dirname, '../../../policies');
const BROKEN = path.resolve(import.meta.dirname, '../../fixtures/policies/broken');
const read = (file: string): unknown => parse(fs.readFileSync(file, 'utf8'));

describe('JSON Schema of policy files', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const policy = ajv.compile(policyFileJsonSchema());
  const tests = ajv.compile(policyTestJsonSchema());

  it('policies/policy.schema.json and policy-test.schema.json are up to date (postern policy schema [--tests])', () => {
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(POLICIES, 'policy.schema.json'), 'utf8')), policyFileJsonSchema(),
      'stale: run  node src/main.ts policy schema > policies/policy.schema.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(POLICIES, 'policy-test.schema.json'), 'utf8')), policyTestJsonSchema(),
      'stale: run  node src/main.ts policy schema --tests > policies/policy-test.schema.json');
  });

  it('every shipped policy file and sample validates, and says where its schema is', () => {
    const files = fs.readdirSync(POLICIES).filter((f) => /\.ya?ml(\.sample)?$/.test(f));
    assert.ok(files.length >= 6, files.join(' '));
    for (const file of files) {
      const text = fs.readFileSync(path.join(POLICIES, file), 'utf8');
      const isTest = /\.test\.ya?ml/.test(file);
      assert.ok(text.startsWith(`# yaml-language-server: $schema=./${isTest ? 'policy-test' : 'policy'}.schema.json\n`), `${file}: modeline`);
      const validate = isTest ? tests : policy;
      assert.ok(validate(parse(text)), `${file}: ${ajv.errorsText(validate.errors)}`);
    }
  });

  it('refuses what the loader refuses: an unknown key, a bad result, a bad action; accepts a scalar or a list', () => {
    assert.equal(policy(read(path.join(BROKEN, 'unknown-key.yaml'))), false);
    assert.match(ajv.errorsText(policy.errors), /additional properties/);
    assert.equal(policy(read(path.join(BROKEN, 'bad-result.yaml'))), false);
    assert.equal(policy(read(path.join(BROKEN, 'bad-action.yaml'))), false);
    assert.equal(policy({ rules: [{ name: 'a', match: { spf: 'fail', ip: ['192.0.2.1', '198.51.100.0/24'] }, action: 'reject' }] }), true);
    assert.equal(policy({ rules: [{ name: 'a', match: { spf: [] }, action: 'reject' }] }), false, 'an empty list');
    assert.equal(tests([{ name: 'x', facts: { dmarc_polcy: 'none' }, expect: { action: 'accept' } }]), false);
  });
});
