/**
 * Reading the deploy/ files the way their consumers do: the Grafana dashboard's queries, the
 * Prometheus alert rules, the metric names both mention, and the metric families a real
 * /metrics exposition declares.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { DEPLOY } from './tools.ts';

export const DASHBOARD_FILE = path.join(DEPLOY, 'grafana/postern.json');
export const ALERTS_FILE = path.join(DEPLOY, 'prometheus/alerts.yml');

export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type: string; uid: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: ReadonlyArray<{ refId: string; expr: string; datasource?: { type: string; uid: string }; instant?: boolean }>;
}

export interface Dashboard {
  readonly schemaVersion: number;
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { list: ReadonlyArray<{ name: string; type: string; query?: unknown; definition?: string; datasource?: { uid: string } }> };
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export function readDashboard(file = DASHBOARD_FILE): Dashboard {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Dashboard;
}

export function readAlertRules(file = ALERTS_FILE): AlertRule[] {
  const doc = parse(fs.readFileSync(file, 'utf8')) as { groups: Array<{ rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

/** Every PromQL query of the dashboard: panel targets and the templating variables' queries. */
export function dashboardQueries(d: Dashboard): string[] {
  const out: string[] = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push(t.expr);
  for (const v of d.templating.list) if (v.type === 'query' && v.definition) out.push(v.definition);
  return out;
}

/** Names of Postern metrics (postern_…) mentioned anywhere in `texts`: queries, descriptions. */
export function metricNamesIn(texts: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(/\bpostern_[a-z0-9_]*[a-z0-9]\b/g)) names.add(m[0]);
  return names;
}

/** Every string value in a JSON document (so a panel description naming a metric counts too). */
export function jsonStrings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(jsonStrings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(jsonStrings);
  return [];
}

/**
 * Sample names a Prometheus text exposition declares (`# TYPE name type`), with the series a
 * histogram or summary adds: name_bucket, name_sum, name_count. A family is declared even
 * before its first labelled sample, which is what a query can rely on.
 */
export function exposedNames(exposition: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.set(name, type);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.set(name + s, type);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.set(name + s, type);
  }
  return names;
}

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} +(.+?) *$/gm)) {
    anchors.add(m[1]!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return anchors;
}
