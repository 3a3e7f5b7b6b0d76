/**
 * The RFC 7208 (openspf.org) test suite lives beside the repository, in ../shared/conformance,
 * not in it. On a developer's machine without it, the tests that need it are skipped and say
 * why. In CI (the CI variable set, as .ci/run and every CI service do) a missing suite is a
 * failure: a run that silently checked nothing must not pass.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Zone } from './dns-server.ts';

export interface SpfCase { host: string; helo?: string; mailfrom: string; result: string | string[]; description?: string }
export interface SpfScenario { description: string; zonedata: Zone; tests: Record<string, SpfCase> }

const SUITE = new URL('../../../shared/conformance/rfc7208-tests.yml', import.meta.url);

export function rfc7208Suite(): { scenarios: SpfScenario[]; skip: string | false } {
  if (existsSync(SUITE)) {
    return { scenarios: parseAllDocuments(readFileSync(SUITE, 'utf8')).map((doc) => doc.toJS() as SpfScenario), skip: false };
  }
  const where = decodeURIComponent(SUITE.pathname);
  if (process.env.CI) throw new Error(`the RFC 7208 suite is missing at ${where}: CI needs ../shared/conformance beside the repository`);
  return { scenarios: [], skip: `${where} is not there (../shared/conformance beside the repository)` };
}
