/**
 * `guestnet attach`: give a Linux network namespace a network through any backend, as
 * slirp4netns and pasta do. A TAP device is created inside the namespace (by @guestnet/tap,
 * which enters the namespace only for the TUNSETIFF and keeps the fd) and connected to the
 * backend named by CONFIG (default `backend=slirp`) with {@link connectBackends}: the kernel in
 * the namespace is the "guest".
 *
 *   guestnet attach --netns /run/netns/g --tap tap0 --configure backend=slirp
 *   guestnet attach --netns 4242 --tap tap0 --mtu 65520 'backend=slirp,hostfwd=tcp::8080-:80'
 *
 * - `--netns` takes a path (`/run/netns/NAME`, `/proc/PID/ns/net`), a PID, or a name under
 *   /run/netns.
 * - `--mtu N` sets the TAP's MTU and, unless CONFIG sets it, the backend's `mtu` option (so DHCP,
 *   router advertisements and TCP MSS agree with the link). The default is CONFIG's mtu, else 1500.
 * - `--vnet-hdr auto|on|off`: with auto (default) the TAP is opened with IFF_VNET_HDR and the
 *   header and offloads are used if the backend speaks them too (slirp does: the kernel's TSO/GSO
 *   super-frames then reach slirp whole, and slirp hands bulk data back as super-frames). `on`
 *   fails if they cannot be agreed; `off` runs plain frames.
 * - `--configure`: inside the namespace only, bring `lo` and the TAP up, add the guest address
 *   (.100 of the backend's `net`, default 10.0.2.100/24; uip: its `guest_ip`/24 via `host_ip`) and a default route via the gateway
 *   (`host`, default .2). Nothing is written outside the namespace (no resolv.conf: the DNS
 *   address is printed). IPv6 needs nothing: the kernel configures itself by SLAAC from slirp's
 *   router advertisements. Without `--configure` the namespace runs its own DHCP client.
 * - Readiness: one line on stdout (`attached tap0 in … to backend=slirp …`) once frames flow;
 *   with `--ready-fd N`, also `READY\n` written to fd N, which is then closed (slirp4netns style).
 * - Runs until SIGINT/SIGTERM (exit 0), the namespace's process exits when a PID was given
 *   (exit 0), or a backend fails (exit 1); everything is closed first.
 *
 * Linux only. Needs CAP_NET_ADMIN in the namespace's user namespace (root, in practice) to create
 * the TAP and run `nsenter` for --configure.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  connectBackends,
  createBackend,
  ErrorCode,
  GuestnetError,
  resolveConfig,
  serializeConfig,
  UnsupportedError,
  type Connection,
  type NetBackend,
} from '@guestnet/core';
import { importer, type Command, type CommandIo } from './command.ts';
import { UsageError } from '../usage-error.ts';

const run = promisify(execFile);

const SYNOPSIS = 'attach --netns PATH|PID --tap NAME [--mtu N] [--configure] [--vnet-hdr auto|on|off] [--ready-fd N] [CONFIG]';
const USAGE = `usage: guestnet ${SYNOPSIS}
  CONFIG defaults to backend=slirp. Example:
    guestnet attach --netns /run/netns/g --tap tap0 --configure 'backend=slirp,hostfwd=tcp::8080-:80'`;

export interface AttachOptions {
  /** A netns path, a PID, or a name under /run/netns. */
  netns: string;
  /** TAP device name inside the namespace. */
  tap: string;
  mtu?: number;
  configure?: boolean;
  vnetHdr?: 'auto' | 'on' | 'off';
  /** The backend's config string; default `backend=slirp`. */
  config?: string;
}

export interface Attachment {
  /** The namespace path in use. */
  netnsPath: string;
  /** The line printed when ready. */
  line: string;
  /** What --configure set, if it ran. */
  configured: { address: string; prefixLen: number; gateway: string; dns: string } | null;
  tap: NetBackend;
  backend: NetBackend;
  connection: Connection;
  /** Resolves with the first asynchronous backend failure. */
  failed: Promise<Error>;
  /** Close both backends and the TAP (the device vanishes with its fd). Idempotent. */
  close(): Promise<void>;
}

