/**
 * The running version: package.json's, read once from beside src/ wherever Postern is
 * installed (no build step stamps it). Shown by `postern --version`, in the start-up log line
 * and as the postern_build_info metric.
 */
import fs from 'node:fs';
import path from 'node:path';

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown'; // a copy without package.json still runs; it just cannot say its version
  }
}

export const VERSION: string = readVersion();
