import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pair } from '@guestnet/core';
import { attachDgram, attachStream } from '@guestnet/core/node';
import { TestGuest } from '../../../../packages/slirp/src/testing/test-guest.ts';
import { GuestnetServer, type ServeOptions } from './server.ts';
import { connectWebSocketClient } from './ws-client.ts';

// Never the host's resolvers: DNS goes to a closed loopback port.
const CONFIG = 'backend=slirp,dns-upstream=127.0.0.1#1,allow=127.0.0.0/8';
const ip = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

let dir: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let logs: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gn-serve-'));
  logs = [];
});
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function serve(opts: Partial<ServeOptions> = {}): Promise<GuestnetServer> {
  const s = await GuestnetServer.start({ config: CONFIG, listen: { kind: 'unix', path: join(dir, 'gn.sock') }, log: (l) => logs.push(l), ...opts });
  cleanups.push(() => s.close());
  return s;
}

function connect(s: GuestnetServer): Promise<net.Socket> {
  const a = s.address;
  return new Promise((resolve, reject) => {
    const c = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host);
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

const mac = (n: number): Uint8Array => Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, n);

/** A scripted guest whose NIC is a QEMU-stream client of the server. */
async function streamGuest(s: GuestnetServer, n = 0x56): Promise<{ guest: TestGuest; sock: net.Socket }> {
  const sock = await connect(s);
  const [nic, wire] = pair();
  await attachStream(sock, wire);
  const guest = new TestGuest(nic, { mac: mac(n) });
  await guest.start();
  cleanups.push(() => guest.stop(), () => sock.destroy());
  return { guest, sock };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('guestnet serve › stream', () => {
  it('gives two clients their own backend: each gets the first lease, 10.0.2.15', async () => {
    const s = await serve();
    const a = await streamGuest(s, 1);
    const b = await streamGuest(s, 2);
    expect(ip((await a.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    expect(ip((await b.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    const st = s.stats() as { clients: { id: number; backend: { txFrames: number } }[]; clients_connected: number };
    expect(st.clients_connected).toBe(2);
    expect(st.clients.map((c) => c.id)).toEqual([1, 2]);
    expect(st.clients.every((c) => c.backend.txFrames >= 2)).toBe(true);
    expect(logs).toContain('guestnet: client 1 connected (unix)');
  });

  it('drops a client that sends an oversize length, with the reason logged, and keeps serving the other', async () => {
    const s = await serve();
    const good = await streamGuest(s, 1);
    const bad = await connect(s);
    const closed = new Promise((r) => bad.once('close', r));
    bad.resume(); // read to EOF, so 'close' fires
    bad.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3));
    await closed;
    await until(() => logs.some((l) => l.startsWith('guestnet: client 2 dropped: stream framing error')), 'the drop log line');
    expect(logs.find((l) => l.includes('client 2 dropped'))).toContain('4294967295');
    expect(ip((await good.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    expect((s.stats() as { clients_dropped: number }).clients_dropped).toBe(1);
  });

  it('drops a zero-length frame the same way', async () => {
    const s = await serve();
    const bad = await connect(s);
    const closed = new Promise((r) => bad.once('close', r));
    bad.resume();
    bad.write(new Uint8Array(4));
    await closed;
    await until(() => logs.some((l) => /client 1 dropped: .*zero-length/.test(l)), 'the drop log line');
  });

  it('serves a client that disconnects and connects again', async () => {
    const s = await serve();
    const first = await streamGuest(s, 1);
    await first.guest.dhcp();
    first.sock.destroy();
    await until(() => s.clientCount === 0, 'the first client to go');
    expect(logs.some((l) => /client 1 disconnected/.test(l))).toBe(true);
    const again = await streamGuest(s, 1);
    expect(ip((await again.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    await again.guest.arp(0x0a000202);
  });

  it('--shared puts clients on one backend: one DHCP pool, .15 and .16', async () => {
    const s = await serve({ shared: true });
    const a = await streamGuest(s, 1);
    const b = await streamGuest(s, 2);
    expect(ip((await a.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    expect(ip((await b.guest.dhcp()).yiaddr)).toBe('10.0.2.16');
    const st = s.stats() as { switch: { ports: number }; backend: { txFrames: number }; shared: boolean };
    expect(st.shared).toBe(true);
    expect(st.switch.ports).toBe(2);
  });

  it('listens on TCP and prints the inet stream fragment', async () => {
    const s = await serve({ listen: { kind: 'inet', host: '127.0.0.1', port: 0 } });
    const a = s.address as { port: number };
    expect(s.readyLine()).toBe(
      `guestnet: ready on tcp:127.0.0.1:${a.port} (stream) — qemu: -netdev stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${a.port}`,
    );
    const g = await streamGuest(s);
    await g.guest.dhcp();
  });

  it('prints the unix stream fragment QEMU 7.2 understands', async () => {
    const s = await serve();
    const p = join(dir, 'gn.sock');
    expect(s.readyLine()).toBe(`guestnet: ready on unix:${p} (stream) — qemu: -netdev stream,id=n0,server=off,addr.type=unix,addr.path=${p}`);
  });

  it('removes the socket file on close and refuses a path something listens on', async () => {
    const s = await serve();
    const p = join(dir, 'gn.sock');
    await expect(GuestnetServer.start({ config: CONFIG, listen: { kind: 'unix', path: p }, log: () => {} })).rejects.toMatchObject({ code: 'GUESTNET_ADDR_IN_USE' });
    await s.close();
    expect(existsSync(p)).toBe(false);
  });
});

describe('guestnet serve › dgram', () => {
  it('exchanges frames with a QEMU-dgram peer at --remote', async () => {
    const peerSock = dgram.createSocket('udp4');
    await new Promise<void>((r) => peerSock.bind(0, '127.0.0.1', () => r()));
    const remote = { host: '127.0.0.1', port: peerSock.address().port };
    const s = await serve({ protocol: 'dgram', listen: { kind: 'inet', host: '127.0.0.1', port: 0 }, remote });
    const us = s.address as { host: string; port: number };
    expect(s.readyLine()).toBe(
      `guestnet: ready on udp:127.0.0.1:${us.port} (dgram) — qemu: -netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${remote.port},remote.type=inet,remote.host=127.0.0.1,remote.port=${us.port}`,
    );
    const [nic, wire] = pair();
    const att = await attachDgram(peerSock, { address: '127.0.0.1', port: us.port }, wire);
    cleanups.push(() => att.close());
    const guest = new TestGuest(nic);
    await guest.start();
    cleanups.push(() => guest.stop());
    expect(ip((await guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    const st = s.stats() as { dgram: { framesIn: number; framesOut: number } };
    expect(st.dgram.framesIn).toBeGreaterThanOrEqual(2);
    expect(st.dgram.framesOut).toBeGreaterThanOrEqual(2);
  });

  it('picks a free port for QEMU when --remote is not given', async () => {
    const s = await serve({ protocol: 'dgram', listen: { kind: 'inet', host: '127.0.0.1', port: 0 } });
    expect(s.remote!.port).toBeGreaterThan(0);
    expect(s.remote!.port).not.toBe((s.address as { port: number }).port);
  });
});

describe('guestnet serve › ws', () => {
  async function wsGuest(s: GuestnetServer, n: number): Promise<{ guest: TestGuest; client: Awaited<ReturnType<typeof connectWebSocketClient>> }> {
    const sock = await connect(s);
    const [nic, wire] = pair();
    const client = await connectWebSocketClient(sock, wire);
    const guest = new TestGuest(nic, { mac: mac(n) });
    await guest.start();
    cleanups.push(() => guest.stop(), () => sock.destroy());
    return { guest, client };
  }

  it('carries one frame per binary message: a DHCP lease over WebSocket', async () => {
    const s = await serve({ protocol: 'ws', listen: { kind: 'inet', host: '127.0.0.1', port: 0 } });
    const port = (s.address as { port: number }).port;
    expect(s.readyLine()).toBe(`guestnet: ready on ws://127.0.0.1:${port}/ (ws) — v86: network_relay_url: "ws://127.0.0.1:${port}/"`);
    const { guest } = await wsGuest(s, 1);
    expect(ip((await guest.dhcp()).yiaddr)).toBe('10.0.2.15');
    await guest.arp(0x0a000202);
  });

  it('drops a client sending an unmasked frame (close 1002) and keeps the other', async () => {
    const s = await serve({ protocol: 'ws', listen: { kind: 'inet', host: '127.0.0.1', port: 0 } });
    const good = await wsGuest(s, 1);
    const bad = await wsGuest(s, 2);
    bad.client.writeRaw(Uint8Array.of(0x82, 0x01, 0x00)); // unmasked binary from a client: RFC 6455 §5.1
    expect((await bad.client.done).code).toBe(1002);
    await until(() => logs.some((l) => /client 2 dropped: websocket framing error: the peer sent an unmasked frame/.test(l)), 'the drop log line');
    expect(ip((await good.guest.dhcp()).yiaddr)).toBe('10.0.2.15');
  });

  it('answers a plain HTTP request with 400 and logs the drop', async () => {
    const s = await serve({ protocol: 'ws', listen: { kind: 'inet', host: '127.0.0.1', port: 0 } });
    const sock = await connect(s);
    let reply = '';
    sock.on('data', (d) => (reply += d.toString()));
    const closed = new Promise((r) => sock.once('close', r));
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    await until(() => logs.some((l) => /client 1 .*dropped: websocket handshake failed: no "Upgrade: websocket"/.test(l)), 'the drop log line');
  });
});

describe('guestnet serve › host forwards', () => {
  it('applies config rules to the oldest client and moves them when it leaves', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const s = await serve({ config: `${CONFIG},hostfwd=tcp::${port}-:22` });
    expect(s.hostfwdList()[0]!.bound).toBeNull(); // no client yet: pending
    const a = await streamGuest(s, 1);
    const b = await streamGuest(s, 2);
    await a.guest.dhcp();
    await b.guest.dhcp();
    expect(s.hostfwdList()[0]!.bound).toMatchObject({ host: { port } });
    expect((s.stats() as { hostfwd_owner: string }).hostfwd_owner).toBe('client 1');

    // Client 1 leaves: client 2 inherits the forward, and a host connection reaches its guest.
    a.sock.destroy();
    await until(() => (s.stats() as { hostfwd_owner: string }).hostfwd_owner === 'client 2', 'the rule to move');
    let accepted = false;
    b.guest.listen(22, (sock) => {
      accepted = true;
      sock.write(new TextEncoder().encode('SSH-2.0-guest\r\n'));
    });
    const c = net.connect(port, '127.0.0.1');
    cleanups.push(() => c.destroy());
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    await until(() => got.includes('SSH-2.0-guest'), 'the banner through the moved forward', 10_000);
    expect(accepted).toBe(true);
  });

  it('adds, lists and removes rules at run time on the owner', async () => {
    const s = await serve();
    const a = await streamGuest(s, 1);
    await a.guest.dhcp();
    const e = await s.hostfwdAdd({ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 0 }, guestAddr: '', guestPort: 80 });
    expect(e.id).toBe(1);
    const bound = e.bound as { host: { port: number } };
    expect(bound.host.port).toBeGreaterThan(0);
    expect(s.hostfwdList()).toHaveLength(1);
    expect(await s.hostfwdRemove(1)).toBe(true);
    expect(await s.hostfwdRemove(1)).toBe(false);
    expect(s.hostfwdList()).toEqual([]);
    // The port is free again.
    const again = net.createServer();
    await new Promise<void>((r, j) => {
      again.once('error', j);
      again.listen(bound.host.port, '127.0.0.1', () => r());
    });
    await new Promise((r) => again.close(r));
  });
});

describe('guestnet serve › pcap', () => {
  it('writes a pcapng per client backend: FILE for client 1, FILE.2 for client 2', async () => {
    const file = join(dir, 'cap.pcapng');
    const s = await serve({ pcap: file });
    const a = await streamGuest(s, 1);
    await a.guest.dhcp();
    const b = await streamGuest(s, 2);
    await b.guest.dhcp();
    await s.close();
    for (const f of [file, `${file}.2`]) {
      const buf = readFileSync(f);
      expect(buf.readUInt32LE(0)).toBe(0x0a0d0d0a); // SHB
      expect(buf.readUInt32LE(8)).toBe(0x1a2b3c4d); // byte-order magic
      // Walk the blocks: SHB, IDB, then at least DISCOVER/OFFER/REQUEST/ACK as EPBs, with directions.
      let off = 0;
      const dirs: number[] = [];
      while (off < buf.length) {
        const type = buf.readUInt32LE(off);
        const len = buf.readUInt32LE(off + 4);
        expect(buf.readUInt32LE(off + len - 4)).toBe(len);
        if (type === 6) {
          const capLen = buf.readUInt32LE(off + 20);
          const optOff = off + 28 + ((capLen + 3) & ~3);
          if (buf.readUInt16LE(optOff) === 2) dirs.push(buf.readUInt32LE(optOff + 4) & 3);
        }
        off += len;
      }
      expect(dirs.filter((d) => d === 2).length).toBeGreaterThanOrEqual(2); // outbound (guest → backend)
      expect(dirs.filter((d) => d === 1).length).toBeGreaterThanOrEqual(2); // inbound
    }
  });
});

