/**
 * `guestnet serve`: make a backend usable from another process — QEMU (`-netdev stream` /
 * `-netdev dgram`), passt/gvproxy-style stream clients, v86/jor1k WebSocket relays. See
 * ../serve/server.ts for the behaviour (per-client backends, --shared, hostfwd ownership, pcap).
 *
 * On start it prints one line on stdout containing `ready` and the matching QEMU fragment, e.g.
 *   guestnet: ready on unix:/run/user/0/guestnet.sock (stream) — qemu: -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/run/user/0/guestnet.sock
 * then runs until SIGINT/SIGTERM, when it closes listeners, client sockets and backends, flushes
 * the capture, removes its socket files and exits 0. Log lines (clients coming and going, drops)
 * go to stderr.
 */
import { dirname, join } from 'node:path';
import type { Command, CommandIo } from './command.ts';
import { importer } from './command.ts';
import { UsageError } from '../usage-error.ts';
import { parseArgs } from '../serve/args.ts';
import { GuestnetServer } from '../serve/server.ts';
import { startControlServer, type ControlServer } from '../serve/control.ts';
import { defaultListen, formatAddr, parseHostPort, parseListen, qemuDgramFragment, qemuStreamFragment, type Protocol } from '../serve/listen.ts';

const SYNOPSIS =
  'serve [--listen unix:PATH|tcp:HOST:PORT|udp:HOST:PORT] [--protocol stream|dgram|ws] [--shared] [--control unix:PATH|none] [--pcap FILE] [--remote HOST:PORT] [--max-clients N] [CONFIG]';

const HELP = `usage: guestnet ${SYNOPSIS}

  CONFIG              backend config string (default: backend=slirp), e.g. 'backend=slirp,hostfwd=tcp::2222-:22'
  --listen ADDR       unix:PATH or tcp:HOST:PORT (stream, ws); udp:HOST:PORT (dgram)
                      default: unix:$XDG_RUNTIME_DIR/guestnet.sock (or /tmp/guestnet-$UID/guestnet.sock);
                      ws: tcp:127.0.0.1:8765; dgram: udp:127.0.0.1:<free port>
  --protocol P        stream (QEMU -netdev stream/socket: 4-byte length + frame; default),
                      dgram (QEMU -netdev dgram over UDP), ws (WebSocket, one binary message per frame)
  --shared            all clients on one backend through a learning switch (default: one backend per client)
  --control ADDR      JSON-lines control socket (hostfwd, stats); default next to the default socket
                      (guestnet.ctl), none with an explicit --listen; 'none' disables it
  --pcap FILE         capture to pcapng (per-client backends: FILE for client 1, FILE.N for client N)
  --remote HOST:PORT  dgram: the address QEMU binds (local.host/local.port); default a free port
  --max-clients N     refuse connections beyond N (default 64)

hostfwd rules in CONFIG or added at run time live on the shared backend, or with per-client
backends on the oldest connected client (they move to the next one when it disconnects).
`;

export interface ServeHandle {
  server: GuestnetServer;
  control: ControlServer | null;
  /** Lines printed on stdout at start (the first contains "ready"). */
  lines: string[];
  stop(): Promise<void>;
}

