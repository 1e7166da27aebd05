/**
 * The backend registry and loader.
 *
 * `createBackend("backend=slirp,hostfwd=tcp::2222-:22")` parses the string, resolves the backend
 * type to its package (`@guestnet/` + type), imports it (each backend is installed separately, so a
 * program only pays for the backends it uses), validates the options against the descriptor's
 * schema and returns an un-initialised NetBackend.
 *
 * Resolution of `@guestnet/<type>` happens from the caller's point of view: with pnpm's strict
 * node_modules, core itself cannot see packages its user installed, so the loader tries, in order,
 * the `importer` the caller passes (`(s) => import(s)` written in the caller's own module), a plain
 * dynamic import (hoisted installs, bundlers), and a lookup relative to the working directory.
 * Third-party backends are named by package: `backend=@acme/guestnet-vde`.
 */
import type { NetBackend } from './backend.ts';
import type { BackendDescriptor, BackendOptions } from './schema.ts';
import type { ParsedConfig } from './config/types.ts';
import { parseConfig } from './config/parse.ts';
import { validateOptions } from './config/validate.ts';
import { suggest } from './config/suggest.ts';
import { BackendNotInstalledError, ConfigError, ErrorCode, GuestnetError } from './errors.ts';

/** The npm scope of the backends guestnet ships: each is `@guestnet/<name>`, installed separately. */
const SCOPE = '@guestnet/';

/** Backends guestnet ships, by canonical name, with the aliases users type. */
export const KNOWN_BACKENDS: Readonly<Record<string, { pkg: string; aliases: readonly string[]; summary: string }>> = {
  slirp: { pkg: `${SCOPE}slirp`, aliases: ['user'], summary: 'user-mode NAT (libslirp semantics), no root' },
  uip: { pkg: `${SCOPE}uip`, aliases: [], summary: 'kvmtool-style minimal user-mode proxy' },
  tap: { pkg: `${SCOPE}tap`, aliases: ['vmnet'], summary: 'Linux TAP device' },
  netmap: { pkg: `${SCOPE}netmap`, aliases: ['vale'], summary: 'shared-memory ring port on a VALE-style switch' },
  pair: { pkg: `${SCOPE}core`, aliases: [], summary: 'two endpoints back to back (tests)' },
};

export type Importer = (specifier: string) => Promise<unknown>;

export interface LoadOptions {
  /** Import from the caller's context: pass `(s) => import(s)`. */
  importer?: Importer;
}

const registered = new Map<string, BackendDescriptor>();

/** Register a backend in-process (tests, bundled builds, backends defined by the application). */
export function registerBackend(desc: BackendDescriptor): void {
  registered.set(desc.name, desc);
  for (const a of desc.aliases ?? []) registered.set(a, desc);
}

/** Remove a registration made with {@link registerBackend}. */
export function unregisterBackend(name: string): void {
  const d = registered.get(name);
  if (!d) return;
  registered.delete(d.name);
  for (const a of d.aliases ?? []) registered.delete(a);
}

/** Canonical backend name for a type as written (`user` → `slirp`), or the package name. */
export function canonicalType(type: string): string {
  const t = type.toLowerCase();
  if (t in KNOWN_BACKENDS) return t;
  for (const [name, info] of Object.entries(KNOWN_BACKENDS)) if (info.aliases.includes(t)) return name;
  return type;
}

/** The npm package that provides a backend type. */
export function packageFor(type: string): string {
  const name = canonicalType(type);
  const known = KNOWN_BACKENDS[name];
  if (known) return known.pkg;
  return type;
}

function isPackageName(type: string): boolean {
  return type.startsWith('@') || type.includes('/');
}

function isModuleNotFound(err: unknown, specifier: string): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: string; message?: string };
  if (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND' && !/Cannot find (package|module)/.test(e.message ?? '')) return false;
  // Only "this package is missing", not "a file inside it failed to import something".
  return (e.message ?? '').includes(specifier);
}

