/**
 * Prerequisite checks for e2e tests: which tools are missing, and what to do about it. Locally a
 * missing prerequisite skips the test with a console.warn naming it; with `CI` set it is a
 * failure (the CI machine is supposed to have installed everything), reported with the apt
 * packages to install.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Tool {
  /** Executable looked up on PATH. */
  bin: string;
  /** Debian package that provides it. */
  pkg: string;
}

export function onPath(bin: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

export interface PrereqResult {
  ok: boolean;
  /** Why the test cannot run ('' when ok). */
  reason: string;
}

/** Checks tools (and extra conditions given as reason-or-null). */
export function checkPrereqs(tools: readonly Tool[], extra: readonly (string | null)[] = []): PrereqResult {
  const missing = tools.filter((t) => !onPath(t.bin));
  const reasons: string[] = [];
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.pkg))].join(' ');
    reasons.push(`missing ${missing.map((t) => t.bin).join(', ')} (apt-get install -y --no-install-recommends ${pkgs})`);
  }
  for (const e of extra) if (e) reasons.push(e);
  return { ok: reasons.length === 0, reason: reasons.join('; ') };
}

/**
 * Decide whether a suite runs. Returns true to run. Without CI a failed check warns and returns
 * false (the caller skips); with CI it throws, so the suite fails with the reason.
 */
export function requirePrereqs(suite: string, result: PrereqResult): boolean {
  if (result.ok) return true;
  const msg = `${suite}: cannot run: ${result.reason}`;
  if (process.env.CI) throw new Error(`${msg} [CI is set, so this is a failure]`);
  console.warn(`${msg} — skipped`);
  return false;
}
