/**
 * The peers the benchmark compares, each giving a fresh guest network namespace network access
 * on the same topology: a TAP (or, for the kernel ceiling, a veth) inside a namespace the harness
 * creates (`gn-bench-<peer>-<pid>`), guest address 10.0.2.100/24, default route via the gateway
 * 10.0.2.2, which the backend maps to host 127.0.0.1. The veth ceiling has no NAT: its host end
 * carries an address of its own and the servers bind to that.
 *
 * - guestnet: `node apps/cli/bin/guestnet.js attach --configure` with backend=slirp (and
 *   backend=uip when packages/uip exists), vnet_hdr auto.
 * - slirp4netns: `--configure --mtu N --netns-type=path`; host loopback stays reachable through
 *   10.0.2.2 (no --disable-host-loopback).
 * - pasta: `--config-net` with our addresses, no port forwarding, and its default gateway mapping
 *   (traffic to the gateway goes to the host's loopback); run as root (`--runas 0`) because the
 *   Debian 12 build cannot join a root-owned namespace after dropping to nobody.
 * - veth: a kernel veth pair, no userspace process (CPU and RSS are not applicable).
 *
 * Every namespace and process is removed by {@link RunningPeer.stop} and, as a last resort, by a
 * process 'exit' hook. Nothing touches the host's own interfaces besides the veth's host end,
 * which disappears with the namespace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, run, runOk, sleep } from './proc.ts';

export const GUEST = '10.0.2.100';
export const GATEWAY = '10.0.2.2';
/** The veth ceiling's addresses (a /30 of its own, only on the pair). */
const VETH_HOST = '10.213.57.1';
const VETH_GUEST = '10.213.57.2';

export interface RunningPeer {
  /** `ip netns` name of the guest namespace. */
  ns: string;
  /** Where the guest sends to reach the host servers. */
  target: string;
  /** Where the host servers listen. */
  bind: string;
  /** The backend process measured for CPU and RSS; 0 for the kernel. */
  pid: number;
  /** The TAP/veth MTU actually in place. */
  mtu: number;
  /** What the peer printed when it came up (guestnet's attach line). */
  note: string;
  stop(): Promise<void>;
}

export interface Peer {
  name: string;
  /** null when the peer can run here, else why not. */
  unavailable(): Promise<string | null>;
  version(): Promise<string>;
  start(mtu: number, ctx: { root: string; dnsPort: number }): Promise<RunningPeer>;
}

const namespaces = new Set<string>();
process.once('exit', () => {
  for (const n of namespaces) spawnSync('ip', ['netns', 'del', n]);
});

