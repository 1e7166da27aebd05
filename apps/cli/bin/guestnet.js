#!/usr/bin/env node
// Launcher. A published install (no src/) runs the compiled dist/. Inside the workspace, package
// exports point at TypeScript sources; running them through tsx's in-process loader costs ~40 MB
// of RSS for the life of the process (Node 20 runs module hooks on a second V8 isolate) and
// ~0.3 s of start-up — which a long-running `guestnet attach` or `serve` pays for nothing. So
// the workspace CLI is bundled once with esbuild (tsx's own dependency) into
// node_modules/.cache/guestnet/cli.mjs and that bundle is run: plain JavaScript, no hooks.
// The bundle is rebuilt, in a short-lived child process, when any file it was built from changed
// (size or mtime, ~200 stats per start); `import.meta.url` keeps pointing at each source file,
// so native addons and other files next to the sources are found as before. The backends the
// CLI depends on are bundled and registered in-process (registerBackend), since
// `@guestnet/<name>` resolves to .ts files that plain Node cannot import. If esbuild is missing
// or the build fails, or GUESTNET_LAUNCHER=tsx is set (TypeScript stack traces), the sources
// run through tsx as before.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..');
const src = join(cli, 'src', 'main.ts');
const BACKENDS = ['slirp', 'uip', 'tap', 'netmap'];

const dir = join(cli, 'node_modules', '.cache', 'guestnet');
const out = join(dir, 'cli.mjs');
const manifest = join(dir, 'cli.inputs.json');
const self = fileURLToPath(import.meta.url);
const stamp = (f) => {
  try {
    const s = statSync(f);
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
};

/** Whether the bundle exists and every file it was built from is unchanged. */
function fresh() {
  try {
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    return m.launcher === stamp(self) && existsSync(out) && Object.entries(m.inputs).every(([f, s]) => stamp(f) === s);
  } catch {
    return false; // no manifest yet, or unreadable
  }
}

/** Build the bundle (in a child process of its own: see below); true when it was written. */
async function build() {
  let esbuild;
  try {
    const req = createRequire(import.meta.url);
    esbuild = createRequire(req.resolve('tsx/package.json'))('esbuild');
  } catch {
    return null;
  }
  const present = BACKENDS.filter((b) => existsSync(join(cli, 'node_modules', '@guestnet', b, 'package.json')));
  const entry = [
    "import { registerBackend } from '@guestnet/core';",
    ...present.map((b, i) => `import { descriptor as d${i} } from '@guestnet/${b}';`),
    ...present.map((_, i) => `registerBackend(d${i});`),
    // Imported only now (a static import would be evaluated before the registrations); main.ts
    // runs itself when argv[1] is this launcher.
    "await import('./src/main.ts');",
  ].join('\n');
  const importMetaUrl = {
    name: 'import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.[cm]?ts$/ }, (a) => {
        const text = readFileSync(a.path, 'utf8');
        return { contents: text.includes('import.meta.url') ? text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href)) : text, loader: 'ts' };
      });
    },
  };
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    const r = await esbuild.build({
      stdin: { contents: entry, resolveDir: cli, sourcefile: 'guestnet-entry.ts', loader: 'ts' },
      absWorkingDir: cli,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: `node${process.versions.node.split('.')[0]}`,
      outfile: tmp,
      write: true,
      metafile: true,
      sourcemap: 'linked',
      // Keep every module the sources import, as the unbundled program would evaluate them.
      ignoreAnnotations: true,
      logLevel: 'silent',
      banner: { js: "import { createRequire as __gnCreateRequire } from 'node:module'; const require = __gnCreateRequire(import.meta.url);" },
      plugins: [importMetaUrl],
    });
    const inputs = {};
    for (const f of Object.keys(r.metafile.inputs)) {
      if (f.startsWith('<')) continue;
      const abs = join(cli, f);
      inputs[abs] = stamp(abs);
    }
    renameSync(`${tmp}.map`, `${out}.map`);
    // The bundle names its map after the temporary file; point it at the final name.
    writeFileSync(tmp, readFileSync(tmp, 'utf8').replace(/\/\/# sourceMappingURL=.*\n?$/, '//# sourceMappingURL=cli.mjs.map\n'));
    renameSync(tmp, out);
    writeFileSync(`${manifest}.${process.pid}.tmp`, JSON.stringify({ launcher: stamp(self), inputs }));
    renameSync(`${manifest}.${process.pid}.tmp`, manifest);
    return true;
  } catch {
    return false;
  }
}

if (process.env.GUESTNET_LAUNCHER === 'build-bundle') {
  process.exitCode = (await build()) ? 0 : 1;
} else if (existsSync(src)) {
  // Built in a short-lived child, so that esbuild's module never sits in the memory of a
  // long-running command (whose RSS `pnpm bench` measures).
  const useBundle =
    process.env.GUESTNET_LAUNCHER !== 'tsx' &&
    (fresh() || spawnSync(process.execPath, [self], { env: { ...process.env, GUESTNET_LAUNCHER: 'build-bundle' }, stdio: 'inherit' }).status === 0);
  if (useBundle) {
    await import(pathToFileURL(out).href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(src).href);
  }
} else {
  await import(pathToFileURL(join(here, '..', 'dist', 'main.js')).href);
}
