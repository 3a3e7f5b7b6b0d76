/**
 * The soak's books: what each client was told, per (Message-ID, recipient), against what the
 * backend accepted. Exact, not statistical: every 250 must be exactly one identical copy at
 * the backend; nothing may be at the backend without a 250, except where the client's
 * connection broke after its final dot (RFC 1047: the outcome was unknown to it), which is
 * counted apart.
 */
import type { AcceptedMessage } from './backend.ts';
import type { Delivery, Final } from './client.ts';

export interface Books {
  readonly messages: number;
  readonly recipients: number;
  readonly byFinal: ReadonlyMap<Final, number>;
  /** 250 and exactly one copy, body and header as sent. */
  readonly deliveredOnce: number;
  /** 250 but no copy at the backend. */
  readonly lost: readonly string[];
  /** More copies than the client can account for. */
  readonly duplicated: readonly string[];
  /** A copy whose body checksum or original header differs from what was sent. */
  readonly altered: readonly string[];
  /** At the backend, but the client got no 250 and its connection did not break after the dot. */
  readonly stray: readonly string[];
  /** The client's connection broke after its final dot, and the backend has the message. */
  readonly windowDelivered: number;
  readonly attempts: { readonly mean: number; readonly max: number };
}

const key = (id: string, rcpt: string): string => `${id} ${rcpt.toLowerCase()}`;
const UNKNOWN: ReadonlySet<Final> = new Set(['aborted-after-dot', 'broken-after-dot', 'timeout-after-dot']);

export function balance(deliveries: readonly Delivery[], accepted: readonly AcceptedMessage[]): Books {
  const copies = new Map<string, AcceptedMessage[]>();
  for (const m of accepted) {
    for (const rcpt of m.rcptTo) {
      const k = key(m.messageId ?? '(no Message-ID)', rcpt);
      copies.set(k, [...(copies.get(k) ?? []), m]);
    }
  }
  const byFinal = new Map<Final, number>();
  const lost: string[] = [];
  const duplicated: string[] = [];
  const altered: string[] = [];
  const stray: string[] = [];
  const known = new Set<string>();
  let deliveredOnce = 0;
  let windowDelivered = 0;
  let attempts = 0;
  let maxAttempts = 0;
  for (const d of deliveries) {
    const k = key(d.message.id, d.rcpt);
    known.add(k);
    const final = d.final ?? 'gave-up';
    byFinal.set(final, (byFinal.get(final) ?? 0) + 1);
    attempts += d.attempts;
    maxAttempts = Math.max(maxAttempts, d.attempts);
    const found = copies.get(k) ?? [];
    for (const c of found) if (c.bodySha !== d.message.bodySha || !c.header.endsWith(d.message.header)) altered.push(k);
    if (final === 'delivered') {
      if (found.length === 0) lost.push(`${k} (last: ${d.last || '250'})`);
      else if (found.length > 1) duplicated.push(`${k} x${found.length}`);
      else deliveredOnce++;
    } else if (UNKNOWN.has(final)) {
      if (found.length > 1) duplicated.push(`${k} x${found.length} (${final})`);
      else windowDelivered += found.length;
    } else if (found.length > 0) {
      stray.push(`${k} x${found.length} (client: ${final}, last: ${d.last})`);
    }
  }
  for (const [k, found] of copies) if (!known.has(k)) stray.push(`${k} x${found.length} (no client sent it)`);
  return {
    messages: new Set(deliveries.map((d) => d.message.id)).size,
    recipients: deliveries.length,
    byFinal, deliveredOnce, lost, duplicated, altered, stray, windowDelivered,
    attempts: { mean: deliveries.length ? attempts / deliveries.length : 0, max: maxAttempts },
  };
}

/** The failures of the books (empty when they balance). */
export function imbalances(b: Books): string[] {
  const out: string[] = [];
  const list = (what: string, items: readonly string[]): void => {
    if (items.length > 0) out.push(`${items.length} ${what}: ${items.slice(0, 5).join('; ')}${items.length > 5 ? '; …' : ''}`);
  };
  list('lost (250 without a copy at the backend)', b.lost);
  list('duplicated', b.duplicated);
  list('altered', b.altered);
  list('stray (at the backend without a 250)', b.stray);
  const broken = b.byFinal.get('broken-after-dot') ?? 0;
  if (broken > 0) out.push(`${broken} connection(s) broken by the gateway after the final dot`);
  const hung = b.byFinal.get('timeout-after-dot') ?? 0;
  if (hung > 0) out.push(`${hung} final reply(ies) never came (the gateway hung)`);
  return out;
}

const row = (label: string, n: number | string): string => `  ${label.padEnd(58)}${String(n).padStart(8)}`;

export function booksTable(b: Books, maxAttempts: number): string[] {
  const f = (k: Final): number => b.byFinal.get(k) ?? 0;
  const aborted = f('aborted-after-dot');
  return [
    `  per (Message-ID, recipient): ${b.messages} messages, ${b.recipients} recipients${' '.repeat(8)}count`,
    row('250 at the end of DATA (delivered)', f('delivered')),
    row('  exactly one identical copy at the backend', b.deliveredOnce),
    row('  lost: no copy at the backend', b.lost.length),
    row('  duplicated: more than one copy', b.duplicated.length),
    row('  altered: body or original header differs', b.altered.length),
    row('5xx (refused for good, not retried)', f('refused')),
    row(`gave up after ${maxAttempts} attempts (4xx or broken each time)`, f('gave-up')),
    row('client reset its connection right after the final dot', aborted),
    row('  of which at the backend (RFC 1047 window, explained)', b.windowDelivered),
    row('connection broken by the gateway after the final dot', f('broken-after-dot')),
    row('no final reply within the client timeout (hang)', f('timeout-after-dot')),
    row('at the backend without a 250 (stray, unexplained)', b.stray.length),
    `  attempts per recipient: mean ${b.attempts.mean.toFixed(2)}, max ${b.attempts.max}`,
  ];
}
