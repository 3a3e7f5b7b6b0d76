#!/usr/bin/env node
/**
 * The postern CLI's entry point (the table of commands is src/cli/commands.ts). It only turns on
 * Node's compile cache before anything else loads: V8 code of every module is then kept on disk
 * (NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache), so a start after the first skips type
 * stripping and compiling, about a third of a CLI start (check-config, a restarted worker). A
 * cache that cannot be written is skipped silently.
 */
import module from 'node:module';

module.enableCompileCache?.();
await import('./cli/commands.ts');
