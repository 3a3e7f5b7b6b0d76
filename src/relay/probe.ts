import type { Clock } from '../core/clock.ts';

export type ProbeResult = { ok: true } | { ok: false; error: string };

/**
 * /readyz is polled by every load balancer and kubelet, often in parallel: probing the backend
 * once per request would open a backend session each time (200 concurrent requests, 200
 * Postfix smtpd processes). Callers share the probe in flight, and a finished probe's answer
 * stands for `intervalMs`: at most one backend session per interval, whatever the request rate.
 */
export function sharedProbe(run: () => Promise<ProbeResult>, clock: Clock, intervalMs: number): () => Promise<ProbeResult> {
  let inFlight: Promise<ProbeResult> | null = null;
  let last: { at: number; result: ProbeResult } | null = null;
  return () => {
    if (inFlight) return inFlight;
    if (last && clock.now() - last.at < intervalMs) return Promise.resolve(last.result);
    inFlight = run()
      .catch((err: unknown): ProbeResult => ({ ok: false, error: err instanceof Error ? err.message : String(err) }))
      .then((result) => {
        last = { at: clock.now(), result };
        inFlight = null;
        return result;
      });
    return inFlight;
  };
}
