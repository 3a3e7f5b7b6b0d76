/**
 * `decisions.file`: the decision records (decision-record.ts) as JSON lines in a file of their
 * own, so a security team can keep weeks of them for `postern replay` without keeping every
 * log. Rotated by size and/or at midnight UTC, rotated files gzipped, at most `keep` of them
 * (rotating-file-stream does the rotation, compression and retention).
 *
 * Never on the mail path's critical section: a record is one buffered write. When the disk
 * does not keep up (more than MAX_PENDING_BYTES waiting) or the file failed, records are
 * dropped and counted (postern_decision_file_records_total{outcome="dropped"}), never waited for.
 */
import type { Location } from '../config/load.ts';
import { flag, size } from '../config/values.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import { z } from 'zod';
import type { Clock } from '../core/clock.ts';
import { ConfigError } from '../core/errors.ts';
import type { DecisionRecord } from './decision-record.ts';

/** Bytes waiting for the disk past which records are dropped instead of queued. */
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;
const MIN_ROTATE_BYTES = 4096;

/** The `decisions` configuration section, merged into config/schema.ts. */
export const decisionsConfigShape = {
  decisions: z.strictObject({
    file: z.string().min(1).optional()
      .describe('JSON-lines file of decision records, for `postern replay` (relative to the config file); absent = off; with workers each writes its own (decisions.w1.jsonl, …)'),
    maxBytes: size(0).refine((n) => n === 0 || n >= MIN_ROTATE_BYTES, `0 (no size limit) or at least ${MIN_ROTATE_BYTES}`)
      .default(100_000_000).describe('Rotate decisions.file when it reaches this size, bytes; 0 = no size limit'),
    daily: flag().default(true).describe('Also rotate decisions.file at midnight UTC'),
    keep: z.number().int().min(1).max(10_000).default(30).describe('Rotated (gzipped) decision files kept; older ones are deleted'),
  }).refine((d) => d.file === undefined || d.maxBytes > 0 || d.daily, {
    message: 'decisions.file would grow without bound: set maxBytes or daily',
    path: ['maxBytes'],
  }).prefault({}),
};

export type DecisionsConfig = z.output<typeof decisionsConfigShape.decisions>;

export interface DecisionFile {
  write(session: string, record: DecisionRecord): void;
  /** Flushes and closes (gateway stop). */
  close(): Promise<void>;
}

/**
 * serve refuses, and check-config reports, a decisions.file it could not write: its folder
 * missing or not writable, or the path itself a folder (the stream would fail at the first
 * record, and every record after it would be dropped).
 */
export function checkDecisionsFile(
  config: { readonly decisions: DecisionsConfig },
  where: (key: string) => Location = (key) => ({ key }),
): ConfigError[] {
  const file = config.decisions.file;
  if (file === undefined) return [];
  const dir = path.dirname(file);
  const problem = (text: string): ConfigError[] => [new ConfigError(text, where('decisions.file'))];
  try {
    if (!fs.statSync(dir).isDirectory()) return problem(`${dir} is not a folder`);
    fs.accessSync(dir, fs.constants.W_OK);
    const existing = fs.statSync(file, { throwIfNoEntry: false });
    if (existing?.isDirectory()) return problem(`${file} is a folder: name a file in it, e.g. ${path.join(file, 'decisions.jsonl')}`);
    if (existing) fs.accessSync(file, fs.constants.W_OK);
  } catch (err) {
    return problem(`cannot write decision records to ${file}: ${(err as Error).message}`);
  }
  return [];
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * decisions.jsonl → decisions-20261123-000000.000-1.jsonl.gz: sortable by time, the index
 * counting rotations by size within one millisecond.
 */
function rotatedName(file: string): (time: number | Date | null, index?: number) => string {
  const { name, ext } = path.parse(file);
  return (time, index) => {
    if (time === null) return path.basename(file);
    const t = new Date(time);
    const stamp = `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}-${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${pad(t.getUTCSeconds())}.${pad(t.getUTCMilliseconds(), 3)}`;
    return `${name}-${stamp}-${index ?? 1}${ext || '.jsonl'}.gz`;
  };
}

export function openDecisionFile(config: DecisionsConfig & { readonly file: string }, deps: {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly counted: (outcome: 'written' | 'dropped') => void;
}): DecisionFile {
  const stream: RotatingFileStream = createStream(rotatedName(config.file), {
    path: path.dirname(config.file),
    ...(config.maxBytes > 0 ? { size: `${config.maxBytes}B` } : {}),
    ...(config.daily ? { interval: '1d', intervalUTC: true } : {}),
    compress: 'gzip',
    maxFiles: config.keep,
    history: `.${path.basename(config.file)}.history`,
  });
  let failed = false;
  stream.on('error', (err) => {
    failed = true;
    deps.logger.error({ err: err.message, file: config.file }, 'decisions.file failed: decision records are dropped until restart');
  });
  stream.on('warning', (err) => deps.logger.warn({ err: err.message, file: config.file }, 'decisions.file rotation problem'));
  // where the records went, for an operator looking for a day's file (and a test waiting for midnight)
  stream.on('open', () => deps.logger.debug({ file: config.file }, 'decisions.file open'));
  stream.on('rotated', (rotated: string) => deps.logger.info({ file: config.file, rotated }, 'decisions.file rotated'));
  return {
    write(session, record) {
      if (failed || stream.writableLength > MAX_PENDING_BYTES) {
        deps.counted('dropped');
        return;
      }
      stream.write(JSON.stringify({ time: new Date(deps.clock.now()).toISOString(), session, ...record }) + '\n');
      deps.counted('written');
    },
    close() {
      return new Promise((resolve) => {
        if (failed || stream.destroyed) {
          resolve();
          return;
        }
        stream.end(() => resolve());
      });
    },
  };
}
