/**
 * What the documents promise, checked against each other and against the program: one
 * description of SIGHUP in the README, deploy/README.md and the systemd unit; the README's
 * check-config example is what check-config prints; the license file matches package.json.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../harness/cli.ts';
import { DEPLOY, ROOT } from './helpers/tools.ts';

const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');
/** Text without line breaks, comment markers, Markdown code ticks or indentation. */
const flat = (text: string): string => text.replace(/^\s*#\s?/gm, '').replace(/`/g, '').replace(/\s+/g, ' ');

const SIGHUP = 'SIGHUP re-reads the config file, the policy folder, the allow/block lists and the TLS certificate and key, all or nothing: a broken one is refused, the old set stays in force, the error is logged and counted in postern_policy_reloads_total{outcome="failed"}.';

describe('documents', () => {
  it('SIGHUP is described in the same words in README.md, deploy/README.md and the systemd unit', () => {
    for (const file of ['README.md', 'deploy/README.md', 'deploy/systemd/postern.service']) {
      assert.ok(flat(read(file)).includes(SIGHUP), `${file} does not say: ${SIGHUP}`);
    }
  });

  it('the README\'s check-config example is what check-config prints for deploy/postern.example.yaml', async () => {
    const readme = read('README.md');
    const start = readme.indexOf('$ bin/postern check-config --config deploy/postern.example.yaml\n');
    assert.ok(start >= 0, 'the README shows the example');
    const shown = readme.slice(readme.indexOf('\n', start) + 1, readme.indexOf('```', start));
    const r = await runCli(['check-config', '--config', path.join(DEPLOY, 'postern.example.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.replaceAll(ROOT, '/opt/postern'), shown);
  });

  it('LICENSE is the license package.json names; the README links it, the changelog and the integration guide', () => {
    const pkg = JSON.parse(read('package.json')) as { license: string };
    assert.equal(pkg.license, 'MIT');
    assert.match(read('LICENSE'), /^MIT License\n/);
    const readme = read('README.md');
    for (const link of ['(LICENSE)', '(CHANGELOG.md)', '(docs/integration.md)']) assert.ok(readme.includes(link), link);
    assert.match(read('CHANGELOG.md'), /^## \[Unreleased\]$/m);
  });
});
