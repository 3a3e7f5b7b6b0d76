/**
 * /readyz probes the backend at most once per interval (5 s), one probe shared by all
 * concurrent requests (issue 10: every request opened a backend SMTP session, so 200
 * concurrent requests held up to 200 Postfix smtpd processes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { manualClock, startWorld } from '../harness/world.ts';

describe('/readyz and the backend probe', () => {
  it('200 concurrent /readyz: one backend session, every answer 200; a new probe only after the interval', async () => {
    const clock = manualClock();
    const w = await startWorld({ clock });
    try {
      const url = `http://127.0.0.1:${w.gw.httpPort}/readyz`;
      const burst = async (): Promise<number[]> => Promise.all(Array.from({ length: 200 }, async () => {
        const res = await fetch(url);
        await res.text();
        return res.status;
      }));
      const first = await burst();
      assert.ok(first.every((s) => s === 200), `statuses: ${[...new Set(first)].join(',')}`);
      assert.equal(w.sink.connections, 1, 'one probe for the whole burst');

      clock.advance(4_999);
      await burst();
      assert.equal(w.sink.connections, 1, 'the answer stands for the interval');

      clock.advance(1);
      await burst();
      assert.equal(w.sink.connections, 2, 'probed again once the interval is over');

      // a backend gone is seen at the next probe, not later
      await w.sink.close();
      clock.advance(5_000);
      const r = await fetch(url);
      assert.equal(r.status, 503);
      assert.match(((await r.json()) as { checks: { backend: { error: string } } }).checks.backend.error, /ECONNREFUSED|refused|connect/i);
    } finally {
      await w.close(); // closing the sink twice is harmless
    }
  });
});
