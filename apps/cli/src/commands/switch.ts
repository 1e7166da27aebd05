/**
 * `guestnet switch NAME`: run a VALE-style learning switch in this process and serve it to other
 * processes (@guestnet/netmap's SwitchServer), so emulators in separate processes share it:
 *
 *   guestnet switch vale0 --uplink 'backend=slirp,hostfwd=tcp::2222-10.0.2.15:22'
 *   (elsewhere)  createBackend('backend=vale0:1')  /  guestnet attach … backend=vale0:2
 *
 * - `--uplink CONFIG`: one switch port (default port 0, `--uplink-port N`) is any backend made by
 *   createBackend — a slirp NAT shared by every guest on the switch, a TAP device, another switch.
 * - `--socket PATH`: where to listen (default `${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/NAME.sock`,
 *   which `backend=NAME:N` finds by itself; with another path clients add `switch=PATH`).
 * - `--ports N`: ports 0..N-1 exist (default 254, netmap's maximum).
 * - `--slots N`, `--bufsize N`: ring geometry of client ports that do not ask for one.
 *
 * On start it prints a line containing `ready` and how to attach, then runs until SIGINT or
 * SIGTERM, when it detaches every port (each client sees its port closed), closes the uplink,
 * removes the socket (shared memory files are unlinked as soon as both sides map them, see
 * server.ts) and exits 0. Clients coming and going are logged on stderr.
 *
 * QEMU cannot attach to the switch itself (it speaks no guestnet rings); a port is served to it
 * with `guestnet serve --listen unix:PATH backend=NAME:N` and `-netdev stream`.
 */
import { createBackend, type NetBackend } from '@guestnet/core';
import { ValeSwitch, type PortHandle } from '@guestnet/netmap';
import type { SwitchServer } from '@guestnet/netmap/node';
import { importer, type Command, type CommandIo } from './command.ts';
import { UsageError } from '../usage-error.ts';
import { parseArgs } from '../serve/args.ts';

const SYNOPSIS = 'switch NAME [--uplink CONFIG] [--uplink-port N] [--socket PATH] [--ports N] [--slots N] [--bufsize N]';

const HELP = `usage: guestnet ${SYNOPSIS}

  NAME              the switch name, e.g. vale0 (other processes attach with backend=vale0:1)
  --uplink CONFIG   make one port a backend, e.g. 'backend=slirp' (several guests share one NAT)
  --uplink-port N   the uplink's port number (default 0)
  --socket PATH     listen here (default \${XDG_RUNTIME_DIR:-/tmp}/guestnet-vale/NAME.sock;
                    with another path clients add switch=PATH to their config)
  --ports N         ports 0..N-1 exist (default 254)
  --slots N         ring slots of client ports that ask for no geometry (default 1024)
  --bufsize N       ring buffer bytes of those ports (default 2048)

Clients: backend=NAME:N (port N), backend=NAME:WORD (a named port, the lowest free number).
QEMU cannot attach to the switch directly: serve it a port with
  guestnet serve --listen unix:/tmp/vm1.sock backend=NAME:2
and give QEMU -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/vm1.sock
`;

export interface SwitchArgs {
  name: string;
  uplink?: string;
  uplinkPort: number;
  socket?: string;
  ports?: number;
  slots?: number;
  bufSize?: number;
}

function intFlag(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`switch: ${flag} takes an integer ${min}..${max}, not '${v}'`);
  return n;
}

/** Parse the command line (throws UsageError). */
export function parseSwitchArgs(args: string[]): SwitchArgs {
  const a = parseArgs(args, { values: ['uplink', 'uplink-port', 'socket', 'ports', 'slots', 'bufsize'], booleans: ['help'] }, 'switch');
  if (a.positionals.length === 0) throw new UsageError(`switch: a switch NAME is required\nusage: guestnet ${SYNOPSIS}`);
  if (a.positionals.length > 1) throw new UsageError(`switch: one NAME only, got ${a.positionals.length} words (quote the --uplink CONFIG)`);
  const name = a.positionals[0]!;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError(`switch: '${name}' is not a switch name (1-64 of A-Z a-z 0-9 _ . -, e.g. vale0)`);
  const out: SwitchArgs = { name, uplinkPort: intFlag(a.flags['uplink-port'], '--uplink-port', 0, 253) ?? 0 };
  if (a.flags.uplink !== undefined) {
    if (a.flags.uplink === '') throw new UsageError('switch: --uplink needs a backend config, e.g. --uplink backend=slirp');
    out.uplink = a.flags.uplink;
  } else if (a.flags['uplink-port'] !== undefined) {
    throw new UsageError('switch: --uplink-port without --uplink');
  }
  if (a.flags.socket !== undefined) out.socket = a.flags.socket;
  const ports = intFlag(a.flags.ports, '--ports', 1, 254);
  if (ports !== undefined) out.ports = ports;
  if (ports !== undefined && out.uplink !== undefined && out.uplinkPort >= ports) {
    throw new UsageError(`switch: --uplink-port ${out.uplinkPort} is outside --ports ${ports} (0..${ports - 1})`);
  }
  const slots = intFlag(a.flags.slots, '--slots', 2, 65536);
  if (slots !== undefined) out.slots = slots;
  const bufSize = intFlag(a.flags.bufsize, '--bufsize', 64, 65528);
  if (bufSize !== undefined) {
    if (bufSize % 8 !== 0) throw new UsageError(`switch: --bufsize must be a multiple of 8, not ${bufSize}`);
    out.bufSize = bufSize;
  }
  return out;
}