async function importFromCwd(specifier: string): Promise<unknown> {
  // Node-only fallback; kept behind a dynamic import so browser bundles never see node:module.
  const { createRequire } = await import('node:module');
  const { pathToFileURL } = await import('node:url');
  const req = createRequire(pathToFileURL(`${process.cwd()}/`).href);
  const resolved = req.resolve(specifier);
  return import(pathToFileURL(resolved).href);
}

/**
 * Find a backend's descriptor: registered in-process, else imported from its package.
 * Throws GUESTNET_BAD_CONFIG for an unknown type (with a suggestion), and
 * GUESTNET_BACKEND_NOT_INSTALLED naming the package when it is known but not installed.
 */
export async function loadBackend(type: string, opts: LoadOptions = {}): Promise<BackendDescriptor> {
  const name = canonicalType(type);
  const reg = registered.get(name) ?? registered.get(type);
  if (reg) return reg;
  if (name === 'pair') {
    const { pairDescriptor } = await import('./pair-descriptor.ts');
    return pairDescriptor;
  }
  if (!(name in KNOWN_BACKENDS) && !isPackageName(type)) {
    const all = [...Object.keys(KNOWN_BACKENDS), ...Object.values(KNOWN_BACKENDS).flatMap((k) => k.aliases), ...registered.keys()];
    const s = suggest(type, all);
    throw new GuestnetError(ErrorCode.BadConfig, `unknown backend '${type}'${s ? ` — did you mean '${s}'?` : ''}`, {
      hint: `known backends: ${Object.keys(KNOWN_BACKENDS).join(', ')}; a third-party backend is named by its package (backend=@scope/name)`,
    });
  }
  const pkg = packageFor(type);
  const attempts: Importer[] = [];
  if (opts.importer) attempts.push(opts.importer);
  attempts.push((s) => import(s), importFromCwd);
  let lastErr: unknown;
  for (const attempt of attempts) {
    let mod: unknown;
    try {
      mod = await attempt(pkg);
    } catch (err) {
      if (isModuleNotFound(err, pkg)) {
        lastErr = err;
        continue;
      }
      throw new GuestnetError(ErrorCode.BadBackend, `backend package ${pkg} failed to load: ${(err as Error)?.message ?? err}`, { cause: err });
    }
    const desc = (mod as { descriptor?: BackendDescriptor })?.descriptor;
    if (!desc || typeof desc.create !== 'function' || !Array.isArray(desc.options)) {
      throw new GuestnetError(ErrorCode.BadBackend, `${pkg} does not export a backend descriptor`, {
        hint: 'a backend package exports `descriptor: BackendDescriptor` (see docs/backend-authors.md)',
      });
    }
    return desc;
  }
  throw new BackendNotInstalledError(name, pkg, lastErr);
}

export interface ResolvedConfig {
  descriptor: BackendDescriptor;
  options: BackendOptions;
  parsed: ParsedConfig;
}

/** Parse and validate a config string against its backend's schema, without creating the backend. */
export async function resolveConfig(config: string | ParsedConfig, opts: LoadOptions = {}): Promise<ResolvedConfig> {
  const parsed = typeof config === 'string' ? parseConfig(config) : config;
  let descriptor: BackendDescriptor;
  try {
    descriptor = await loadBackend(parsed.type, opts);
  } catch (err) {
    // Point the caret at the type for type errors.
    if (err instanceof GuestnetError && err.code === ErrorCode.BadConfig && !(err instanceof ConfigError)) {
      throw new ConfigError(err.message, parsed.input, parsed.typeOffset, parsed.type.length, err.hint);
    }
    throw err;
  }
  const options = validateOptions(parsed, descriptor.options, descriptor.name);
  return { descriptor, options, parsed };
}

/**
 * Parse `config`, load the backend package and create the backend (not yet initialised: call
 * `init(rx)` on the result).
 */
export async function createBackend(config: string | ParsedConfig, opts: LoadOptions = {}): Promise<NetBackend> {
  const { descriptor, options } = await resolveConfig(config, opts);
  return descriptor.create(options);
}
