/**
 * HostIo for Node: node:net for TCP and unix sockets, node:dgram for UDP, node:child_process for
 * guestfwd commands, node:fs for TFTP and /etc/resolv.conf.
 *
 * Sockets are created half-open capable (`allowHalfOpen`) because the NAT relays FIN in each
 * direction separately, and hostfwd listeners pause new connections until the guest side is
 * established so nothing is read that cannot be delivered.
 */
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { open, readFile, realpath } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { AddrInUseError, ErrorCode, GuestnetError, PermissionError } from '../errors.ts';
import type { HostAddr, HostIo, HostTcp, HostUdp, TcpHandlers, TcpListener, UdpHandlers, UdpListener } from './host-io.ts';

function errInfo(e: unknown): { code: string; message: string } {
  const x = e as NodeJS.ErrnoException;
  return { code: x?.code ?? 'EIO', message: x?.message ?? String(e) };
}

function wrapSocket(sock: net.Socket, h: TcpHandlers, connected: boolean): HostTcp {
  let closed = false;
  // With an `onread` buffer (see connectTcp) data never comes as 'data' events.
  sock.on('data', (chunk: Buffer) => h.onData(chunk));
  sock.on('end', () => h.onEnd());
  sock.on('drain', () => h.onDrain());
  let lastErr: { code: string; message: string } | null = null;
  sock.on('error', (e) => {
    lastErr = errInfo(e);
  });
  sock.on('close', () => {
    if (closed) return;
    closed = true;
    h.onClose(lastErr);
  });
  if (connected) queueMicrotask(() => h.onConnect());
  else sock.once('connect', () => h.onConnect());
  return {
    write: (data) => sock.write(data),
    get pendingBytes() {
      return sock.writableLength;
    },
    end: () => {
      if (!sock.writableEnded) sock.end();
    },
    destroy: () => {
      if (sock.destroyed) return;
      // Not while a shutdown (our end()) is in flight: libuv refuses the RST (uv_tcp_close_reset:
      // EINVAL) and Node 20 then never closes the handle — the fd leaks, 'close' never fires and
      // process exit spins forever in Environment::CleanupHandles. The FIN is already on its way;
      // a plain close is the right ending then.
      if (typeof sock.resetAndDestroy === 'function' && sock.readyState !== 'opening' && !(sock.writableEnded && !sock.writableFinished)) sock.resetAndDestroy();
      else sock.destroy();
    },
    pause: () => sock.pause(),
    resume: () => sock.resume(),
    setNoDelay: (on) => {
      sock.setNoDelay(on);
    },
    get localPort() {
      return sock.localPort ?? 0;
    },
  };
}

function listenError(e: unknown, what: string): Error {
  const x = e as NodeJS.ErrnoException;
  if (x?.code === 'EADDRINUSE') return new AddrInUseError(what, e);
  if (x?.code === 'EACCES' || x?.code === 'EPERM') {
    return new PermissionError(`no permission to listen on ${what}`, 'use a port above 1023, or run with CAP_NET_BIND_SERVICE', e);
  }
  if (x?.code === 'EADDRNOTAVAIL') {
    return new GuestnetError(ErrorCode.BadConfig, `cannot listen on ${what}: the address is not on this host`, { cause: e });
  }
  return new GuestnetError(ErrorCode.Io, `cannot listen on ${what}: ${x?.message ?? e}`, { cause: e });
}

export function parseResolvConf(text: string): HostAddr[] {
  const out: HostAddr[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.replace(/%.*$/, '');
    const family = net.isIP(addr);
    if (family === 4 || family === 6) out.push({ address: addr, port: 53, family });
  }
  return out;
}

/** Bytes read at most per `read` into the shared buffer (as Node's own default read size). */
const READ_BUFFER = 64 * 1024;

