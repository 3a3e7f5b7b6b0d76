/**
 * Every way Postern is started passes the same Node.js options (src/cluster/runtime-flags.ts):
 * bin/postern, the systemd unit, the Docker image, and a cluster primary for its workers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RUNTIME_FLAGS, withRuntimeFlags } from '../../src/cluster/runtime-flags.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

describe('Node.js runtime flags', () => {
  it('bin/postern, the systemd unit and the Docker image start node with them, before the script', () => {
    const starts = {
      'bin/postern': /^exec "\$node" (.*) "\$here\/src\/main\.ts"/m.exec(read('bin/postern'))?.[1],
      'deploy/systemd/postern.service': /^ExecStart=\S+node (.*) \/opt\/postern\/src\/main\.ts/m.exec(read('deploy/systemd/postern.service'))?.[1],
      'deploy/docker/Dockerfile': /^CMD \["node", (.*), "src\/main\.ts"/m.exec(read('deploy/docker/Dockerfile'))?.[1]?.replace(/"/g, '').replace(/,\s*/g, ' '),
    };
    for (const [file, flags] of Object.entries(starts)) assert.deepEqual(flags?.split(' '), [...RUNTIME_FLAGS], file);
  });

  it('workers get them too, unless the operator set their own', () => {
    assert.deepEqual(withRuntimeFlags([]), [...RUNTIME_FLAGS]);
    assert.deepEqual(withRuntimeFlags(['--max-semi-space-size=64']), ['--max-semi-space-size=64']);
    assert.deepEqual(withRuntimeFlags(['--cpu-prof']), ['--cpu-prof', ...RUNTIME_FLAGS]);
  });
});
