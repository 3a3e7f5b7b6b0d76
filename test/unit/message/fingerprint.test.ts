/* eslint-disable @typescript-eslint/no-floating-promises -- node:test awaits describe()/it() itself */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messageFingerprint } from '../../../src/message/fingerprint.ts';

const base = { sender: 'alice@example.com', recipients: ['bob@example.org', 'carol@example.org'], messageId: '<1@example.com>', body: Buffer.from('x') };

describe('messageFingerprint', () => {
  it('is a stable hex SHA-256', () => {
    const a = messageFingerprint(base);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(messageFingerprint({ ...base }), a);
  });

  it('ignores recipient order, duplicates and address case', () => {
    assert.equal(
      messageFingerprint({ ...base, sender: 'Alice@Example.COM', recipients: ['CAROL@example.org', 'bob@example.org', 'bob@example.org'] }),
      messageFingerprint(base),
    );
  });

  it('ignores the body when there is a Message-ID', () => {
    assert.equal(messageFingerprint({ ...base, body: Buffer.from('other') }), messageFingerprint(base));
  });

  it('changes with sender, recipients or Message-ID', () => {
    const a = messageFingerprint(base);
    assert.notEqual(messageFingerprint({ ...base, sender: '' }), a);
    assert.notEqual(messageFingerprint({ ...base, recipients: ['bob@example.org'] }), a);
    assert.notEqual(messageFingerprint({ ...base, messageId: '<2@example.com>' }), a);
  });

  it('uses the body hash when there is no Message-ID', () => {
    const a = messageFingerprint({ ...base, messageId: null });
    assert.equal(messageFingerprint({ ...base, messageId: null }), a);
    assert.notEqual(messageFingerprint({ ...base, messageId: null, body: Buffer.from('y') }), a);
    assert.notEqual(a, messageFingerprint(base));
  });
});
