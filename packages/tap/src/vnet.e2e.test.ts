/**
 * Root tier: vnet_hdr=on against the kernel. The backend negotiates a 12-byte header with
 * csum + tso4; the test checks the header on ordinary frames, then plays a minimal TCP receiver
 * (ARP, SYN-ACK, cumulative ACKs) for a kernel socket in the namespace that writes 4 MiB, and
 * requires a GSO super-frame (> MTU, gso_type TCPV4, NEEDS_CSUM) to arrive. All inside a
 * namespace this file creates; skipped with a printed reason without root (fails under CI=true).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TapBackend } from './tap-backend.ts';
import { getLink } from './link.ts';
import { Netns, gate, tapPrereqs, waitFor } from './testing/e2e.ts';
import { TCP, arp, ethernet, get16, get32, icmpEcho, ip4Bytes, ipv4, pattern, tcp } from './testing/frames.ts';

const canRun = gate('tap vnet_hdr e2e', tapPrereqs());
const HDR = 12;
const ME = { mac: '02:00:00:00:00:22', ip: '10.98.0.2' };
const KERNEL_IP = '10.98.0.1';
const PORT = 5001;

/** struct virtio_net_hdr_mrg_rxbuf, little-endian. */
function vnet(f: Uint8Array) {
  const le16 = (o: number) => f[o]! | (f[o + 1]! << 8);
  return { flags: f[0]!, gsoType: f[1]!, hdrLen: le16(2), gsoSize: le16(4), csumStart: le16(6), csumOffset: le16(8), numBuffers: le16(10) };
}

function withHdr(frame: Uint8Array): Uint8Array {
  const f = new Uint8Array(HDR + frame.length); // all-zero header: no offload, full checksums
  f.set(frame, HDR);
  return f;
}