export interface SwitchHandle {
  switch: ValeSwitch;
  server: SwitchServer;
  uplink: NetBackend | null;
  /** Lines printed on stdout at start (the first contains "ready"). */
  lines: string[];
  stop(): Promise<void>;
}

/** Start the switch, its uplink and its server; used by `run` and by tests. */
export async function startSwitch(a: SwitchArgs, log: (line: string) => void = () => {}): Promise<SwitchHandle> {
  // Make the uplink first: a bad config fails before anything listens.
  const uplink = a.uplink !== undefined ? await createBackend(a.uplink, { importer }) : null;
  // The cross-process half (unix socket, shared-memory files, native helper) loads only here.
  const { SwitchServer, defaultSwitchSocket } = await import('@guestnet/netmap/node');
  const sw = new ValeSwitch(a.name);
  let server: SwitchServer | null = null;
  let uplinkHandle: PortHandle | null = null;
  try {
    if (uplink) uplinkHandle = await sw.attachBackend(a.uplinkPort, uplink, { closeOnDetach: false });
    const geometry = a.slots !== undefined || a.bufSize !== undefined ? { slots: a.slots ?? 1024, bufSize: a.bufSize ?? 2048 } : undefined;
    server = await SwitchServer.listen(sw, {
      ...(a.socket !== undefined ? { socketPath: a.socket } : {}),
      ...(a.ports !== undefined ? { ports: a.ports } : {}),
      ...(geometry ? { geometry } : {}),
      log,
    });
  } catch (err) {
    sw.close();
    await uplink?.close();
    throw err;
  }
  const srv = server;
  const defaultPath = a.socket === undefined || a.socket === defaultSwitchSocket(a.name);
  const suffix = defaultPath ? '' : `,switch=${srv.path}`;
  const ports = a.ports ?? 254;
  const free = Array.from({ length: Math.min(ports, 4) }, (_, i) => i).filter((i) => !uplink || i !== a.uplinkPort);
  const lines = [
    `guestnet: switch ${a.name} ready on unix:${srv.path} (ports 0..${ports - 1}${uplink ? `, uplink ${a.uplink} on port ${a.uplinkPort}` : ''})`,
    `guestnet: attach from another process with backend=${a.name}:${free[0] ?? 1}${suffix} (any port number, or backend=${a.name}:NAME for the lowest free one)`,
    `guestnet: QEMU cannot attach to a switch itself: serve it a port, e.g. guestnet serve --listen unix:/tmp/vm1.sock 'backend=${a.name}:${free[1] ?? 2}${suffix}' and qemu … -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/vm1.sock`,
  ];
  let stopped = false;
  return {
    switch: sw,
    server: srv,
    uplink,
    lines,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await srv.close();
      uplinkHandle?.detach();
      sw.close();
      await uplink?.close();
    },
  };
}

function summary(sw: ValeSwitch): string {
  const s = sw.stats();
  const ports = s.ports.map((p) => {
    const drops = Object.entries(p.drops).map(([k, v]) => `${k} ${v}`);
    return `port ${p.port}${p.kind === 'backend' ? ' (uplink)' : ''}: in ${p.rxFrames} out ${p.txFrames}${drops.length ? `, drops ${drops.join(', ')}` : ''}`;
  });
  return `${s.macs} MACs learnt${ports.length ? `; ${ports.join('; ')}` : ''}`;
}

export const switchCommand: Command = {
  synopsis: 'switch NAME [--uplink CONFIG] [--socket PATH]',
  summary: 'run a VALE-style learning switch other processes attach to (backend=NAME:N), optionally with an uplink backend',
  async run(args: string[], io: CommandIo): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      io.out.write(HELP);
      return 0;
    }
    const a = parseSwitchArgs(args);
    // Signal handlers go in before anything is bound, as in `serve`.
    let onSignal: (s: NodeJS.Signals) => void = () => {};
    let early: NodeJS.Signals | null = null;
    const handler = (s: NodeJS.Signals): void => {
      early ??= s;
      onSignal(s);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    const log = (l: string): void => void io.err.write(`guestnet: ${l}\n`);
    let handle: SwitchHandle;
    try {
      handle = await startSwitch(a, log);
    } catch (err) {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      throw err;
    }
    for (const l of handle.lines) io.out.write(`${l}\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      if (early) resolve(early);
      else onSignal = resolve;
    });
    onSignal = () => process.exit(1);
    io.err.write(`guestnet: ${signal}, shutting down switch ${a.name} (${summary(handle.switch)})\n`);
    await handle.stop();
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    // A backend that forgot a timer or socket must not keep the process alive after shutdown.
    setTimeout(() => process.exit(0), 2000).unref();
    return 0;
  },
};
