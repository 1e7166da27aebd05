/**
 * Prerequisites of the e2e tiers (root, /dev/net/tun, network namespaces, tools on PATH) and the
 * skip-or-fail rule: where a test cannot run it prints why (console.warn) and skips, EXCEPT under
 * `CI` (any non-empty value but "0"/"false"), where a missing prerequisite is a failure that says
 * what to install. Use {@link describeWith} for a whole file, {@link requireOrSkip} inside a test.
 */
import { describe, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

export const IN_CI = !!process.env.CI && process.env.CI !== '0' && process.env.CI !== 'false';

/** One unmet prerequisite: what is wrong and how to fix it. */
export interface Missing {
  what: string;
  fix: string;
}

/** Tool name → the Debian package that provides it (for the message). */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  busybox: 'busybox-static',
  iperf3: 'iperf3',
  ping: 'iputils-ping',
  tcpdump: 'tcpdump',
  tshark: 'tshark',
  socat: 'socat',
  'qemu-system-x86_64': 'qemu-system-x86',
};

/** The absolute path of `tool` on PATH, or null. */
export function which(tool: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = `${dir}/${tool}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

export function needTools(...tools: string[]): Missing[] {
  return tools
    .filter((t) => which(t) === null)
    .map((t) => ({ what: `${t} not found on PATH`, fix: `apt-get install ${PACKAGE_OF[t] ?? t}` }));
}

export function needRoot(): Missing[] {
  if (process.platform !== 'linux') return [{ what: `not Linux (${process.platform})`, fix: 'run on Linux' }];
  if (process.getuid?.() !== 0) return [{ what: 'not root', fix: 'run as root (sudo -E npx vitest run --project e2e …)' }];
  return [];
}

export function needTun(): Missing[] {
  if (!existsSync('/dev/net/tun')) return [{ what: '/dev/net/tun is missing', fix: 'modprobe tun (or run the container with --device /dev/net/tun)' }];
  return [];
}

/** Root plus a throwaway `ip netns add` works (containers without CAP_SYS_ADMIN fail here). */
export function needNetns(): Missing[] {
  const root = needRoot();
  if (root.length) return root;
  const tools = needTools('ip');
  if (tools.length) return tools;
  const name = `gn-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', name]);
  if (r.status !== 0) return [{ what: `ip netns add fails: ${(r.stderr ?? '').trim()}`, fix: 'run with CAP_SYS_ADMIN (a privileged container or the host)' }];
  return [];
}

export function describeMissing(missing: readonly Missing[]): string {
  return missing.map((m) => `${m.what} (${m.fix})`).join('; ');
}

/**
 * `describe` that runs when nothing is missing; otherwise prints the reason and skips, or, in CI,
 * registers one failing test naming what to install.
 */
export function describeWith(name: string, missing: readonly Missing[], body: () => void): void {
  if (missing.length === 0) {
    describe(name, body);
    return;
  }
  const reason = describeMissing(missing);
  if (IN_CI) {
    describe(name, () => {
      it('has its prerequisites (mandatory in CI)', () => {
        throw new Error(`${name}: missing prerequisites in CI: ${reason}`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${reason} — CI=true makes this a failure`);
  describe.skip(name, body);
}

/** Inside a test: skip it with a printed reason (or fail in CI) when something is missing. */
export function requireOrSkip(ctx: { skip: (note?: string) => void }, missing: readonly Missing[]): void {
  if (missing.length === 0) return;
  const reason = describeMissing(missing);
  if (IN_CI) throw new Error(`missing prerequisites in CI: ${reason}`);
  console.warn(`skipping: ${reason}`);
  ctx.skip(reason);
}
