#!/usr/bin/env node
/**
 * The postern CLI's entry point (the table of commands is src/cli/commands.ts). It only turns on
 * Node's compile cache before anything else loads: V8 code of every module is then kept on disk,
 * so a start after the first skips type stripping and compiling, about a quarter of a CLI start
 * (check-config, a restarted worker).
 *
 * The cache lives in the installation (node_modules/.cache/node-compile), never in a shared
 * temporary folder: code loaded from it runs as whoever starts postern, so only whoever may
 * write the installation may write the cache (root runs `check-config` after the service user
 * did). A cache that cannot be written, as for the service user, is skipped silently.
 */
import module from 'node:module';
import { fileURLToPath } from 'node:url';

module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE ?? fileURLToPath(new URL('../node_modules/.cache/node-compile', import.meta.url)));
await import('./cli/commands.ts');