describe.skipIf(!canRun)('tap backend with vnet_hdr=on', () => {
  let ns: Netns;
  let be: TapBackend | undefined;
  let sender: ChildProcess | undefined;
  beforeAll(() => {
    ns = new Netns('tapv');
  });
  afterAll(async () => {
    sender?.kill('SIGKILL');
    await be?.close();
    ns?.remove();
  });

  it('negotiates a 12-byte header with csum+tso4 and receives well-formed headers and a GSO super-frame', async () => {
    be = new TapBackend({ ifname: 'gtv', netns: ns.path, vnet_hdr: true });
    expect(be.capabilities().supportedVnetHdrLens).toEqual([0, 10, 12]);
    const caps = be.setCapabilities({ vnetHdrLen: HDR, offloads: { csum: true, tso4: true, ufo: true } });
    expect(caps.vnetHdrLen).toBe(12);
    expect(caps.offloads).toMatchObject({ csum: true, tso4: true, tso6: false, ufo: false });
    // TSO without checksum offload is not something the kernel accepts: never granted.
    expect(new TapBackend({ ifname: 'x', vnet_hdr: true }).setCapabilities({ vnetHdrLen: 12, offloads: { tso4: true } }).offloads.tso4).toBe(false);

    const b = be;
    const echoReplies: Uint8Array[] = [];
    const superFrames: { hdr: ReturnType<typeof vnet>; len: number }[] = [];
    let badHeaders = 0;
    let kernelMac = '';
    // TCP receiver state (one connection).
    let rcvNxt = -1;
    let bytes = 0;
    const iss = 1_000_000;

    const reply = (ipPayload: Uint8Array) => b.send(withHdr(ethernet(kernelMac, ME.mac, 0x0800, ipv4(ME.ip, KERNEL_IP, 6, ipPayload))));

    await b.init((f) => {
      const h = vnet(f);
      // Well-formed: known flag bits (NEEDS_CSUM 1, DATA_VALID 2), known gso types, num_buffers 1.
      if ((h.flags & ~3) !== 0 || ![0, 1, 4].includes(h.gsoType & 0x7f) || h.numBuffers !== 1) badHeaders++;
      const e = HDR;
      const et = get16(f, e + 12);
      if (et === 0x0806 && get16(f, e + 20) === 1) {
        kernelMac = [...f.subarray(e + 22, e + 28)].map((x) => x.toString(16).padStart(2, '0')).join(':');
        b.send(withHdr(ethernet(kernelMac, ME.mac, 0x0806, arp(2, ME.mac, ME.ip, kernelMac, KERNEL_IP))));
        return;
      }
      if (et !== 0x0800) return;
      const ip = e + 14;
      const proto = f[ip + 9]!;
      if (proto === 1 && f[ip + 20] === 0) echoReplies.push(f.slice());
      if (proto !== 6) return;
      const t = ip + (f[ip]! & 15) * 4;
      if (get16(f, t + 2) !== PORT) return;
      const seq = get32(f, t + 4);
      const flags = f[t + 13]!;
      const dataLen = f.length - (t + (f[t + 12]! >> 4) * 4);
      if (h.gsoType !== 0) superFrames.push({ hdr: h, len: f.length - HDR });
      if (flags & TCP.SYN) {
        rcvNxt = (seq + 1) >>> 0;
        // MSS 1460, window scale 7 (+NOP): room for the kernel's whole initial burst.
        const opts = Uint8Array.of(2, 4, 0x05, 0xb4, 1, 3, 3, 7);
        reply(tcp(ME.ip, KERNEL_IP, PORT, get16(f, t), iss, rcvNxt, TCP.SYN | TCP.ACK, 65535, opts));
        return;
      }
      if (rcvNxt < 0) return;
      if (seq === rcvNxt && dataLen > 0) {
        rcvNxt = (rcvNxt + dataLen) >>> 0;
        bytes += dataLen;
      }
      if (dataLen > 0 || flags & TCP.FIN) reply(tcp(ME.ip, KERNEL_IP, PORT, get16(f, t), iss + 1, rcvNxt, TCP.ACK, 65535));
    });
    ns.ip('addr', 'add', `${KERNEL_IP}/24`, 'dev', 'gtv');
    const mac = getLink('gtv', ns.path).mac;
    kernelMac = mac;

    // 1. An ordinary exchange: the kernel's echo reply arrives with a 12-byte header.
    b.send(withHdr(ethernet('ff:ff:ff:ff:ff:ff', ME.mac, 0x0806, arp(1, ME.mac, ME.ip, '00:00:00:00:00:00', KERNEL_IP))));
    const data = pattern(64, 3);
    await waitFor(() => {
      b.send(withHdr(ethernet(mac, ME.mac, 0x0800, ipv4(ME.ip, KERNEL_IP, 1, icmpEcho(8, 7, 1, data)))));
      return echoReplies.length > 0;
    }, 5_000, 'the echo reply');
    const er = echoReplies[0]!;
    expect(vnet(er)).toMatchObject({ gsoType: 0, gsoSize: 0, numBuffers: 1 });
    expect([...er.subarray(HDR, HDR + 6)]).toEqual(ME.mac.split(':').map((x) => parseInt(x, 16)));
    expect([...er.subarray(HDR + 26, HDR + 30)]).toEqual([...ip4Bytes(KERNEL_IP)]);

    // 2. A kernel TCP sender in the namespace: with TSO granted, super-frames reach us.
    sender = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e',
      `const s = require('net').connect(${PORT}, '${ME.ip}', () => { s.write(Buffer.alloc(4 << 20, 7)); s.end(); }); s.on('error', () => {}); setTimeout(() => process.exit(0), 20000).unref();`,
    ], { stdio: 'ignore' });
    await waitFor(() => superFrames.length > 0 && bytes > 100_000, 20_000, 'a GSO super-frame');
    const sf = superFrames[0]!;
    expect(sf.len).toBeGreaterThan(1514);
    expect(sf.hdr.gsoType & 0x7f).toBe(1); // VIRTIO_NET_HDR_GSO_TCPV4
    expect(sf.hdr.flags & 1).toBe(1); // NEEDS_CSUM: partial checksum, as csum offload allows
    expect(sf.hdr.gsoSize).toBeGreaterThan(0);
    expect(sf.hdr.gsoSize).toBeLessThanOrEqual(1460);
    expect(sf.hdr.csumStart).toBe(14 + 20);
    expect(sf.hdr.csumOffset).toBe(16); // TCP checksum field
    expect(badHeaders).toBe(0);
    expect(b.stats().drops).toEqual({});
  });
});
