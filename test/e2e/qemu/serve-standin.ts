/**
 * A minimal stand-in for `guestnet serve`, used by the QEMU e2e test when the real command is not
 * there (or GUESTNET_E2E_STANDIN=1): the same command line and startup line, none of the features
 * beyond the data path.
 *
 *   tsx serve-standin.ts --listen unix:PATH [--protocol stream] CONFIG
 *   tsx serve-standin.ts --listen udp:HOST:PORT --protocol dgram [--peer HOST:PORT] CONFIG
 *
 * stream: each accepted connection gets a fresh backend (attachStream). dgram: one backend on
 * the bound UDP socket (attachDgram), the peer given by --peer or learnt from the first datagram.
 * Prints `ready … -netdev …` once listening; exits on SIGTERM/SIGINT. No control socket, pcap,
 * ws or tcp listeners.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { createBackend } from '../../../packages/core/src/index.ts';
import { attachDgram, attachStream } from '../../../packages/core/src/node.ts';

const importer = (s: string): Promise<unknown> =>
  s === '@guestnet/slirp' ? import('../../../packages/slirp/src/index.ts') : import(s);

const args = process.argv.slice(2);
let listen = '';
let protocol = 'stream';
let peer = '';
let config = 'backend=slirp';
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--listen') listen = args[++i];
  else if (a === '--protocol') protocol = args[++i];
  else if (a === '--peer') peer = args[++i];
  else config = a;
}

function fail(msg: string): never {
  console.error(`serve-standin: ${msg}`);
  process.exit(2);
}

const cleanups: (() => void | Promise<void>)[] = [];
const shutdown = async (): Promise<void> => {
  for (const c of cleanups.reverse()) await c();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

if (protocol === 'stream') {
  if (!listen.startsWith('unix:')) fail('stream needs --listen unix:PATH');
  const path = listen.slice(5);
  rmSync(path, { force: true });
  const conns = new Set<Socket>();
  const server = createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    void (async () => {
      try {
        const backend = await createBackend(config, { importer });
        const att = await attachStream(sock, backend);
        const end = await att.done;
        console.error(`serve-standin: client gone (${end.reason}${end.error ? `: ${end.error.message}` : ''})`);
      } catch (err) {
        console.error(`serve-standin: ${(err as Error).message}`);
        sock.destroy();
      }
    })();
  });
  await new Promise<void>((r, j) => {
    server.once('error', j);
    server.listen(path, () => r());
  });
  cleanups.push(() => {
    for (const c of conns) c.destroy();
    server.close();
    rmSync(path, { force: true });
  });
  console.log(`guestnet serve (stand-in): ready on unix:${path} (stream); QEMU: -netdev stream,id=n0,server=off,addr.type=unix,addr.path=${path}`);
} else if (protocol === 'dgram') {
  const m = /^udp:([\d.]+):(\d+)$/.exec(listen);
  if (!m) fail('dgram needs --listen udp:HOST:PORT');
  const sock = createSocket('udp4');
  await new Promise<void>((r, j) => {
    sock.once('error', j);
    sock.bind(Number(m[2]), m[1], () => r());
  });
  const pm = /^([\d.]+):(\d+)$/.exec(peer);
  const backend = await createBackend(config, { importer });
  const att = await attachDgram(sock, pm ? { address: pm[1], port: Number(pm[2]) } : 'learn', backend);
  cleanups.push(() => att.close());
  const local = pm ? `local.type=inet,local.host=${pm[1]},local.port=${pm[2]},` : '';
  console.log(`guestnet serve (stand-in): ready on udp:${m[1]}:${m[2]} (dgram); QEMU: -netdev dgram,id=n0,${local}remote.type=inet,remote.host=${m[1]},remote.port=${m[2]}`);
} else {
  fail(`unsupported protocol ${protocol}`);
}