/** Parse arguments and start serving; used by `run` and by tests. */
export async function startServe(args: string[], io: CommandIo): Promise<ServeHandle> {
  const a = parseArgs(args, { values: ['listen', 'protocol', 'control', 'pcap', 'remote', 'max-clients'], booleans: ['shared', 'help'] }, 'serve');
  if (a.positionals.length > 1) throw new UsageError(`serve: one CONFIG at most (quote it), got ${a.positionals.length} arguments`);
  const protocol = (a.flags.protocol ?? 'stream') as Protocol;
  if (!['stream', 'dgram', 'ws'].includes(protocol)) throw new UsageError(`serve: --protocol is stream, dgram or ws, not '${protocol}'`);
  if (a.bools.has('shared') && protocol === 'dgram') throw new UsageError('serve: --shared needs a connection-oriented protocol (stream or ws); dgram has one peer');
  const listen = a.flags.listen ? parseListen(a.flags.listen, protocol) : defaultListen(protocol);
  const remote = a.flags.remote ? parseHostPort(a.flags.remote, '--remote') : null;
  if (remote && protocol !== 'dgram') throw new UsageError('serve: --remote is for --protocol dgram');
  let maxClients: number | undefined;
  if (a.flags['max-clients'] !== undefined) {
    maxClients = Number(a.flags['max-clients']);
    if (!Number.isInteger(maxClients) || maxClients < 1) throw new UsageError('serve: --max-clients must be a positive integer');
  }
  let controlPath: string | null = null;
  if (a.flags.control !== undefined && a.flags.control !== 'none') {
    const c = parseListen(a.flags.control, 'stream', '--control');
    if (c.kind !== 'unix') throw new UsageError('serve: --control must be unix:PATH (a TCP control port would let anyone on the host open forwards)');
    controlPath = c.path;
  } else if (a.flags.control === undefined && !a.flags.listen && listen.kind === 'unix') {
    controlPath = join(dirname(listen.path), 'guestnet.ctl');
  }

  const log = (l: string): void => void io.err.write(`${l}\n`);
  const server = await GuestnetServer.start({
    config: a.positionals[0] ?? 'backend=slirp',
    protocol,
    listen,
    shared: a.bools.has('shared'),
    remote,
    pcap: a.flags.pcap ?? null,
    maxClients,
    importer,
    log,
  });
  let control: ControlServer | null = null;
  try {
    if (controlPath) control = await startControlServer(server, controlPath, log);
  } catch (err) {
    await server.close();
    throw err;
  }
  const lines = [server.readyLine()];
  if (control) lines.push(`guestnet: control socket unix:${control.path} — guestnet hostfwd list --control unix:${control.path}`);
  if (protocol === 'stream') {
    lines.push(`guestnet: e.g. qemu-system-x86_64 -m 512 -nographic -kernel … ${qemuStreamFragment(server.address)} -device virtio-net-pci,netdev=n0`);
  } else if (protocol === 'dgram') {
    lines.push(`guestnet: e.g. qemu-system-x86_64 … ${qemuDgramFragment(server.address as { host: string; port: number }, server.remote!)} -device virtio-net-pci,netdev=n0`);
  }
  if (a.flags.pcap) lines.push(`guestnet: capturing to ${a.flags.pcap}${protocol !== 'dgram' && !a.bools.has('shared') ? ' (client N ≥ 2: FILE.N)' : ''}`);
  return {
    server,
    control,
    lines,
    stop: async () => {
      await control?.close();
      await server.close();
    },
  };
}

export const serveCommand: Command = {
  synopsis: 'serve [--listen ADDR] [--protocol stream|dgram|ws] [--shared] [--pcap FILE] [CONFIG]',
  summary: 'serve a backend to QEMU (-netdev stream/dgram) or WebSocket relays; default: slirp on a unix socket',
  async run(args, io) {
    if (args.includes('--help') || args.includes('-h')) {
      io.out.write(HELP);
      return 0;
    }
    // Handlers go in before anything is bound, so a signal that lands during start-up (or right
    // after the ready line) still ends in a clean shutdown rather than the default kill.
    let onSignal: (s: NodeJS.Signals) => void = () => {};
    let early: NodeJS.Signals | null = null;
    const handler = (s: NodeJS.Signals): void => {
      early ??= s;
      onSignal(s);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    let handle: ServeHandle;
    try {
      handle = await startServe(args, io);
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
    // A second signal while shutting down: give up waiting.
    onSignal = () => process.exit(1);
    io.err.write(`guestnet: ${signal}, shutting down (${formatAddr(handle.server.address, handle.server.protocol === 'dgram' ? 'udp' : 'tcp')})\n`);
    await handle.stop();
    // Something a backend forgot (a timer, a socket) must not keep the process alive after shutdown.
    setTimeout(() => process.exit(0), 2000).unref();
    return 0;
  },
};
