/**
 * A real Prometheus (the Debian package's binary) on 127.0.0.1:<free port>, scraping given
 * targets every second and evaluating given rule files every second, with its TSDB in a temp
 * folder. Queried through its HTTP API, as Grafana and Alertmanager would.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort, pollUntil } from './tools.ts';

export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface PromRule {
  readonly name: string;
  readonly type: 'alerting' | 'recording';
  readonly health: 'ok' | 'err' | 'unknown';
  readonly lastError?: string;
  readonly lastEvaluation: string;
}

export interface PromAlert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: 'pending' | 'firing';
}

export interface PrometheusServer {
  readonly port: number;
  /** Instant query; rejects with Prometheus's error for a query it cannot parse or run. */
  query(expr: string): Promise<Sample[]>;
  rules(): Promise<PromRule[]>;
  alerts(): Promise<PromAlert[]>;
  /** Prometheus's own log so far (for failure messages). */
  log(): string;
  close(): Promise<void>;
}

export async function startPrometheus(opts: { job: string; targets: readonly string[]; ruleFiles?: readonly string[] }): Promise<PrometheusServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [...(opts.ruleFiles ?? [])],
    scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: [...opts.targets] }] }],
  };
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const child = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => (alive = false));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  const close = async (): Promise<void> => {
    if (alive) child.kill('SIGTERM');
    await exited;
    cleanup();
  };
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, { signal: AbortSignal.timeout(5_000) });
    const body = await res.json() as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${pathAndQuery}: ${body.errorType}: ${body.error}`);
    return body.data;
  };

  await spawned.catch((err: Error) => {
    cleanup();
    throw new Error(`cannot start prometheus (Debian package prometheus; \`make test-deps\` installs it): ${err.message}`);
  });
  try {
    await pollUntil(async () => {
      if (!alive) throw new Error(`prometheus exited: ${output}`);
      const res = await fetch(`http://127.0.0.1:${port}/-/ready`).catch(() => null);
      return res?.ok ? true : undefined;
    }, { timeoutMs: 15_000, what: () => `prometheus not ready: ${output}` });
  } catch (err) {
    await close();
    throw err;
  }

  return {
    port,
    query: async (expr) => (await api<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    rules: async () => (await api<{ groups: Array<{ rules: PromRule[] }> }>('/api/v1/rules')).groups.flatMap((g) => g.rules),
    alerts: async () => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts,
    log: () => output,
    close,
  };
}
