/**
 * Helpers for the stack-tier tests (slirp*.test.ts): a backend with a scripted guest attached,
 * loopback-only host peers (TCP and UDP servers, a DNS test resolver speaking UDP and TCP), and
 * a cleanup list. Host peers bind 127.0.0.1 or ::1 only; DNS never reaches /etc/resolv.conf's
 * resolvers (the backend is always given a `dns-upstream`).
 */
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import type { NetBackend } from '@guestnet/core';
import { SlirpBackend, type SlirpRuntime } from '../slirp.ts';
import { TestGuest, type TestGuestOptions } from './test-guest.ts';
import type { HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Things to undo after each test, last first. */
export class Cleanups {
  private readonly list: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.list.push(fn);
  }
  async run(): Promise<void> {
    while (this.list.length) {
      try {
        await this.list.pop()!();
      } catch {
        /* best effort: a failed cleanup must not hide the test's own failure */
      }
    }
  }
}

export interface GuestSetup {
  guest: TestGuest;
  backend: SlirpBackend;
}

/**
 * A started backend and guest. `wrap` puts middleware between them (fault injector);
 * `before` runs on the backend before init (setCapabilities).
 */
export async function guestWith(
  cleanups: Cleanups,
  options: Record<string, unknown> = {},
  extra: { wrap?: (b: SlirpBackend) => NetBackend; before?: (b: SlirpBackend) => void; guest?: TestGuestOptions; rt?: SlirpRuntime } = {},
): Promise<GuestSetup> {
  // Never the host's resolvers: port 1 on loopback refuses, unless a test passes its own server.
  const backend = new SlirpBackend({ 'dns-upstream': ['127.0.0.1#1'], ...options }, extra.rt);
  extra.before?.(backend);
  const guest = new TestGuest(extra.wrap ? extra.wrap(backend) : backend, extra.guest);
  await guest.start();
  cleanups.add(() => guest.stop());
  return { guest, backend };
}

export function listenTcp(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

export function bindUdp(sock: dgram.Socket, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, host, () => resolve(sock.address().port));
  });
}

/** Stop listening; waits for open connections at most 1 s (a test that failed may leave some). */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((r) => {
    const t = setTimeout(r, 1000);
    server.close(() => {
      clearTimeout(t);
      r();
    });
  });
}

/** A TCP echo server on loopback that closes when the client half-closes. */
export async function echoServer(cleanups: Cleanups, host = '127.0.0.1'): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  const port = await listenTcp(server, host);
  cleanups.add(() => {
    for (const s of sockets) s.destroy();
    return closeServer(server);
  });
  return { server, port, sockets };
}

/** A DNS query for `name` (type A or AAAA) with id `id`. */
export function dnsQuery(id: number, name: string, type = 1): Uint8Array {
  const labels = name.split('.').filter(Boolean);
  const q: number[] = [id >>> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const l of labels) q.push(l.length, ...Buffer.from(l, 'ascii'));
  q.push(0, type >>> 8, type & 0xff, 0, 1);
  return Uint8Array.from(q);
}

/**
 * Answer a query with one A record `addr` (or AAAA: 16 bytes), echoing id and question.
 * Returns null for something that is not a query.
 */
export function dnsAnswer(query: Uint8Array, addr: Uint8Array): Uint8Array | null {
  if (query.length < 12 || query[2]! & 0x80) return null;
  let p = 12;
  while (p < query.length && query[p] !== 0) p += query[p]! + 1;
  const qEnd = p + 5;
  if (qEnd > query.length) return null;
  const type = addr.length === 16 ? 28 : 1;
  const rr = [0xc0, 12, 0, type, 0, 1, 0, 0, 0, 60, 0, addr.length, ...addr];
  const out = new Uint8Array(qEnd + rr.length);
  out.set(query.subarray(0, qEnd));
  out[2] = 0x81;
  out[3] = 0x80;
  out[6] = 0;
  out[7] = 1;
  out[8] = out[9] = out[10] = out[11] = 0;
  out.set(rr, qEnd);
  return out;
}

/**
 * A test resolver on 127.0.0.1 (UDP and TCP on the same port number) that answers every A
 * query with `addr`. `queries` counts what it saw per transport.
 */
export async function dnsTestServer(cleanups: Cleanups, addr = Uint8Array.of(192, 0, 2, 80), host = '127.0.0.1'): Promise<{ port: number; queries: { udp: number; tcp: number } }> {
  const queries = { udp: 0, tcp: 0 };
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const n = buf.readUInt16BE(0);
        const q = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        queries.tcp++;
        const a = dnsAnswer(q, addr);
        if (!a) continue;
        const framed = Buffer.alloc(2 + a.length);
        framed.writeUInt16BE(a.length, 0);
        framed.set(a, 2);
        s.write(framed);
      }
    });
  });
  // Same port for UDP and TCP, as a real resolver: retry until both bind.
  for (let tries = 0; ; tries++) {
    const port = await listenTcp(tcp, host);
    const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    if (ok) {
      udp.on('message', (m, r) => {
        queries.udp++;
        const a = dnsAnswer(m, addr);
        if (a) udp.send(a, r.port, r.address);
      });
      cleanups.add(() => {
        udp.close();
        return closeServer(tcp);
      });
      return { port, queries };
    }
    udp.close();
    await closeServer(tcp);
    if (tries > 20) throw new Error('cannot bind a DNS test server');
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const isLoopback = (a: string): boolean => a === '::1' || a.startsWith('127.');

/**
 * Node host I/O that records what the stack opened (to prove a packet never left) and, as a
 * safety net should the stack be wrong, never lets anything reach a non-loopback address: such
 * connects fail as refused and such datagrams are discarded (both still recorded).
 */
export function spyingIo(): { io: HostIo; opened: { tcp: string[]; udp: number; udpSentOutside: string[] } } {
  const base = createNodeHostIo();
  const opened = { tcp: [] as string[], udp: 0, udpSentOutside: [] as string[] };
  const io: HostIo = {
    ...base,
    connectTcp(to, h) {
      opened.tcp.push(`${to.address}:${to.port}`);
      if (!isLoopback(to.address)) return base.connectTcp({ address: '127.0.0.1', port: 1, family: 4 }, h);
      return base.connectTcp(to, h);
    },
    async openUdp(family, h) {
      opened.udp++;
      const s = await base.openUdp(family, h);
      return {
        send: (d, port, address) => {
          if (isLoopback(address)) s.send(d, port, address);
          else opened.udpSentOutside.push(`${address}:${port}`);
        },
        close: () => s.close(),
        localPort: s.localPort,
      };
    },
  };
  return { io, opened };
}
