/**
 * Every way a transaction ends (src/pipeline/endings.ts), at the SMTP boundary: for each, the
 * reply the client got, the one decision line (none for an abandoned transaction), the metric
 * changes (each reply counted exactly once, one ending, one message) and the rate-limit
 * buckets afterwards (which tokens stayed spent). Regressions of issue 12: B1 (a 4xx at the end
 * of DATA kept the domain's token), B2 (a DATA rate-limit refusal counted twice), B5 (a failed
 * quarantine redirect left no decision line and blamed the mailbox for any failure), and of
 * issue 12's audit: an unexpected error (internal-error) ended nothing, leaking the message's
 * bytes, tokens and backend connection; a 421 cutting a message at shutdown was not counted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadPolicies } from '../../src/policy/load.ts';
import type { CompiledRule } from '../../src/policy/types.ts';
import { domainSubject, ipSubject } from '../../src/reputation/keys.ts';
import { NO_LISTS } from '../../src/reputation/lists.ts';
import { createMemoryStore } from '../../src/reputation/memory-store.ts';
import { scoreParams } from '../../src/reputation/store.ts';
import { reputationConfigSchema } from '../../src/reputation/config.ts';
import type { Limiter, RateStore } from '../../src/reputation/types.ts';
import { message, sign } from '../harness/mail.ts';
import { changes, scrape } from '../harness/metrics.ts';
import { SmtpTestClient, type Reply } from '../harness/smtp-client.ts';
import { SHIPPED_POLICIES, type GatewayOptions } from '../harness/gateway.ts';
import type { SinkBehaviour } from '../harness/sink.ts';
import { eventually } from '../harness/wait.ts';
import { manualClock, startWorld, type World } from '../harness/world.ts';

const GOOD = 'bob@good.example';
const ZONE = { '_dmarc.bank.example': [{ TXT: 'v=DMARC1; p=reject' }], 'spf-fail.example': [{ TXT: 'v=spf1 -all' }] };
const METRICS = ['postern_smtp_replies_total', 'postern_transaction_endings_total', 'postern_messages_total', 'postern_inflight_budget_refusals_total'];
const LIMITS = { rate: '1/hour', burst: 50 };
const RATE_LIMITS = { ipMessages: LIMITS, ipRecipients: LIMITS, domainMessages: LIMITS };
const QUARANTINE = {
  '00-quarantine.yaml': 'rules:\n  - name: hold\n    match: { from_domain: held.example }\n    action: quarantine\n    mailbox: hold@example.net\n',
};

interface Scenario {
  readonly sink?: SinkBehaviour;
  readonly policies?: Record<string, string>;
  /** A rule set built by the test instead of policy files (the internal-error seam). */
  readonly resources?: () => Promise<GatewayOptions['resources']>;
  readonly config?: GatewayOptions['config'];
  /** Drives the client; returns the replies worth asserting. */
  run(w: World, c: SmtpTestClient): Promise<Reply | null>;
  /** Waits until the gateway has recorded the ending (for endings without a reply). */
  settled?(w: World): Promise<void>;
}

/** Tokens and size of the buckets the transaction may have spent (null: never touched, full). */
async function tokens(store: RateStore, now: number): Promise<Record<string, { tokens: number; burst: number } | null>> {
  const out: Record<string, { tokens: number; burst: number } | null> = {};
  const read = async (subject: ReturnType<typeof ipSubject>, limiters: Limiter[]): Promise<void> => {
    const { buckets } = await store.inspect(subject, now);
    for (const l of limiters) {
      const b = buckets.find((x) => x.limiter === l);
      out[l] = b ? { tokens: b.tokens, burst: b.burst ?? b.tokens } : null;
    }
  };
  await read(ipSubject('127.0.0.1'), ['ip-messages', 'ip-recipients']);
  await read(domainSubject('good.example'), ['domain-messages']);
  return out;
}

/** Tokens spent between two reads of the same buckets (an untouched bucket is full). */
function spentBetween(before: Awaited<ReturnType<typeof tokens>>, after: Awaited<ReturnType<typeof tokens>>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => {
    const full = after[k]?.burst ?? before[k]?.burst ?? 0;
    return [k, Math.round(((before[k]?.tokens ?? full) - (after[k]?.tokens ?? full)) * 1000) / 1000];
  }));
}

