/**
 * External destination verification (RFC 9990 §3) against a zone held in memory: the record
 * must start with v=DMARC1 by the tag syntax of RFC 9989 §4.7 (spaces around "=", any case of
 * the tag name, not of the value); a rua= (ruf= for failure reports) in it replaces the
 * destination, at the same host only, else nothing is sent at all.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DNSResolver } from 'mailauth';
import { parseVerificationRecord, verifyDestination } from '../../../src/reports/destinations.ts';

/** TXT answers by name; any other name is NXDOMAIN; 'SERVFAIL' fails the lookup. */
function resolverOf(zone: Record<string, string[] | 'SERVFAIL'>): DNSResolver {
  const resolver = (name: string, type: string): Promise<string[][]> => {
    const answer = type === 'TXT' ? zone[name.toLowerCase()] : undefined;
    if (answer === 'SERVFAIL') return Promise.reject(Object.assign(new Error(`SERVFAIL ${name}`), { code: 'ESERVFAIL' }));
    if (!answer) return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(answer.map((t) => [t]));
  };
  return resolver;
}

const NAME = 'blue.example._report._dmarc.red.example';
const verify = (records: string[] | 'SERVFAIL', tag: 'rua' | 'ruf' = 'rua') =>
  verifyDestination('blue.example', 'reports@red.example', resolverOf({ [NAME]: records }), tag);

describe('external destination verification (RFC 9990 §3)', () => {
  it('accepts v=DMARC1 by the tag syntax: spaces around "=", an upper-case tag name, a trailing ";"', async () => {
    for (const record of ['v=DMARC1', 'v=DMARC1;', 'v = DMARC1', 'V=DMARC1', 'V =DMARC1 ; ', 'v=DMARC1 ;rua=', '  v=DMARC1']) {
      assert.deepEqual(await verify([record]), { result: 'ok', to: ['reports@red.example'] }, record);
    }
  });

  it('refuses what is not a verification record: another value or version, v= not first, nothing', async () => {
    for (const records of [['v=dmarc1'], ['v=DMARC10'], ['v=DMARC1x;'], ['p=none; v=DMARC1'], ['v=spf1 -all'], []]) {
      assert.equal((await verify(records)).result, 'refused', JSON.stringify(records));
    }
    assert.equal((await verifyDestination('blue.example', 'reports@red.example', resolverOf({}))).result, 'refused', 'no record');
    assert.equal((await verify(['junk', 'v=DMARC1'])).result, 'ok', 'one valid record among others is enough');
  });

  it('a DNS failure is a temperror, never a verdict', async () => {
    assert.deepEqual(await verify('SERVFAIL'), { result: 'temperror' });
  });

  it('rua= in the record replaces the destination when every URI is at the same host', async () => {
    assert.deepEqual(await verify(['v=DMARC1; rua=mailto:agg@red.example']), { result: 'ok', to: ['agg@red.example'] });
    assert.deepEqual(await verify(['v=DMARC1; RUA = mailto:a@RED.example , mailto:b@red.example!10m']), { result: 'ok', to: ['a@red.example', 'b@red.example'] });
  });

  it('rua= naming another host: nothing is sent, to the destination or to the override', async () => {
    for (const rua of ['mailto:agg@elsewhere.example', 'mailto:a@red.example,mailto:b@sub.red.example', 'mailto:a@red.example,https://evil.example/r']) {
      const got = await verify([`v=DMARC1; rua=${rua}`]);
      assert.equal(got.result, 'refused', rua);
      assert.match(got.result === 'refused' ? got.detail : '', /redirects rua= to .* not at red\.example/);
    }
    assert.equal((await verify(['v=DMARC1; rua=https://red.example/reports'])).result, 'refused', 'no mailto: left to send to');
  });

  it('failure reports read ruf= there, not rua=', async () => {
    assert.deepEqual(await verify(['v=DMARC1; rua=mailto:agg@elsewhere.example'], 'ruf'), { result: 'ok', to: ['reports@red.example'] });
    assert.deepEqual(await verify(['v=DMARC1; ruf=mailto:fail@red.example'], 'ruf'), { result: 'ok', to: ['fail@red.example'] });
    assert.equal((await verify(['v=DMARC1; ruf=mailto:fail@elsewhere.example'], 'ruf')).result, 'refused');
  });

  it('parses the tags of a record, names lower-cased, the first of a repeated tag kept', () => {
    assert.deepEqual([...parseVerificationRecord('V = DMARC1 ; RUA=mailto:a@x.example;rua=mailto:b@x.example; bad')!], [['v', 'DMARC1'], ['rua', 'mailto:a@x.example']]);
    assert.equal(parseVerificationRecord('v=DMARC2'), null);
  });
});
