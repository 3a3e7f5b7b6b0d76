/**
 * Config values read the same from the file and from POSTERN_* variables: the same text is
 * accepted or refused alike, with the same meaning. Units, words for booleans, suggestions
 * for misspelt names, YAML traps as located errors.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { getIn } from '../../../src/config/key-path.ts';
import { configLeaves } from '../../../src/config/leaves.ts';
import { maskUrl, parseDuration, parseSize } from '../../../src/config/values.ts';
import { closest } from '../../../src/config/suggest.ts';
import { ConfigErrors } from '../../../src/core/errors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-values-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function fromFile(yaml: string) {
  const file = path.join(dir, `c${n++}.yaml`);
  fs.writeFileSync(file, yaml);
  return loadConfig({ file, env: {}, cwd: dir });
}
const fromEnv = (env: Record<string, string>) => loadConfig({ env, cwd: dir });

/** The problems, without the location (which differs between file and environment). */
function problems(load: () => unknown): string[] | 'ok' {
  try {
    load();
    return 'ok';
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    return err.errors.map((e) => e.problem.replace(/ \(from environment\)$/, ''));
  }
}

describe('units', () => {
  it('sizes: SI units are powers of 1000, IEC units powers of 1024', () => {
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('10 mb'), 10_000_000);
    assert.equal(parseSize('10MiB'), 10_485_760);
    assert.equal(parseSize('512KiB'), 524_288);
    assert.equal(parseSize('1.5KB'), 1500);
    assert.equal(parseSize('2GB'), 2e9);
    assert.equal(parseSize('1234'), 1234);
    assert.equal(parseSize('10XB'), undefined);
    assert.equal(parseSize('10 M'), undefined, 'a bare M is ambiguous: refused');
  });

  it('durations convert to the unit of the key', () => {
    assert.equal(parseDuration('30s', 'ms'), 30_000);
    assert.equal(parseDuration('5m', 'ms'), 300_000);
    assert.equal(parseDuration('5m', 's'), 300);
    assert.equal(parseDuration('2h', 's'), 7200);
    assert.equal(parseDuration('3d', 'h'), 72);
    assert.equal(parseDuration('500ms', 'ms'), 500);
    assert.equal(parseDuration('300', 's'), 300, 'a plain number is in the key\'s unit');
    assert.equal(parseDuration('5 minutes', 'ms'), undefined);
  });

  it('a key takes its units from the file and the environment alike', () => {
    const file = fromFile('limits:\n  maxMessageSize: 10MB\n  socketTimeoutMs: 5m\nbackend:\n  recipientCacheSeconds: 10m\nreputation:\n  halfLifeHours: 3d\n').config;
    const env = fromEnv({ POSTERN_LIMITS_MAX_MESSAGE_SIZE: '10MB', POSTERN_LIMITS_SOCKET_TIMEOUT_MS: '5m', POSTERN_BACKEND_RECIPIENT_CACHE_SECONDS: '10m', POSTERN_REPUTATION_HALF_LIFE_HOURS: '3d' }).config;
    for (const c of [file, env]) {
      assert.equal(c.limits.maxMessageSize, 10_000_000);
      assert.equal(c.limits.socketTimeoutMs, 300_000);
      assert.equal(c.backend.recipientCacheSeconds, 600);
      assert.equal(c.reputation.halfLifeHours, 72);
    }
    assert.equal(fromFile('limits:\n  maxMessageSize: 5000000\n').config.limits.maxMessageSize, 5_000_000, 'plain numbers keep working');
    assert.deepEqual(problems(() => fromFile('backend:\n  recipientCacheSeconds: 1500ms\n')), ['expected a whole number of seconds']);
  });
});