async function atData(c: SmtpTestClient, from = GOOD): Promise<void> {
  assert.equal((await c.cmd('EHLO client.example')).code, 250);
  assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
  assert.equal((await c.cmd('RCPT TO:<user@example.net>')).code, 250);
}

interface Ended {
  readonly reply: Reply | null;
  readonly decisions: Array<Record<string, unknown>>;
  readonly metrics: Record<string, number>;
  readonly spent: Record<string, number>;
  readonly logs: Array<Record<string, unknown>>;
  /** Message bytes still held when the session had closed. */
  readonly inflightBytes: number | undefined;
  /** What the backend received, all connections, and the messages it accepted. */
  readonly backend: { readonly wire: string; readonly messages: number };
}

async function ending(s: Scenario): Promise<Ended> {
  const clock = manualClock();
  const store = createMemoryStore({ score: scoreParams(reputationConfigSchema.parse({})) });
  const resources = await s.resources?.();
  const w = await startWorld({
    clock, store, zone: ZONE, policies: s.policies, sink: { behaviour: s.sink ?? {} }, config: { rateLimits: RATE_LIMITS, ...s.config }, ...(resources ? { resources } : {}),
  });
  try {
    const before = await scrape(w.gw.httpPort);
    const tokensBefore = await tokens(store, clock.now());
    const { client } = await SmtpTestClient.connect(w.gw.port);
    const reply = await s.run(w, client);
    if (s.settled) await s.settled(w);
    else await client.quit();
    await eventually(() => w.gw.gateway.openConnections() === 0, 'the session closed');
    const after = await scrape(w.gw.httpPort);
    const tokensAfter = await tokens(store, clock.now());
    const spent = spentBetween(tokensBefore, tokensAfter);
    return {
      reply, decisions: w.gw.decisions(), metrics: changes(before, after, METRICS), spent, logs: w.gw.logs,
      inflightBytes: after.get('postern_inflight_bytes'), backend: { wire: w.sink.received().toString('latin1'), messages: w.sink.messages.length },
    };
  } finally {
    await w.close();
  }
}

/**
 * The shipped policies behind one more rule, first, whose matcher throws for one sender domain
 * (a bug in a condition, say): at MAIL, or only once the message is read (DATA). The seam for
 * an internal error at the SMTP boundary, injected as createGateway's start-up resources.
 */
async function throwingRules(senderDomain: string, at: 'mail' | 'data'): Promise<GatewayOptions['resources']> {
  const shipped = await loadPolicies(SHIPPED_POLICIES);
  const boom: CompiledRule = {
    ...shipped.rules[0]!,
    name: 'boom',
    match: {
      conditions: [{
        key: 'sender_domain', stage: 'mail',
        test: ({ facts }) => {
          if (facts.envelope.senderDomain === senderDomain && (at === 'mail' || facts.message)) throw new Error('a matcher bug');
          return false;
        },
      }],
      not: null,
      stage: 'mail',
    },
  };
  return { ruleSet: { ...shipped, rules: [boom, ...shipped.rules] }, lists: NO_LISTS, tls: null };
}

/** The one error line an unexpected error leaves, with its stack. */
function errorLines(logs: ReadonlyArray<Record<string, unknown>>): Array<{ msg: unknown; stack: string }> {
  return logs.filter((l) => l.level === 50).map((l) => ({ msg: l.msg, stack: String((l.err as { stack?: string } | undefined)?.stack ?? '') }));
}

const LINE = 'x'.repeat(998) + '\r\n';

const signed = (w: World, opts: { from?: string } = {}): Promise<string> => sign(message({ from: opts.from ?? GOOD }), { domain: 'good.example', selector: 's1', key: w.keys.rsa });

