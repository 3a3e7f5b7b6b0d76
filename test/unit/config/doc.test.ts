/** The README's configuration table is the schema's: generated, and checked for drift here. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configTable } from '../../../src/config/doc.ts';
import { configLeaves } from '../../../src/config/leaves.ts';

describe('configuration reference', () => {
  it('README.md holds exactly the table generated from the schema', () => {
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../../README.md'), 'utf8');
    assert.ok(readme.includes(configTable()), 'README configuration table is stale: paste configTable() from src/config/doc.ts');
  });

  it('every key has a description', () => {
    const undocumented = configLeaves().filter((l) => l.description.trim() === '').map((l) => l.path.join('.'));
    assert.deepEqual(undocumented, []);
  });
});
