#!/usr/bin/env node
// Launcher. Inside the workspace, package exports point at TypeScript sources, so the CLI runs
// them through tsx's loader; a published install (no src/) runs the compiled dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, '..', 'src', 'main.ts');
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(src).href);
} else {
  await import(pathToFileURL(join(here, '..', 'dist', 'main.js')).href);
}