/** Parse `attach` arguments; throws UsageError. */
export function parseAttachArgs(args: readonly string[]): AttachOptions & { readyFd?: number } {
  const o: Partial<AttachOptions> & { readyFd?: number } = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    let inline: string | undefined;
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const int = (lo: number, hi: number): number => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < lo || Number(v) > hi) throw new UsageError(`${a} takes an integer ${lo}..${hi}, not '${v}'`);
      return Number(v);
    };
    switch (a) {
      case '--netns':
        o.netns = value();
        break;
      case '--tap':
        o.tap = value();
        break;
      case '--mtu':
        o.mtu = int(68, 65535);
        break;
      case '--configure':
      case '-c':
        o.configure = true;
        break;
      case '--vnet-hdr': {
        const v = value();
        if (v !== 'auto' && v !== 'on' && v !== 'off') throw new UsageError(`--vnet-hdr takes auto, on or off, not '${v}'`);
        o.vnetHdr = v;
        break;
      }
      case '--ready-fd':
        o.readyFd = int(0, 1 << 20);
        break;
      default:
        if (a.startsWith('-') && a.length > 1) throw new UsageError(`unknown option ${a}\n${USAGE}`);
        positional.push(a);
    }
  }
  if (!o.netns || !o.tap) throw new UsageError(`--netns and --tap are required\n${USAGE}`);
  if (positional.length > 1) throw new UsageError(`one CONFIG at most (quote it), got ${positional.length}\n${USAGE}`);
  // IFNAMSIZ is 16 with the NUL; the kernel rejects '/', ':' and whitespace in names.
  if (o.tap.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(o.tap)) {
    throw new UsageError(`--tap '${o.tap}' is not a valid interface name (1-15 characters: letters, digits, _ . -)`);
  }
  return { ...(o as AttachOptions), ...(positional[0] !== undefined ? { config: positional[0] } : {}) };
}

/** `/proc/PID/ns/net` for a PID, `/run/netns/NAME` for a bare name, a path as is. */
export function resolveNetns(spec: string): string {
  let path: string;
  if (/^\d+$/.test(spec)) path = `/proc/${spec}/ns/net`;
  else if (!spec.includes('/')) path = `/run/netns/${spec}`;
  else path = spec;
  if (!existsSync(path)) {
    throw new GuestnetError(ErrorCode.NotFound, `network namespace ${spec} not found (${path} does not exist)`, {
      hint: /^\d+$/.test(spec) ? 'is the process still running?' : 'create one with: ip netns add NAME (then --netns /run/netns/NAME)',
    });
  }
  return path;
}

/** Config-string value escaping: `,` is written `,,` in every dialect. */
const esc = (v: string): string => v.replaceAll(',', ',,');

// ---- --configure addressing --------------------------------------------------------------------

function ip4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return null;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}
const ip4str = (n: number): string => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** A host part (".2", "2", ".0.2") or a full address, against `net`. */
function hostIn(net: number, mask: number, v: string): number {
  const full = ip4(v);
  if (full !== null) return full;
  let n = 0;
  if (v.startsWith('.')) for (const part of v.slice(1).split('.')) n = (n << 8) | Number(part);
  else n = Number(v);
  return ((net & mask) | ((n >>> 0) & ~mask)) >>> 0;
}

/**
 * The addresses --configure sets: slirp4netns' defaults (guest .100, gateway .2, DNS .3),
 * following the backend's `net`, `host` and `dns` options when it has them.
 */
