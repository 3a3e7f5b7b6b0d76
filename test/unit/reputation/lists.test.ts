import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigErrors } from '../../../src/core/errors.ts';
import { EMPTY_LIST, load, loadLists, parseList } from '../../../src/reputation/lists.ts';

describe('allow and block lists', () => {
  it('matches addresses, networks, exact domains and wildcard subdomains', () => {
    const l = parseList([
      '# partners',
      '203.0.113.7',
      '198.51.100.0/24   # a whole network',
      '2001:db8::/32',
      'Example.COM',
      '*.mail.example',
      '',
    ].join('\n'), 'allow.txt');
    assert.equal(l.size, 5);
    assert.equal(l.hasIp('203.0.113.7'), true);
    assert.equal(l.hasIp('::ffff:198.51.100.200'), true);
    assert.equal(l.hasIp('2001:db8:ffff::1'), true);
    assert.equal(l.hasIp('203.0.113.8'), false);
    assert.equal(l.hasDomain('example.com.'), true);
    assert.equal(l.hasDomain('sub.example.com'), false);
    assert.equal(l.hasDomain('a.b.mail.example'), true);
    assert.equal(l.hasDomain('mail.example'), false);
    assert.equal(Object.isFrozen(l), true);
    assert.equal(EMPTY_LIST.hasIp('203.0.113.7'), false);
  });

  it('names file:line:column for every bad entry', () => {
    const text = 'ok.example\n10.0.0.0/33\n  bad domain\n300.1.2.3/8\nexa_mple..com\n';
    assert.throws(() => parseList(text, 'block.txt'), (err: unknown) => {
      assert.ok(err instanceof ConfigErrors);
      assert.deepEqual(err.errors.map((e) => e.message), [
        'block.txt:2:1: invalid IP address or CIDR "10.0.0.0/33"',
        'block.txt:3:3: one entry per line, got "bad domain"',
        'block.txt:4:1: invalid IP address or CIDR "300.1.2.3/8"',
        'block.txt:5:1: invalid IP address, CIDR or domain "exa_mple..com"',
      ]);
      return true;
    });
  });

  it('loads files (reloadable: each load is a new frozen matcher) and reports unreadable ones', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-lists-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'allow.txt');
    writeFileSync(file, '192.0.2.1\n');
    const first = load(file);
    writeFileSync(file, '192.0.2.2\n');
    const second = load(file);
    assert.deepEqual([first.hasIp('192.0.2.1'), second.hasIp('192.0.2.1'), second.hasIp('192.0.2.2')], [true, false, true]);
    assert.equal(second.source, file);
    const both = loadLists({ allow: file });
    assert.deepEqual([both.allow.size, both.block.size], [1, 0]);
    assert.throws(() => load(join(dir, 'missing.txt')), /missing\.txt: cannot read list: ENOENT/);
  });
});