describe('transaction endings: reply, decision line, metrics, tokens', () => {
  it('delivered: 250 from the backend; every token stays spent', async () => {
    const r = await ending({ async run(w, c) { await atData(c); return c.data(await signed(w)); } });
    assert.equal(r.reply?.code, 250);
    assert.equal(r.decisions.length, 1);
    assert.equal(r.decisions[0]!.ending, 'delivered');
    assert.equal(r.decisions[0]!.action, 'accept');
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="2xx"}': 1,
      'postern_transaction_endings_total{ending="delivered"}': 1,
      'postern_messages_total{action="accept",rule="",reason="default"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 1, 'domain-messages': 1 });
  });

  it('refused by policy at DATA (DMARC p=reject): 550; tokens stay spent (a final outcome)', async () => {
    const r = await ending({ async run(_w, c) { await atData(c, 'x@other.example'); return c.data(message({ from: 'ceo@bank.example' })); } });
    assert.equal(r.reply?.code, 550);
    assert.match(r.reply.text, /^5\.7\.1 Rejected by DMARC policy: bank\.example publishes p=reject /);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.rule], ['policy', 'reject', 'dmarc-reject']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="5xx"}'], 1);
    assert.equal(r.metrics['postern_transaction_endings_total{ending="policy"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('refused by policy at MAIL FROM: 550 5.7.23, one decision line, nothing taken', async () => {
    const policies = { '00-spf.yaml': 'rules:\n  - name: spf-reject\n    match: { spf: fail }\n    action: reject\n' };
    const r = await ending({
      policies,
      async run(_w, c) {
        await c.cmd('EHLO client.example');
        return c.cmd('MAIL FROM:<x@spf-fail.example>');
      },
    });
    assert.equal(r.reply?.code, 550);
    assert.match(r.reply.text, /^5\.7\.23 /);
    assert.deepEqual([r.decisions.length, r.decisions[0]!.ending, r.decisions[0]!.stage], [1, 'policy', 'mail']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="5xx"}': 1,
      'postern_transaction_endings_total{ending="policy"}': 1,
      'postern_messages_total{action="reject",rule="spf-reject",reason="spf-fail"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 0, 'domain-messages': 0 });
  });

  it('refused by the backend with a 5xx: its reply mirrored; message tokens stay spent', async () => {
    const r = await ending({ sink: { data: () => ({ code: 554, message: '5.6.0 content refused' }) }, async run(w, c) { await atData(c); return c.data(await signed(w)); } });
    assert.deepEqual([r.reply?.code, r.reply?.text.replace(/ \(.*$/, '')], [554, '5.6.0 content refused']);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.reason], ['backend-refused', 'reject', 'backend-rejected']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="5xx"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 1, 'domain-messages': 1 });
  });

  it('B1: deferred by the backend (451): message and domain tokens go back, the recipient\'s stays spent', async () => {
    const r = await ending({ sink: { data: () => ({ code: 451, message: '4.3.0 try later' }) }, async run(w, c) { await atData(c); return c.data(await signed(w)); } });
    assert.equal(r.reply?.code, 451);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action], ['backend-refused', 'tempfail']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="4xx"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('B2: rate-limited at DATA (the domain\'s bucket): one 451 4.7.1, counted once', async () => {
    const r = await ending({
      config: { rateLimits: { ...RATE_LIMITS, domainMessages: { rate: '1/hour', burst: 1 } } },
      async run(w, c) {
        await atData(c);
        assert.equal((await c.data(await signed(w))).code, 250);
        assert.equal((await c.cmd(`MAIL FROM:<${GOOD}>`)).code, 250);
        assert.equal((await c.cmd('RCPT TO:<user@example.net>')).code, 250);
        return c.data(await signed(w));
      },
    });
    assert.equal(r.reply?.code, 451);
    assert.match(r.reply.text, /^4\.7\.1 Rate limit exceeded/);
    assert.deepEqual(r.decisions.map((d) => d.ending), ['delivered', 'rate-limited']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="4xx"}'], 1);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="2xx"}'], 1);
    assert.equal(r.metrics['postern_transaction_endings_total{ending="rate-limited"}'], 1);
    // the refused message gives its MAIL token back; the first one's tokens stay spent
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 2, 'domain-messages': 1 });
  });

  it('refused by our limits (bare LF with bareLineEndings: reject): 550 5.6.0; tokens stay spent', async () => {
    const r = await ending({
      config: { limits: { bareLineEndings: 'reject' } },
      async run(_w, c) {
        await atData(c);
        assert.equal((await c.cmd('DATA')).code, 354);
        c.write(`From: <${GOOD}>\r\nSubject: x\r\n\r\nbare\nLF\r\n.\r\n`);
        return c.read();
      },
    });
    assert.equal(r.reply?.code, 550);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.reason], ['message-limit', 'bad-line-endings']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="5xx"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('data timeout: 421 4.4.2 written and counted once; message tokens go back', async () => {
    const r = await ending({
      config: { limits: { dataTimeoutMs: 400 } },
      async run(_w, c) {
        await atData(c);
        assert.equal((await c.cmd('DATA')).code, 354);
        c.write('Subject: slow\r\n');
        return c.read();
      },
      settled: (w) => eventually(() => w.gw.decisions().length === 1, 'the decision line'),
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [421, '4.4.2']);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.reason], ['data-timeout', 'tempfail', 'timeout']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="data-timeout"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="timeout"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('client gone during DATA: no reply, one decision line; message tokens go back', async () => {
    const r = await ending({
      async run(_w, c) {
        await atData(c);
        assert.equal((await c.cmd('DATA')).code, 354);
        c.write('Subject: cut\r\n\r\nhalf');
        c.destroy();
        return null;
      },
      settled: (w) => eventually(() => w.gw.decisions().length === 1, 'the decision line'),
    });
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.reason], ['client-gone', 'tempfail', 'client-gone']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="4xx"}'], undefined, 'no reply was sent, none counted');
    assert.equal(r.metrics['postern_transaction_endings_total{ending="client-gone"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('backend lost while relaying: 451 4.4.1; message tokens go back', async () => {
    const r = await ending({ sink: { data: () => 'drop' }, async run(w, c) { await atData(c); return c.data(await signed(w)); } });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.4.1']);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.reason], ['backend-lost', 'backend-unavailable']);
    assert.equal(r.metrics['postern_smtp_replies_total{stage="data",class="4xx"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('backend lost before DATA (at a later RCPT): DATA gets 451 4.4.1, recorded at stage data', async () => {
    const r = await ending({
      async run(w, c) {
        await atData(c);
        w.sink.dropConnections(); // the backend restarts between two recipients
        const lost = await c.cmd('RCPT TO:<other@example.net>');
        assert.deepEqual([lost.code, lost.text.slice(0, 5)], [451, '4.4.1']);
        return c.data(await signed(w));
      },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.4.1']);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.reason, r.decisions[0]!.stage], ['backend-lost', 'backend-unavailable', 'data']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="4xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="backend-lost"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="backend-unavailable"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 2, 'domain-messages': 0 });
  });

  it('B5: quarantine mailbox refused: 451 4.4.1, a decision line naming the failed step', async () => {
    const r = await ending({
      policies: QUARANTINE,
      sink: { rcpt: (a) => (a === 'hold@example.net' ? { code: 550, message: '5.1.1 no such mailbox' } : undefined) },
      async run(_w, c) { await atData(c); return c.data(message({ from: 'x@held.example' })); },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.4.1']);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.rule, r.decisions[0]!.action], ['quarantine-failed', 'hold', 'tempfail']);
    assert.match(String(r.decisions[0]!.error), /at rcpt: 550 5\.1\.1 no such mailbox/);
    assert.equal(r.metrics['postern_messages_total{action="tempfail",rule="hold",reason="backend-unavailable"}'], 1);
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('B5: quarantine MAIL refused: the log names MAIL, not the mailbox', async () => {
    let mails = 0;
    const r = await ending({
      policies: QUARANTINE,
      sink: { mail: () => (++mails === 2 ? { code: 451, message: '4.3.0 busy' } : undefined) },
      async run(_w, c) { await atData(c); return c.data(message({ from: 'x@held.example' })); },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.4.1']);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.rule, r.decisions[0]!.action], ['quarantine-failed', 'hold', 'tempfail']);
    assert.match(String(r.decisions[0]!.error), /at mail: 451 4\.3\.0 busy/);
    assert.ok(!r.logs.some((l) => l.msg === 'quarantine mailbox refused by backend'), 'the mailbox is not blamed');
    assert.ok(r.logs.some((l) => l.msg === 'backend unavailable for the quarantine mailbox' && l.step === 'mail'));
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="quarantine-failed"}': 1,
      'postern_messages_total{action="tempfail",rule="hold",reason="backend-unavailable"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });

  it('quarantine mailbox unreachable (its connection refused at the greeting): 451 4.4.1, the failed step is open', async () => {
    const r = await ending({
      policies: QUARANTINE,
      // the transaction's own connection is the first; the one opened for the mailbox is refused
      sink: { connect: (n) => (n >= 2 ? { code: 554, message: '5.3.2 not taking connections' } : undefined) },
      async run(_w, c) { await atData(c); return c.data(message({ from: 'x@held.example' })); },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.4.1']);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.rule, r.decisions[0]!.action], ['quarantine-failed', 'hold', 'tempfail']);
    assert.match(String(r.decisions[0]!.error), /quarantine mailbox unreachable at open: /);
    assert.ok(r.logs.some((l) => l.msg === 'backend unavailable for the quarantine mailbox' && l.step === 'open'));
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="quarantine-failed"}': 1,
      'postern_messages_total{action="tempfail",rule="hold",reason="backend-unavailable"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
    assert.equal(r.backend.messages, 0);
  });

  it('oversize (over limits.maxMessageSize): 552, one decision line; tokens stay spent (a final outcome)', async () => {
    const r = await ending({
      config: { limits: { maxMessageSize: 4096 } },
      async run(_w, c) { await atData(c); return c.data(message({ from: GOOD, body: LINE.repeat(8) })); },
    });
    assert.equal(r.reply?.code, 552);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.reason], ['message-limit', 'reject', 'oversize']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="5xx"}': 1,
      'postern_transaction_endings_total{ending="message-limit"}': 1,
      'postern_messages_total{action="reject",rule="",reason="oversize"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 1, 'ip-recipients': 1, 'domain-messages': 0 });
    assert.equal(r.inflightBytes, 0);
    assert.equal(r.backend.messages, 0);
  });

  it('over the in-flight byte budget: 452 4.3.1, counted; message tokens and every byte go back', async () => {
    const r = await ending({
      config: { limits: { maxBytesInFlight: 1_000_000 } },
      async run(_w, c) { await atData(c); return c.data(message({ from: GOOD, body: LINE.repeat(1100) })); },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [452, '4.3.1']);
    assert.equal(r.decisions.length, 1);
    assert.deepEqual([r.decisions[0]!.ending, r.decisions[0]!.action, r.decisions[0]!.reason], ['message-limit', 'tempfail', 'in-flight-budget']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="message-limit"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="in-flight-budget"}': 1,
      'postern_inflight_budget_refusals_total{stage="data"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
    assert.equal(r.inflightBytes, 0);
  });

  it('internal error at DATA (a matcher throws): 451 4.3.0, logged once with its stack; backend aborted, tokens by the rule, bytes back', async () => {
    const r = await ending({
      resources: () => throwingRules('good.example', 'data'),
      async run(w, c) { await atData(c); return c.data(await signed(w)); },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.3.0']);
    assert.equal(r.decisions.length, 1);
    const d = r.decisions[0]!;
    assert.deepEqual([d.ending, d.action, d.reason, d.stage, d.error], ['internal-error', 'tempfail', 'internal-error', 'data', 'a matcher bug']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="internal-error"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="internal-error"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
    assert.equal(r.inflightBytes, 0, 'the message bytes went back to the budget');
    const errors = errorLines(r.logs);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.msg, 'unexpected error in transaction');
    assert.match(errors[0]!.stack, /a matcher bug\n\s+at /);
    // aborted, not released: no DATA relayed, no RSET to put the connection back in the pool
    assert.equal(r.backend.messages, 0);
    assert.match(r.backend.wire, /RCPT TO:<user@example\.net>/);
    assert.doesNotMatch(r.backend.wire, /^(DATA|RSET)\r$/m);
  });

  it('internal error at MAIL FROM (a matcher throws): 451 4.3.0, one decision line, nothing taken', async () => {
    const r = await ending({
      resources: () => throwingRules('good.example', 'mail'),
      async run(_w, c) {
        await c.cmd('EHLO client.example');
        const mail = await c.cmd(`MAIL FROM:<${GOOD}>`);
        // the session goes on: another sender's transaction is not stuck behind it
        assert.equal((await c.cmd('MAIL FROM:<x@other.example>')).code, 250);
        assert.equal((await c.cmd('RSET')).code, 250);
        return mail;
      },
    });
    assert.deepEqual([r.reply?.code, r.reply?.text.slice(0, 5)], [451, '4.3.0']);
    assert.equal(r.decisions.length, 1);
    const d = r.decisions[0]!;
    assert.deepEqual([d.ending, d.action, d.reason, d.stage, d.error], ['internal-error', 'tempfail', 'internal-error', 'mail', 'a matcher bug']);
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="4xx"}': 1,
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_transaction_endings_total{ending="internal-error"}': 1,
      'postern_transaction_endings_total{ending="abandoned"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="internal-error"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 0, 'domain-messages': 0 });
    assert.equal(errorLines(r.logs).length, 1);
  });

  it('abandoned (RSET after RCPT): no decision line; the MAIL token goes back, the RCPT token stays spent', async () => {
    const r = await ending({
      async run(_w, c) {
        await atData(c);
        return c.cmd('RSET');
      },
    });
    assert.equal(r.reply?.code, 250);
    assert.equal(r.decisions.length, 0);
    assert.ok(r.logs.some((l) => l.event === 'abandoned' && l.by === 'rset'));
    assert.deepEqual(r.metrics, {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_transaction_endings_total{ending="abandoned"}': 1,
    });
    assert.deepEqual(r.spent, { 'ip-messages': 0, 'ip-recipients': 1, 'domain-messages': 0 });
  });
});

describe('transaction endings: shutdown', () => {
  /** Series → value from the registry (the HTTP endpoint is closed with the gateway). */
  const values = async (w: World, names: readonly string[]): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const line of (await w.gw.gateway.registry.metrics()).split('\n')) {
      if (!line || line.startsWith('#') || !names.includes(line.split('{')[0]!)) continue;
      const cut = line.lastIndexOf(' ');
      const v = Number(line.slice(cut + 1));
      if (v !== 0) out[line.slice(0, cut)] = v;
    }
    return out;
  };

  it('a transaction open when the gateway drains ends as shutdown: 421 4.3.2 (answering no command, not counted); its message token goes back', async () => {
    const clock = manualClock();
    const store = createMemoryStore({ score: scoreParams(reputationConfigSchema.parse({})) });
    const w = await startWorld({ clock, store, config: { rateLimits: RATE_LIMITS, shutdown: { drainTimeoutMs: 300 } } });
    const { client } = await SmtpTestClient.connect(w.gw.port);
    await atData(client);
    await w.close();
    const reply = await client.read();
    assert.deepEqual([reply.code, reply.text.slice(0, 5)], [421, '4.3.2']);
    const decisions = w.gw.decisions();
    assert.deepEqual(decisions.map((d) => [d.ending, d.action, d.reason, d.stage]), [['shutdown', 'tempfail', 'shutting-down', 'mail']]);
    assert.deepEqual(await values(w, METRICS), {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_transaction_endings_total{ending="shutdown"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="shutting-down"}': 1,
    });
    const { buckets } = await store.inspect(ipSubject('127.0.0.1'), clock.now());
    assert.equal(buckets.find((b) => b.limiter === 'ip-messages')?.tokens ?? 50, 50, 'full again (a full bucket is dropped)');
    assert.equal(buckets.find((b) => b.limiter === 'ip-recipients')?.tokens, 49);
    client.destroy();
  });

  it('a message cut by the drain deadline mid-DATA: its 421 4.3.2 answers the DATA and is counted once', async () => {
    const clock = manualClock();
    const store = createMemoryStore({ score: scoreParams(reputationConfigSchema.parse({})) });
    const w = await startWorld({ clock, store, config: { rateLimits: RATE_LIMITS, shutdown: { drainTimeoutMs: 300 } } });
    const { client } = await SmtpTestClient.connect(w.gw.port);
    await atData(client);
    assert.equal((await client.cmd('DATA')).code, 354);
    client.write(`From: <${GOOD}>\r\nSubject: cut\r\n\r\nhalf of it`);
    await w.close();
    const reply = await client.read();
    assert.deepEqual([reply.code, reply.text.slice(0, 5)], [421, '4.3.2']);
    assert.deepEqual(w.gw.decisions().map((d) => [d.ending, d.action, d.reason, d.stage]), [['shutdown', 'tempfail', 'shutting-down', 'data']]);
    assert.deepEqual(await values(w, METRICS), {
      'postern_smtp_replies_total{stage="mail",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="rcpt",class="2xx"}': 1,
      'postern_smtp_replies_total{stage="data",class="4xx"}': 1,
      'postern_transaction_endings_total{ending="shutdown"}': 1,
      'postern_messages_total{action="tempfail",rule="",reason="shutting-down"}': 1,
    });
    const { buckets } = await store.inspect(ipSubject('127.0.0.1'), clock.now());
    assert.equal(buckets.find((b) => b.limiter === 'ip-messages')?.tokens ?? 50, 50, 'the message token went back');
    assert.equal(w.sink.messages.length, 0);
    client.destroy();
  });
});