export function configureAddresses(options: Record<string, unknown>, type = 'slirp'): { address: string; prefixLen: number; gateway: string; dns: string } {
  if (type === 'uip') {
    // uip has one fixed guest address and a /24; its gateway also relays DNS (see @guestnet/uip).
    const gateway = typeof options.host_ip === 'string' ? options.host_ip : '192.168.33.1';
    return { address: typeof options.guest_ip === 'string' ? options.guest_ip : '192.168.33.15', prefixLen: 24, gateway, dns: gateway };
  }
  const netStr = typeof options.net === 'string' ? options.net : '10.0.2.0/24';
  const [addr, len] = netStr.split('/');
  const prefixLen = len === undefined ? 24 : Number(len);
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  const net = (ip4(addr!) ?? 0x0a000200) & mask;
  const gateway = hostIn(net, mask, typeof options.host === 'string' ? options.host : '.2');
  const dns = hostIn(net, mask, typeof options.dns === 'string' ? options.dns : '.3');
  // .100 as slirp4netns; a /25 or smaller has no .100, so take the last usable address instead.
  const hostBits = 32 - prefixLen;
  const guestHost = hostBits >= 8 ? 100 : Math.max(1, (1 << hostBits) - 2);
  return { address: ip4str((net | guestHost) >>> 0), prefixLen, gateway: ip4str(gateway), dns: ip4str(dns) };
}