describe('passwords in URLs', () => {
  it('are masked whole, whatever characters they hold', () => {
    assert.equal(maskUrl('redis://u:secret@cache.example:6379/0'), 'redis://u:****@cache.example:6379/0');
    assert.equal(maskUrl('redis://u:p@ssw0rd@cache.example:6379'), 'redis://u:****@cache.example:6379', 'an @ in the password');
    assert.equal(maskUrl('redis://:a@b@c@cache.example'), 'redis://:****@cache.example');
    assert.equal(maskUrl('rediss://u:pa/ss@cache.example'), 'rediss://u:****@cache.example', 'an unencoded / in the password');
    assert.equal(maskUrl('redis+sentinel://:p@w@s1:26379,s2:26379/mymaster'), 'redis+sentinel://:****@s1:26379,s2:26379/mymaster');
    assert.equal(maskUrl('redis://cache.example:6379/0'), 'redis://cache.example:6379/0', 'no password: unchanged');
    assert.equal(maskUrl('redis://user@cache.example:6379'), 'redis://user@cache.example:6379', 'a user without a password');
    assert.equal(maskUrl('not a url'), 'not a url');
  });

  it('are masked in check-config errors', () => {
    const refused = problems(() => fromFile('redis:\n  url: "redis://u:p@ssw0rd@/0"\n'));
    assert.ok(Array.isArray(refused) && refused.length === 1, String(refused));
    assert.doesNotMatch(refused[0]!, /ssw0rd/);
    assert.match(refused[0]!, /redis:\/\/u:\*\*\*\*@\/0/);
  });
});

describe('time keys', () => {
  const UNIT: Array<[RegExp, string]> = [[/Ms$/, 'ms'], [/Seconds$/, 's'], [/Hours$/, 'h'], [/Days$/, 'd']];
  const timeKeys = configLeaves().flatMap((leaf) => {
    const unit = UNIT.find(([suffix]) => suffix.test(leaf.key))?.[1];
    return unit ? [{ leaf, unit }] : [];
  });

  it('every key that is a time (…Ms, …Seconds, …Hours, …Days) takes a unit', () => {
    assert.ok(timeKeys.length >= 20, `${timeKeys.length} time keys`);
    for (const { leaf, unit } of timeKeys) {
      // the default, written with the key's own unit: accepted and read as the plain number
      const c = fromEnv({ [leaf.env]: `${String(leaf.default)}${unit}` }).config;
      assert.equal(getIn(c, leaf.path), leaf.default, leaf.key);
    }
    assert.equal(fromFile('limits:\n  greetingDelayMs: 0.25s\n').config.limits.greetingDelayMs, 250);
    assert.equal(fromFile('reports:\n  dmarc:\n    periodHours: 1d\n').config.reports.dmarc.periodHours, 24);
    assert.deepEqual(problems(() => fromFile('limits:\n  greetingDelayMs: 1m\n')), ['at most 30000 milliseconds']);
    assert.deepEqual(problems(() => fromFile('reports:\n  dmarc:\n    periodHours: 2d\n')), ['one of 1, 2, 3, 4, 6, 8, 12, 24 hours (periods align to UTC days)']);
  });

  it('a key in milliseconds (a timer) is at most 24 days: Node.js would fire a longer timer at once', () => {
    const keys = timeKeys.filter((t) => t.unit === 'ms');
    assert.ok(keys.length >= 10);
    for (const { leaf } of keys) {
      const refused = problems(() => fromEnv({ [leaf.env]: '30d' }));
      assert.ok(Array.isArray(refused) && refused.some((p) => /at most 24d \(2073600000 ms\)|at most \d+ milliseconds/.test(p)), `${leaf.key}: ${String(refused)}`);
    }
    assert.deepEqual(problems(() => fromFile('limits:\n  socketTimeoutMs: 30d\n')), ['at most 24d (2073600000 ms): a longer timer cannot be kept']);
    assert.deepEqual(problems(() => fromFile('limits:\n  socketTimeoutMs: 2147483648\n')), ['at most 24d (2073600000 ms): a longer timer cannot be kept']);
    assert.equal(fromFile('limits:\n  socketTimeoutMs: 24d\n').config.limits.socketTimeoutMs, 24 * 86_400_000);
  });
});