export function createNodeHostIo(): HostIo {
  // One read buffer for every connection of this HostIo whose stack borrows chunks: a socket read
  // then allocates nothing (Node otherwise allocates a 64 KiB ArrayBuffer per read and shrinks
  // it), and skips the Readable stream's push/'data' path. Safe because the event loop delivers
  // one read at a time and such a stack copies what it keeps before returning.
  let shared: Buffer | null = null;
  return {
    connectTcp(to, h) {
      const opts: net.NetConnectOpts = { host: to.address, port: to.port, family: to.family, allowHalfOpen: true, noDelay: true };
      if (h.borrowsChunks) {
        const buffer = (shared ??= Buffer.allocUnsafe(READ_BUFFER));
        const onData = h.onData;
        opts.onread = {
          buffer,
          callback: (n: number, buf: Uint8Array) => {
            onData(buf.subarray(0, n));
            return true;
          },
        };
      }
      const sock = net.connect(opts);
      return wrapSocket(sock, h, false);
    },
    connectUnix(path, h) {
      const sock = net.connect({ path, allowHalfOpen: true });
      return wrapSocket(sock, h, false);
    },
    spawnCommand(command, h) {
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'inherit'] });
      let closed = false;
      const finish = (err: { code: string; message: string } | null) => {
        if (closed) return;
        closed = true;
        h.onClose(err);
      };
      child.stdout.on('data', (c: Buffer) => h.onData(c));
      child.stdout.on('end', () => h.onEnd());
      child.stdin.on('drain', () => h.onDrain());
      child.stdin.on('error', () => {});
      child.on('error', (e) => finish(errInfo(e)));
      child.on('close', () => finish(null));
      child.on('spawn', () => h.onConnect());
      return {
        write: (d) => child.stdin.write(d),
        get pendingBytes() {
          return child.stdin.writableLength;
        },
        end: () => child.stdin.end(),
        destroy: () => {
          child.kill('SIGTERM');
        },
        pause: () => child.stdout.pause(),
        resume: () => child.stdout.resume(),
        setNoDelay: () => {},
        localPort: 0,
      };
    },
    openUdp(family, h) {
      return new Promise<HostUdp>((res, rej) => {
        const s = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
        s.once('error', rej);
        s.bind(0, () => {
          s.off('error', rej);
          s.on('error', (e) => h.onError(errInfo(e)));
          s.on('message', (msg, rinfo) => h.onMessage(msg, { address: rinfo.address, port: rinfo.port }));
          res({
            send: (d, port, address) => s.send(d, port, address),
            close: () => {
              try {
                s.close();
              } catch {
                /* already closed */
              }
            },
            localPort: s.address().port,
          });
        });
      });
    },
    listenTcp(endpoint, onConnection) {
      return new Promise<TcpListener>((res, rej) => {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
        const what = endpoint.kind === 'unix' ? `unix:${endpoint.path}` : `${endpoint.addr.includes(':') ? `[${endpoint.addr}]` : endpoint.addr}:${endpoint.port}`;
        server.once('error', (e) => rej(listenError(e, what)));
        server.on('connection', (sock) => {
          onConnection((h) => wrapSocket(sock, h, true), { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 });
        });
        const ready = () => {
          server.removeAllListeners('error');
          server.on('error', () => {});
          const a = server.address();
          res({
            port: typeof a === 'object' && a ? a.port : 0,
            address: typeof a === 'object' && a ? a.address : endpoint.kind === 'unix' ? endpoint.path : '',
            close: () => server.close(),
          });
        };
        if (endpoint.kind === 'unix') server.listen(endpoint.path, ready);
        else server.listen({ host: endpoint.addr, port: endpoint.port, exclusive: true }, ready);
      });
    },
    listenUdp(addr, port, h) {
      return new Promise<UdpListener>((res, rej) => {
        const s = dgram.createSocket({ type: net.isIPv6(addr) ? 'udp6' : 'udp4' });
        s.once('error', (e) => rej(listenError(e, `${addr}:${port}/udp`)));
        s.bind({ address: addr, port, exclusive: true }, () => {
          s.removeAllListeners('error');
          s.on('error', (e) => h.onError(errInfo(e)));
          s.on('message', (msg, rinfo) => h.onMessage(msg, { address: rinfo.address, port: rinfo.port }));
          const a = s.address();
          res({
            send: (d, p, address) => s.send(d, p, address),
            close: () => {
              try {
                s.close();
              } catch {
                /* already closed */
              }
            },
            localPort: a.port,
            address: a.address,
          });
        });
      });
    },
    async openFile(root, name) {
      if (!root) return null;
      try {
        const realRoot = await realpath(root);
        const target = await realpath(resolve(realRoot, name.replace(/^\/+/, '')));
        if (target !== realRoot && !target.startsWith(realRoot + sep)) return null;
        const fh = await open(target, 'r');
        const st = await fh.stat();
        if (!st.isFile()) {
          await fh.close();
          return null;
        }
        return {
          size: st.size,
          read: async (pos, dst) => (await fh.read(dst, 0, dst.length, pos)).bytesRead,
          close: () => {
            fh.close().catch(() => {});
          },
        };
      } catch {
        return null;
      }
    },
    async systemResolvers() {
      try {
        return parseResolvConf(await readFile('/etc/resolv.conf', 'utf8'));
      } catch {
        return [];
      }
    },
  };
}