async function createNs(tag: string): Promise<string> {
  const name = `gn-bench-${tag}-${process.pid}`;
  await run('ip', ['netns', 'del', name]);
  await runOk('ip', ['netns', 'add', name]);
  namespaces.add(name);
  await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

async function deleteNs(name: string): Promise<void> {
  namespaces.delete(name);
  await run('ip', ['netns', 'del', name]);
}

/** Wait until the namespace has its default route (the peer configured it), then read the MTU of `dev`. */
async function waitConfigured(ns: string, dev: string, proc: Daemon | null, timeoutMs = 20_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await run('ip', ['-n', ns, '-4', 'route', 'show', 'default']);
    if (/default via/.test(r.stdout)) break;
    if (proc?.exitInfo) throw new Error(`exited (${proc.exitInfo.code ?? proc.exitInfo.signal}) before configuring ${dev}: ${proc.output.trim().slice(-600)}`);
    if (Date.now() > end) throw new Error(`no default route in ${ns} after ${timeoutMs} ms${proc ? `: ${proc.output.trim().slice(-600)}` : ''}`);
    await sleep(50);
  }
  const l = await runOk('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  return (JSON.parse(l.stdout) as { mtu: number }[])[0]!.mtu;
}

/** Make sure the guest side has the MTU asked for (a peer that ignores it would skew the comparison). */
async function ensureMtu(ns: string, dev: string, have: number, want: number): Promise<number> {
  if (have === want) return have;
  await runOk('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'mtu', String(want)]);
  return want;
}

function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function daemonPeer(ns: string, d: Daemon, mtu: number, note: string): RunningPeer {
  return {
    ns,
    target: GATEWAY,
    bind: '127.0.0.1',
    pid: d.pid,
    mtu,
    note,
    stop: async () => {
      await d.stop('SIGTERM', 3000);
      await deleteNs(ns);
    },
  };
}

/** guestnet attach with `backend` (slirp or uip). */
export function guestnetPeer(backend: 'slirp' | 'uip'): Peer {
  return {
    name: `guestnet-${backend}`,
    async unavailable() {
      if (backend === 'uip' && !existsSync(join(ROOT, 'packages/uip/package.json'))) {
        return 'packages/uip does not exist in this checkout (the uip backend is still being written)';
      }
      if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
      return null;
    },
    async version() {
      const r = await run('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
      const dirty = (await run('git', ['-C', ROOT, 'status', '--porcelain', 'packages', 'apps/cli'])).stdout.trim() ? '+uncommitted changes' : '';
      return `guestnet ${r.stdout.trim()}${dirty} (node ${process.version})`;
    },
    async start(mtu, ctx) {
      const ns = await createNs(backend);
      // uip has no net/host options: give it the same addresses as the others (kvmtool's differ).
      const addr = backend === 'uip' ? `guest_ip=${GUEST},host_ip=${GATEWAY},` : '';
      const config = `backend=${backend},${addr}allow=127.0.0.0/8,dns-upstream=127.0.0.1#${ctx.dnsPort}`;
      const d = new Daemon(process.execPath, [join(ctx.root, 'apps/cli/bin/guestnet.js'), 'attach', '--netns', `/run/netns/${ns}`, '--tap', 'tap0', '--mtu', String(mtu), '--configure', config], {
        cwd: ctx.root,
      });
      try {
        const m = await d.waitFor(/^attached .*$/m, 30_000);
        const have = await waitConfigured(ns, 'tap0', d);
        return daemonPeer(ns, d, await ensureMtu(ns, 'tap0', have, mtu), m[0]);
      } catch (e) {
        await d.stop('SIGKILL');
        await deleteNs(ns);
        throw e;
      }
    },
  };
}

export const slirp4netnsPeer: Peer = {
  name: 'slirp4netns',
  async unavailable() {
    return which('slirp4netns') ? null : 'slirp4netns not installed (apt-get install slirp4netns)';
  },
  async version() {
    const r = await run('slirp4netns', ['--version']);
    return r.stdout.trim().split('\n').filter((l) => /version|libslirp/.test(l)).join(', ');
  },
  async start(mtu) {
    const ns = await createNs('s4n');
    // slirp4netns' MTU is at most 65521; 10.0.2.2 reaches host loopback unless --disable-host-loopback.
    const d = new Daemon('slirp4netns', ['--configure', `--mtu=${Math.min(mtu, 65521)}`, '--netns-type=path', `/run/netns/${ns}`, 'tap0']);
    try {
      const have = await waitConfigured(ns, 'tap0', d);
      return daemonPeer(ns, d, await ensureMtu(ns, 'tap0', have, mtu), 'slirp4netns --configure');
    } catch (e) {
      await d.stop('SIGKILL');
      await deleteNs(ns);
      throw e;
    }
  },
};

export const pastaPeer: Peer = {
  name: 'pasta',
  async unavailable() {
    return which('pasta') ? null : 'pasta not installed (apt-get install passt)';
  },
  async version() {
    const r = await run('dpkg-query', ['-W', '-f', '${Version}', 'passt']);
    return `passt/pasta ${r.stdout.trim() || 'unknown'} (Debian package)`;
  },
  async start(mtu) {
    const ns = await createNs('pasta');
    const d = new Daemon('pasta', [
      '-f', '-q', '--runas', '0', '--config-net', '-4',
      '-I', 'tap0', '-a', GUEST, '-n', '24', '-g', GATEWAY, '-m', String(mtu),
      '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none',
      '--netns', `/run/netns/${ns}`,
    ]);
    try {
      const have = await waitConfigured(ns, 'tap0', d);
      return daemonPeer(ns, d, await ensureMtu(ns, 'tap0', have, mtu), 'pasta --config-net');
    } catch (e) {
      await d.stop('SIGKILL');
      await deleteNs(ns);
      throw e;
    }
  },
};

export const vethPeer: Peer = {
  name: 'veth',
  async unavailable() {
    return null;
  },
  async version() {
    return `Linux veth (kernel ${(await run('uname', ['-r'])).stdout.trim()})`;
  },
  async start(mtu) {
    const ns = await createNs('veth');
    const host = `gnbh${process.pid % 100000}`;
    try {
      await runOk('ip', ['link', 'add', host, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'gnbg', 'netns', ns, 'mtu', String(mtu)]);
      await runOk('ip', ['addr', 'add', `${VETH_HOST}/30`, 'dev', host]);
      await runOk('ip', ['link', 'set', host, 'up']);
      await runOk('ip', ['-n', ns, 'addr', 'add', `${VETH_GUEST}/30`, 'dev', 'gnbg']);
      await runOk('ip', ['-n', ns, 'link', 'set', 'gnbg', 'up']);
      await runOk('ip', ['-n', ns, 'route', 'add', 'default', 'via', VETH_HOST]);
      // Let the host address leave tentative state and the link come up.
      for (let i = 0; i < 100; i++) {
        const r = await run('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', VETH_HOST], 5000);
        if (r.code === 0) break;
        await sleep(50);
      }
    } catch (e) {
      await deleteNs(ns);
      throw e;
    }
    return {
      ns,
      target: VETH_HOST,
      bind: VETH_HOST,
      pid: 0,
      mtu,
      note: 'veth pair',
      // Deleting the namespace deletes the pair, host end included.
      stop: () => deleteNs(ns),
    };
  },
};

let ROOT = '';
/** The workspace root (where apps/cli lives). */
export function setRoot(root: string): void {
  ROOT = root;
}