describe('the file and the environment give the same verdict', () => {
  // [key path, env var, text]: each text alone, in the YAML file and in the variable.
  const table: Array<[string, string, string, 'ok' | RegExp]> = [
    ['backend.xclient', 'POSTERN_BACKEND_XCLIENT', 'yes', 'ok'],
    ['backend.xclient', 'POSTERN_BACKEND_XCLIENT', 'off', 'ok'],
    ['backend.xclient', 'POSTERN_BACKEND_XCLIENT', '1', 'ok'],
    ['backend.xclient', 'POSTERN_BACKEND_XCLIENT', 'maybe', /expected true or false/],
    ['backend.port', 'POSTERN_BACKEND_PORT', '99999', /a port is 1-65535/],
    ['backend.port', 'POSTERN_BACKEND_PORT', '25', 'ok'],
    ['limits.maxMessageSize', 'POSTERN_LIMITS_MAX_MESSAGE_SIZE', '10MB', 'ok'],
    ['limits.maxMessageSize', 'POSTERN_LIMITS_MAX_MESSAGE_SIZE', '10 bananas', /expected a size/],
    ['dns.timeoutMs', 'POSTERN_DNS_TIMEOUT_MS', '2s', 'ok'],
    ['dns.timeoutMs', 'POSTERN_DNS_TIMEOUT_MS', 'soon', /expected a duration/],
  ];
  const lists: Array<[string, string, string, 'ok' | RegExp]> = [
    ['listen', 'POSTERN_LISTEN', '127.0.0.1:99999', /out of range \(0-65535\)/],
    ['listen', 'POSTERN_LISTEN', 'mx.example:25', /must be an IP address/],
    ['listen', 'POSTERN_LISTEN', '[::1]:2525', 'ok'],
    ['proxyProtocol.trusted', 'POSTERN_PROXY_PROTOCOL_TRUSTED', 'garbage', /invalid IP address or CIDR "garbage"/],
    ['proxyProtocol.trusted', 'POSTERN_PROXY_PROTOCOL_TRUSTED', '10.0.0.0/8', 'ok'],
    ['dns.servers', 'POSTERN_DNS_SERVERS', 'localhost:53', /"localhost" is not an IP address; dns\.servers takes resolver IP addresses/],
    ['dns.servers', 'POSTERN_DNS_SERVERS', '[2001:db8::53]:53', 'ok'],
    ['domains', 'POSTERN_DOMAINS', '.com', /public suffix "com"/],
    ['domains', 'POSTERN_DOMAINS', '*.example.com', 'ok'],
    ['redis.nodes', 'POSTERN_REDIS_NODES', 'redis1:70000', /out of range/],
  ];
  const yamlOf = (key: string, value: string): string => {
    const parts = key.split('.');
    return parts.map((p, i) => `${'  '.repeat(i)}${p}:`).join('\n') + ` ${value}\n`;
  };
  for (const [key, env, text, expect] of [...table, ...lists]) {
    it(`${key} = ${text}`, () => {
      const isList = lists.some((l) => l[0] === key);
      const file = problems(() => fromFile(yamlOf(key, isList ? `[${JSON.stringify(text)}]` : JSON.stringify(text))));
      const variable = problems(() => fromEnv({ [env]: text }));
      assert.deepEqual(variable, file, 'the same verdict and the same words');
      if (expect === 'ok') assert.equal(file, 'ok');
      else assert.match((file as string[]).join('\n'), expect);
    });
  }
});

