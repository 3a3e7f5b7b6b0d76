/**
 * deploy/systemd/postern.service passes `systemd-analyze verify` (Debian package systemd,
 * installed by `make test`'s test-deps when missing). The unit names /opt/postern, which does
 * not exist here, and verify checks that ExecStart is executable: so the test verifies a copy
 * whose paths point at this checkout, every other line unchanged.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DEPLOY, ROOT, run } from './helpers/tools.ts';

const UNIT = fs.readFileSync(path.join(DEPLOY, 'systemd/postern.service'), 'utf8');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-systemd-'));

/** systemd-analyze verify on `text` saved as postern.service; warnings about the unit count as failures. */
async function verify(text: string): Promise<{ code: number | null; problems: string[] }> {
  const file = path.join(dir, 'postern.service');
  fs.writeFileSync(file, text);
  const r = await run('systemd-analyze', ['verify', file]);
  // verify exits 0 on unknown keys and bad values ("…, ignoring"): the lines about our file are what matter.
  const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('postern.service'));
  return { code: r.code, problems };
}

function localCopy(unit: string): string {
  const replaced = unit.replaceAll('/opt/postern', ROOT);
  assert.notEqual(replaced, unit, 'the unit no longer names /opt/postern: update this test');
  return replaced;
}

describe('systemd unit', () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('systemd-analyze verify passes, with no warning about the unit', async () => {
    const r = await verify(localCopy(UNIT));
    assert.deepEqual(r.problems, []);
    assert.equal(r.code, 0);
  });

  it('verify catches a misspelt directive and a missing binary (the check is not a no-op)', async () => {
    const misspelt = await verify(localCopy(UNIT).replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'));
    assert.match(misspelt.problems.join('\n'), /Unknown key (name )?'NoNewPrivilege'/);
    const missing = await verify(UNIT);
    assert.notEqual(missing.code, 0);
    assert.match(missing.problems.join('\n'), /\/opt\/postern\/node_modules\/\.bin\/node is not executable/);
  });

  it('drains within the stop timeout, reloads with SIGHUP and keeps the capability to bind port 25 only', () => {
    const value = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(UNIT)?.[1];
    const example = fs.readFileSync(path.join(DEPLOY, 'postern.example.yaml'), 'utf8');
    const drainMs = Number(/^ {2}drainTimeoutMs: (\d+)/m.exec(example)?.[1]);
    assert.ok(Number(value('TimeoutStopSec')) * 1000 > drainMs, `TimeoutStopSec=${value('TimeoutStopSec')} vs drainTimeoutMs ${drainMs}`);
    assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(value('KillSignal'), 'SIGTERM');
    assert.equal(value('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
    assert.equal(value('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
    assert.equal(value('User'), 'postern');
  });
});