async function inNetns(netnsPath: string, args: string[]): Promise<void> {
  try {
    await run('nsenter', [`--net=${netnsPath}`, '--', 'ip', ...args], { timeout: 10_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new GuestnetError(ErrorCode.NotFound, '--configure needs nsenter and ip', { hint: 'install util-linux and iproute2' });
    }
    throw new GuestnetError(ErrorCode.Io, `in ${netnsPath}: ip ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

// ---- the attachment ------------------------------------------------------------------------------

/** Create the TAP in the namespace, the backend, and connect them. The in-process form of the command. */
export async function startAttach(opts: AttachOptions): Promise<Attachment> {
  if (process.platform !== 'linux') {
    throw new UnsupportedError(`guestnet attach is not supported on ${process.platform}`, 'TAP devices in network namespaces are Linux only');
  }
  const netnsPath = resolveNetns(opts.netns);
  const config = opts.config ?? 'backend=slirp';
  const resolved = await resolveConfig(config, { importer });
  const { descriptor, options, parsed } = resolved;
  const hasMtu = descriptor.options.some((s) => s.name === 'mtu');
  const userMtu = parsed.options.some((o) => o.key === 'mtu');
  let mtu = opts.mtu ?? (typeof options.mtu === 'number' ? options.mtu : 1500);
  if (opts.mtu !== undefined && hasMtu) {
    if (userMtu && options.mtu !== opts.mtu) {
      throw new UsageError(`--mtu ${opts.mtu} contradicts mtu=${String(options.mtu)} in CONFIG; give one of them`);
    }
    const spec = descriptor.options.find((s) => s.name === 'mtu')!;
    if (spec.max !== undefined && opts.mtu > spec.max) {
      throw new UsageError(`--mtu ${opts.mtu} is above backend=${descriptor.name}'s maximum mtu ${spec.max}`);
    }
    options.mtu = opts.mtu;
  }
  mtu = Math.trunc(mtu);
  const vnetMode = opts.vnetHdr ?? 'auto';

  const backend = descriptor.create(options);
  let tap: NetBackend;
  try {
    tap = await createBackend(
      `backend=tap,ifname=${esc(opts.tap)},netns=${esc(netnsPath)},up=on,mtu=${mtu},vnet_hdr=${vnetMode === 'off' ? 'off' : 'on'}`,
      { importer },
    );
  } catch (e) {
    await backend.close().catch(() => {});
    throw e;
  }

  let reportFailure!: (e: Error) => void;
  const failed = new Promise<Error>((resolve) => (reportFailure = resolve));
  const connection = await connectBackends(tap, backend, {
    vnetHdr: vnetMode,
    onError: (err, side) => reportFailure(new GuestnetError(ErrorCode.Io, `${side === 'a' ? 'tap' : descriptor.name}: ${err.message}`, { cause: err })),
  });

  let configured: Attachment['configured'] = null;
  if (opts.configure) {
    try {
      configured = configureAddresses(options, descriptor.name);
      await inNetns(netnsPath, ['link', 'set', 'lo', 'up']);
      await inNetns(netnsPath, ['link', 'set', 'dev', opts.tap, 'mtu', String(mtu), 'up']);
      await inNetns(netnsPath, ['addr', 'add', `${configured.address}/${configured.prefixLen}`, 'dev', opts.tap]);
      await inNetns(netnsPath, ['route', 'add', 'default', 'via', configured.gateway, 'dev', opts.tap]);
    } catch (e) {
      await connection.close().catch(() => {});
      throw e;
    }
  }

  const s = connection.stats();
  const offl = Object.entries(s.offloads)
    .filter(([, v]) => v)
    .map(([k]) => k)
    .join(',');
  const vnet = s.vnetHdrLen ? `vnet_hdr ${s.vnetHdrLen} (${offl})` : 'vnet_hdr off';
  const where = configured ? `, guest ${configured.address}/${configured.prefixLen} via ${configured.gateway}, dns ${configured.dns}` : ', guest uses DHCP';
  const line = `attached ${opts.tap} in ${netnsPath} to ${serializeConfig(descriptor.name, options, descriptor.options)} (mtu ${mtu}, ${vnet}${where})`;

  return {
    netnsPath,
    line,
    configured,
    tap,
    backend,
    connection,
    failed,
    close: () => connection.close(),
  };
}

export const attachCommand: Command = {
  synopsis: 'attach --netns P --tap NAME [CONFIG]',
  summary: 'connect a TAP inside a network namespace to a backend (like slirp4netns)',
  async run(args: string[], { out, err }: CommandIo): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      out.write(`${USAGE}\n`);
      return 0;
    }
    const opts = parseAttachArgs(args);
    const att = await startAttach(opts);
    out.write(`${att.line}\n`);
    if (opts.readyFd !== undefined) {
      try {
        writeSync(opts.readyFd, 'READY\n');
        closeSync(opts.readyFd);
      } catch (e) {
        err.write(`guestnet: --ready-fd ${opts.readyFd}: ${(e as Error).message}\n`);
      }
    }

    const pid = /^\d+$/.test(opts.netns) ? Number(opts.netns) : 0;
    // An idle TAP poll handle does not hold the event loop (by design), and slirp may have no
    // socket open yet: without a ref'd handle of our own the process would just exit here.
    const keepAlive = setInterval(() => {}, 1 << 30);
    let watch: ReturnType<typeof setInterval> | null = null;
    const onSignal: { fn?: (sig?: NodeJS.Signals) => void } = {};
    const reason = await new Promise<{ code: number; why: string }>((resolve) => {
      onSignal.fn = (sig) => resolve({ code: 0, why: sig ?? 'signal' });
      process.once('SIGINT', onSignal.fn);
      process.once('SIGTERM', onSignal.fn);
      void att.failed.then((e) => resolve({ code: 1, why: e.message }));
      if (pid > 0) {
        // The namespace's owner is gone: nothing is left to serve (slirp4netns exits too).
        watch = setInterval(() => {
          try {
            process.kill(pid, 0);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ESRCH') resolve({ code: 0, why: `process ${pid} exited` });
          }
        }, 1000);
      }
    });
    clearInterval(keepAlive);
    if (watch) clearInterval(watch);
    process.removeListener('SIGINT', onSignal.fn!);
    process.removeListener('SIGTERM', onSignal.fn!);
    // Like serve: a signal is said on stderr, so a log shows why the guest lost its network.
    if (reason.code === 0 && reason.why.startsWith('SIG')) err.write(`guestnet: ${reason.why}, detaching ${opts.tap}\n`);
    await att.close();
    if (reason.code !== 0) err.write(`guestnet: attach ended: ${reason.why}\n`);
    return reason.code;
  },
};