describe('unknown names and YAML traps', () => {
  it('an unknown POSTERN_ variable is an error with a suggestion', () => {
    assert.deepEqual(problems(() => fromEnv({ POSTERN_DOMIANS: 'example.com' })), ['unknown environment variable, no config key has this name (did you mean POSTERN_DOMAINS?)']);
    assert.deepEqual(problems(() => fromEnv({ POSTERN_CONFIG_FILE: 'x' })), ['unknown environment variable, no config key has this name (did you mean POSTERN_CONFIG?)']);
    assert.equal(problems(() => fromEnv({ POSTERN_DOMAINS: 'example.com', OTHER_THING: '1' })), 'ok', 'other variables are none of our business');
  });

  it('an unknown key is an error with a suggestion from its own level', () => {
    assert.deepEqual(problems(() => fromFile('limits:\n  max_message_size: 10MB\n')), ['unknown key (did you mean maxMessageSize?)']);
    assert.deepEqual(problems(() => fromFile('domain: [example.com]\n')), ['unknown key (did you mean domains?)']);
    assert.deepEqual(problems(() => fromFile('zzzz: 1\n')), ['unknown key']);
    assert.equal(closest('bakend', ['backend', 'dns']), 'backend');
    assert.deepEqual(problems(() => fromFile('xclient: yes\n')), ['expected a mapping with the keys trusted (did you mean backend.xclient?)']);
  });

  it('a known key in the wrong place gets the full path of the key of that name', () => {
    assert.deepEqual(problems(() => fromFile('maxMessageSize: 10MB\n')), ['unknown key (did you mean limits.maxMessageSize?)']);
    assert.deepEqual(problems(() => fromFile('maxMesageSize: 10MB\n')), ['unknown key (did you mean limits.maxMessageSize?)'], 'misspelt too');
    assert.deepEqual(problems(() => fromFile('backend:\n  socketTimeoutMs: 5m\n')), ['unknown key (did you mean limits.socketTimeoutMs?)'], 'the same name elsewhere beats a close sibling');
    assert.deepEqual(problems(() => fromFile('port: 25\n')), ['unknown key (did you mean backend.port or reports.dmarc.relay.port?)']);
    assert.deepEqual(problems(() => fromFile('relay:\n  host: x\n')), ['unknown key (did you mean reports.dmarc.relay?)'], 'a section too');
    assert.deepEqual(problems(() => fromFile('limits:\n  max_message_size: 1\n')), ['unknown key (did you mean maxMessageSize?)'], 'a sibling spelt otherwise first');
  });

  it('a value not among a key\'s options gets the one it resembles', () => {
    const levels = 'Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"';
    assert.deepEqual(problems(() => fromFile('log:\n  level: warning\n')), [`${levels} (did you mean warn?)`]);
    assert.deepEqual(problems(() => fromEnv({ POSTERN_LOG_LEVEL: 'warning' })), [`${levels} (did you mean warn?)`]);
    assert.deepEqual(problems(() => fromFile('log:\n  level: verbose\n')), [levels]);
    assert.deepEqual(problems(() => fromFile('backend:\n  tls: STARTTLS\n')), ['Invalid option: expected one of "none"|"starttls" (did you mean starttls?)']);
  });

  it('an unquoted *.example.com says to quote it, at its line', () => {
    assert.throws(() => fromFile('domains:\n  - example.net\n  - *.example.com\n'), (err: ConfigErrors) => {
      assert.equal(err.errors.length, 1);
      assert.equal(err.errors[0]!.line, 3);
      assert.equal(err.errors[0]!.key, 'domains.1');
      assert.match(err.errors[0]!.problem, /quote it: "\*\.example\.com"/);
      return true;
    });
  });

  it('an alias bomb ends in one located error, not in memory exhaustion or a stack trace', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`)].join('\n');
    assert.throws(() => fromFile(bomb + '\n'), (err: ConfigErrors) => {
      assert.equal(err.errors.length, 1);
      assert.equal(err.errors[0]!.line, 2);
      assert.match(err.errors[0]!.problem, /YAML aliases expand too much/);
      return true;
    });
  });

  it('a legitimate alias still works', () => {
    const c = fromFile('domains: &d [example.net]\nxclient:\n  trusted: [127.0.0.1]\nproxyProtocol:\n  trusted: [10.0.0.0/8]\n').config;
    assert.deepEqual(c.domains, ['example.net']);
  });
});
