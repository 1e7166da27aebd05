import { describe, it, expect, afterEach } from 'vitest';
import { BaseBackend, NO_OFFLOADS, pair, Verdict } from '@guestnet/core';
import {
  EtherType,
  IpProto,
  Ipv4View,
  TcpFlags,
  TcpView,
  VirtioNetFlags,
  VirtioNetGso,
  emitEthernet,
  emitIpv4,
  emitTcp,
  emitVirtioNet,
  foldSum,
  ipv4PseudoSum,
} from '@guestnet/wire';
import { ValeSwitch, setPortOffloads } from './switch.ts';
import { formatPortRegion, openPortRegion, portRegionBytes, type RingGeometry } from './ring.ts';
import { portDoorbells, switchDoorbells } from './doorbell.ts';
import { NetmapPortBackend } from './port-backend.ts';
import { BROADCAST, checkFrame, mac, recorder, testFrame, until } from './testing.ts';

const SMALL: RingGeometry = { slots: 64, bufSize: 2048 };
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function newSwitch(opts: ConstructorParameters<typeof ValeSwitch>[1] = {}): ValeSwitch {
  const sw = new ValeSwitch('vale-test', opts);
  cleanup.push(() => sw.close());
  return sw;
}

/** Attach a port region to `sw` and return the guest side's backend (not yet initialised). */
function port(sw: ValeSwitch, n: number, g: RingGeometry = SMALL): NetmapPortBackend {
  const mem = new SharedArrayBuffer(portRegionBytes(g));
  formatPortRegion(mem, g);
  const swView = openPortRegion(mem, 0, 'switch');
  sw.attachRegion(n, swView, switchDoorbells(swView));
  const view = openPortRegion(mem, 0, 'port');
  const be = new NetmapPortBackend(view, portDoorbells(view), { keepAlive: false });
  cleanup.push(() => be.close());
  return be;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('ValeSwitch learning and flooding', () => {
  it('floods an unknown unicast frame to every other port, never back out of the ingress port', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [ra, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    expect(a.send(testFrame(mac(9), mac(1), 60, 7))).toBe(Verdict.Delivered);
    await until(() => rb.frames.length === 1 && rc.frames.length === 1);
    await settle();
    expect(ra.frames).toHaveLength(0);
    expect(checkFrame(rb.frames[0]!)).toBe(7);
    expect(sw.portStats(1)).toMatchObject({ rxFrames: 1, rxBytes: 60, txFrames: 0 });
    expect(sw.portStats(2)).toMatchObject({ txFrames: 1, txBytes: 60 });
  });

  it('learns source MACs so a reply goes only to the port that sent', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [ra, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    a.send(testFrame(mac(2), mac(1), 60, 1)); // unknown: flooded, A learnt
    await until(() => rb.frames.length === 1 && rc.frames.length === 1);
    b.send(testFrame(mac(1), mac(2), 60, 2)); // known: only to A, B learnt
    await until(() => ra.frames.length === 1);
    a.send(testFrame(mac(2), mac(1), 60, 3)); // known: only to B
    await until(() => rb.frames.length === 2);
    await settle();
    expect(rc.frames).toHaveLength(1);
    expect(checkFrame(rb.frames[1]!)).toBe(3);
    expect(sw.stats().macs).toBe(2);
  });

  it('floods broadcast and multicast even when every MAC is known', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    c.send(testFrame(BROADCAST, mac(3), 60, 0));
    await settle();
    a.send(testFrame(BROADCAST, mac(1), 60, 1));
    a.send(testFrame(Uint8Array.of(0x01, 0x00, 0x5e, 0, 0, 1), mac(1), 60, 2));
    await until(() => rb.frames.length === 3 && rc.frames.length === 3);
    expect(rb.frames.slice(1).map((f) => checkFrame(f))).toEqual([1, 2]);
  });

  it('forgets a MAC after the aging time and floods again', async () => {
    let now = 0;
    const sw = newSwitch({ agingMs: 1000, now: () => now });
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    now = 999;
    a.send(testFrame(mac(2), mac(1), 60, 1));
    await until(() => rb.frames.length === 1);
    await settle();
    expect(rc.frames).toHaveLength(1);
    now = 2000;
    a.send(testFrame(mac(2), mac(1), 60, 2));
    await until(() => rb.frames.length === 2 && rc.frames.length === 2);
  });

  it('does not learn multicast source addresses', async () => {
    const sw = newSwitch();
    const [a, b] = [port(sw, 1), port(sw, 2)];
    const [, rb] = await Promise.all([recorder(a), recorder(b)]);
    a.send(testFrame(BROADCAST, Uint8Array.of(1, 2, 3, 4, 5, 6), 60, 0));
    await until(() => rb.frames.length === 1);
    expect(sw.stats().macs).toBe(0);
  });

  it('forgets the MACs of a detached port and floods to the others', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    sw.detach(2);
    expect(sw.stats().macs).toBe(0);
    a.send(testFrame(mac(2), mac(1), 60, 5));
    await until(() => rc.frames.length === 2);
    expect(rb.frames).toHaveLength(0);
    expect(sw.has(2)).toBe(false);
  });
});

describe('ValeSwitch ports', () => {
  it('takes 254 ports numbered 0..253 and floods a broadcast to the 253 others', async () => {
    const sw = newSwitch();
    const g = { slots: 4, bufSize: 128 };
    const ports = Array.from({ length: 254 }, (_, i) => port(sw, i, g));
    const recs = await Promise.all(ports.map((p) => recorder(p)));
    expect(() => port(sw, 254, g)).toThrow(expect.objectContaining({ code: 'GUESTNET_BAD_CONFIG' }));
    expect(() => port(sw, -1, g)).toThrow(/0\.\.253/);
    expect(() => port(sw, 7, g)).toThrow(expect.objectContaining({ code: 'GUESTNET_EXISTS' }));
    expect(sw.freePort()).toBe(-1);
    ports[100]!.send(testFrame(BROADCAST, mac(100), 64, 1));
    await until(() => recs.every((r, i) => r.frames.length === (i === 100 ? 0 : 1)));
  });

  it('detaches a port whose guest side closes', async () => {
    const sw = newSwitch();
    const a = port(sw, 1);
    await recorder(a);
    await a.close();
    await a.close();
    await until(() => !sw.has(1));
    expect(a.send(testFrame(BROADCAST, mac(1), 60, 0))).toBe(Verdict.Dropped);
  });

  it('keeps forwarding between the others at full rate when one port never drains', async () => {
    const sw = newSwitch({ stallMs: 5 });
    const [a, b, slow] = [port(sw, 1), port(sw, 2), port(sw, 3, { slots: 16, bufSize: 2048 })];
    const [, rb] = await Promise.all([recorder(a), recorder(b)]);
    await slow.init(() => {});
    slow.pauseRecv(); // its guest stopped reading
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    slow.send(testFrame(BROADCAST, mac(3), 60, 0)); // learnt, so A → slow is unicast
    await settle();
    const N = 3000;
    let sent = 0;
    for (let i = 0; i < N; i++) {
      // Every 3rd frame to the slow port, every 10th broadcast, the rest to B.
      const dst = i % 10 === 0 ? BROADCAST : i % 3 === 0 ? mac(3) : mac(2);
      const f = testFrame(dst, mac(1), 60 + (i % 1400), i);
      let v = a.send(f);
      // `queued` took the frame; `dropped` (backpressure) did not: wait and send it again.
      while (v !== Verdict.Delivered) {
        await new Promise((r) => setTimeout(r, 1));
        v = v === Verdict.Queued ? Verdict.Delivered : a.send(f);
      }
      sent++;
    }
    const toB = Array.from({ length: N }, (_, i) => i).filter((i) => i % 10 === 0 || i % 3 !== 0);
    // B also got the slow port's learning broadcast (sequence 0) first.
    await until(() => rb.frames.length >= toB.length + 1, 10_000, 'frames at B');
    expect(rb.frames.map((f) => checkFrame(f))).toEqual([0, ...toB]);
    const slowStats = sw.portStats(3)!;
    expect(slowStats.drops['rx-ring-full']).toBeGreaterThan(0);
    expect(sw.portStats(2)!.drops['rx-ring-full'] ?? 0).toBe(0);
    expect(sent).toBe(N);
  });

  it('survives ports leaving in the middle of a stream', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    const [, rb, rc] = await Promise.all([recorder(a), recorder(b), recorder(c)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => rc.frames.length === 1);
    for (let i = 1; i <= 400; i++) {
      if (i === 200) await b.close();
      const v = a.send(testFrame(mac(2), mac(1), 200, i));
      if (v !== Verdict.Delivered) await new Promise((r) => setTimeout(r, 1));
      if (i % 50 === 0) await settle();
    }
    await until(() => !sw.has(2));
    await settle();
    // Before B left its frames went to B only; afterwards B's MAC is unknown and floods to C.
    expect(rb.frames.length).toBeGreaterThan(0);
    expect(rb.frames.length).toBeLessThan(200);
    await until(() => rc.frames.length > 1);
    expect(rc.frames.every((f) => checkFrame(f) >= 0)).toBe(true);
  });

  it('converts between ports with and without a virtio-net header', async () => {
    const sw = newSwitch();
    const [a, b] = [port(sw, 1), port(sw, 2)];
    a.setCapabilities({ vnetHdrLen: 12 });
    const [ra, rb] = await Promise.all([recorder(a), recorder(b)]);
    a.send(testFrame(BROADCAST, mac(1), 60, 4, 12));
    await until(() => rb.frames.length === 1);
    expect(rb.frames[0]!.length).toBe(60);
    expect(checkFrame(rb.frames[0]!)).toBe(4);
    b.send(testFrame(BROADCAST, mac(2), 60, 5));
    await until(() => ra.frames.length === 1);
    expect(ra.frames[0]!.length).toBe(72);
    expect(checkFrame(ra.frames[0]!, 12)).toBe(5);
    // An offloaded frame (NEEDS_CSUM) whose checksum offsets point into the Ethernet header
    // cannot be finished for a port without a header: dropped at the source, counted.
    const f = testFrame(BROADCAST, mac(1), 60, 6, 12);
    f[0] = 1;
    a.send(f);
    await until(() => (sw.portStats(1)!.drops['offload-bad-csum-offsets'] ?? 0) === 1);
    expect(sw.stats().offload.dropped).toBe(1);
    expect(rb.frames).toHaveLength(1);
  });
});

describe('ValeSwitch uplink', () => {
  it('switches frames to and from any NetBackend (a pair() endpoint)', async () => {
    const sw = newSwitch();
    const [up, host] = pair();
    cleanup.push(() => host.close());
    await sw.attachBackend(0, up);
    const rhost = await recorder(host);
    const g1 = port(sw, 1);
    const r1 = await recorder(g1);
    g1.send(testFrame(BROADCAST, mac(1), 300, 1));
    await until(() => rhost.frames.length === 1);
    expect(checkFrame(rhost.frames[0]!)).toBe(1);
    host.send(testFrame(mac(1), mac(0x99), 1500, 2));
    await until(() => r1.frames.length === 1);
    expect(checkFrame(r1.frames[0]!)).toBe(2);
    expect(sw.portStats(0)).toMatchObject({ kind: 'backend', rxFrames: 1, txFrames: 1 });
    sw.detach(0);
    expect(up.send(new Uint8Array(60))).toBe(Verdict.Dropped); // closed with the port
  });
});

// ---- virtio-net offloads -----------------------------------------------------------------------

const SRC_IP = 0x0a00020f;
const DST_IP = 0x0a000202;
const TSO = { csum: true, tso4: true, tso6: true };

/**
 * A TCPv4 frame as a Linux sender with offloads hands it over: `hdr`-byte virtio-net header,
 * NEEDS_CSUM with the pseudo-header sum in the checksum field, and (gsoSize > 0) GSO_TCPV4.
 */
function tcpFrame(dst: Uint8Array, src: Uint8Array, payloadLen: number, gsoSize: number, hdr: 10 | 12 = 12): Uint8Array {
  const f = new Uint8Array(hdr + 14 + 20 + 20 + payloadLen);
  emitEthernet({ dst, src, ethertype: EtherType.IPv4, vlanId: -1 }, f, hdr);
  emitIpv4({ src: SRC_IP, dst: DST_IP, protocol: IpProto.TCP, payloadLen: 20 + payloadLen, ttl: 64, ident: 100 }, f, hdr + 14);
  for (let i = 0; i < payloadLen; i++) f[hdr + 54 + i] = (i * 13) & 0xff;
  emitTcp({ srcPort: 4000, dstPort: 80, seqNum: 1000, ackNum: 1, flags: TcpFlags.ACK | TcpFlags.PSH, window: 100, payloadLen }, f, hdr + 34);
  const ps = foldSum(ipv4PseudoSum(SRC_IP, DST_IP, IpProto.TCP, 20 + payloadLen));
  f[hdr + 50] = ps >>> 8;
  f[hdr + 51] = ps;
  emitVirtioNet(
    {
      flags: VirtioNetFlags.NEEDS_CSUM,
      gsoType: gsoSize > 0 ? VirtioNetGso.TCPV4 : VirtioNetGso.NONE,
      hdrLen: 54,
      gsoSize,
      csumStart: 34,
      csumOffset: 16,
      numBuffers: 0,
    },
    f,
    0,
    hdr,
  );
  return f;
}

/** Checks a plain segment at f[hdr…]: IPv4 and TCP checksums and lengths. Returns seq and payload length. */
function tcpSegment(f: Uint8Array, hdr = 0): { seq: number; len: number } {
  const ip = new Ipv4View();
  expect(ip.reset(f, hdr + 14, f.length - hdr - 14)).toBe(true);
  expect(ip.verifyChecksum()).toBe(true);
  expect(ip.totalLen).toBe(f.length - hdr - 14);
  const tcp = new TcpView();
  expect(tcp.reset(f, hdr + 34, f.length - hdr - 34)).toBe(true);
  expect(tcp.verifyChecksumPseudo(ipv4PseudoSum(SRC_IP, DST_IP, IpProto.TCP, f.length - hdr - 34))).toBe(true);
  return { seq: tcp.seqNum, len: f.length - hdr - 54 };
}

/** An uplink that speaks virtio-net headers with csum/TSO, like slirp. */
class OffloadUplink extends BaseBackend {
  readonly type = 'offload-uplink';
  readonly sent: Uint8Array[] = [];
  constructor() {
    super({ supportedVnetHdrLens: [10, 12], supportedOffloads: TSO });
  }
  protected async onInit(): Promise<void> {}
  protected onSend(frame: Uint8Array): Verdict {
    this.sent.push(frame.slice());
    return Verdict.Delivered;
  }
  protected async onClose(): Promise<void> {}
  inject(frame: Uint8Array): void {
    this.deliver(frame);
  }
}

describe('ValeSwitch virtio-net offload conversion', () => {
  it('cuts a TSO super-frame once for all ports without offloads and passes it whole to ports with TSO', async () => {
    const sw = newSwitch();
    const [a, b, c, d] = [port(sw, 1), port(sw, 2), port(sw, 3), port(sw, 4)];
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    c.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    const [rb, rc, rd] = await Promise.all([recorder(b), recorder(c), recorder(d), recorder(a)]);
    const big = tcpFrame(BROADCAST, mac(1), 4000, 1448);
    expect(a.send(big)).not.toBe(Verdict.Dropped);
    await until(() => rb.frames.length === 3 && rd.frames.length === 3 && rc.frames.length === 1);
    for (const r of [rb, rd]) {
      const segs = r.frames.map((f) => tcpSegment(f));
      expect(segs).toEqual([
        { seq: 1000, len: 1448 },
        { seq: 2448, len: 1448 },
        { seq: 3896, len: 1104 },
      ]);
    }
    expect(rc.frames[0]).toEqual(big);
    // Segmented once (3 segments), though two ports received them.
    expect(sw.stats().offload).toEqual({ segmented: 1, segments: 3, checksummed: 0, dropped: 0 });
    expect(sw.portStats(2)).toMatchObject({ txFrames: 3 });
  });

  it('completes a partial checksum for a port without a header, leaves it to a port that declared csum', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    c.setCapabilities({ vnetHdrLen: 12, offloads: { csum: true } });
    setPortOffloads(c.region, { ...NO_OFFLOADS, csum: true });
    const [rb, rc] = await Promise.all([recorder(b), recorder(c), recorder(a)]);
    const f = tcpFrame(BROADCAST, mac(1), 300, 0);
    a.send(f);
    await until(() => rb.frames.length === 1 && rc.frames.length === 1);
    expect(tcpSegment(rb.frames[0]!)).toEqual({ seq: 1000, len: 300 });
    expect(rc.frames[0]).toEqual(f); // still NEEDS_CSUM: that port finishes it itself
    expect(sw.stats().offload).toMatchObject({ checksummed: 1, segmented: 0 });
  });

  it('segments for a port whose header lacks TSO, each segment with a zero header', async () => {
    const sw = newSwitch();
    const [a, c] = [port(sw, 1), port(sw, 3)];
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    c.setCapabilities({ vnetHdrLen: 12, offloads: { csum: true } });
    setPortOffloads(c.region, { ...NO_OFFLOADS, csum: true });
    const [rc] = await Promise.all([recorder(c), recorder(a)]);
    a.send(tcpFrame(BROADCAST, mac(1), 3000, 1000));
    await until(() => rc.frames.length === 3);
    for (const f of rc.frames) {
      expect(f.subarray(0, 12)).toEqual(new Uint8Array(12));
      expect(tcpSegment(f, 12).len).toBe(1000);
    }
  });

  it('resizes the header between 10- and 12-byte ports, keeping the offload fields', async () => {
    const sw = newSwitch();
    const [a, c] = [port(sw, 1), port(sw, 3)];
    a.setCapabilities({ vnetHdrLen: 10, offloads: TSO });
    c.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    const [rc, ra] = await Promise.all([recorder(c), recorder(a)]);
    const f = tcpFrame(BROADCAST, mac(1), 3000, 1000, 10);
    a.send(f);
    await until(() => rc.frames.length === 1);
    expect(rc.frames[0]!.length).toBe(f.length + 2);
    expect(rc.frames[0]!.subarray(0, 10)).toEqual(f.subarray(0, 10));
    expect(rc.frames[0]!.subarray(12)).toEqual(f.subarray(10));
    // And back: 12 → 10.
    const g = tcpFrame(BROADCAST, mac(3), 3000, 1000, 12);
    c.send(g);
    await until(() => ra.frames.length === 1);
    expect(ra.frames[0]!.subarray(0, 10)).toEqual(g.subarray(0, 10));
    expect(ra.frames[0]!.subarray(10)).toEqual(g.subarray(12));
    expect(sw.stats().offload.segmented).toBe(0);
  });

  it('segments a unicast super-frame to a learnt port without offloads only', async () => {
    const sw = newSwitch();
    const [a, b, c] = [port(sw, 1), port(sw, 2), port(sw, 3)];
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    const [rb, rc, ra] = await Promise.all([recorder(b), recorder(c), recorder(a)]);
    b.send(testFrame(BROADCAST, mac(2), 60, 0));
    await until(() => ra.frames.length === 1 && rc.frames.length === 1);
    a.send(tcpFrame(mac(2), mac(1), 20000, 1448));
    await until(() => rb.frames.length === 14);
    let seq = 1000;
    for (const f of rb.frames) {
      const s = tcpSegment(f);
      expect(s.seq).toBe(seq);
      seq += s.len;
    }
    expect(seq).toBe(21000);
    await settle();
    expect(rc.frames).toHaveLength(1);
  });

  it('negotiates csum/TSO with an uplink that supports them; its super-frames are cut only for ports without TSO', async () => {
    const sw = newSwitch();
    const up = new OffloadUplink();
    await sw.attachBackend(0, up);
    expect(up.capabilities()).toMatchObject({ vnetHdrLen: 12, offloads: { csum: true, tso4: true, tso6: true } });
    const [a, b] = [port(sw, 1), port(sw, 2)];
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    const [ra, rb] = await Promise.all([recorder(a), recorder(b)]);
    // Guest with TSO → uplink: whole.
    const big = tcpFrame(BROADCAST, mac(1), 30000, 1448);
    a.send(big);
    await until(() => up.sent.length === 1 && rb.frames.length === 21);
    expect(up.sent[0]).toEqual(big);
    // Plain guest → uplink: a zero header in front.
    b.send(testFrame(BROADCAST, mac(2), 60, 9));
    await until(() => up.sent.length === 2);
    expect(up.sent[1]!.length).toBe(72);
    expect(checkFrame(up.sent[1]!, 12)).toBe(9);
    // Uplink super-frame → whole to the TSO guest, segments to the plain one.
    const down = tcpFrame(BROADCAST, mac(0x99), 5000, 1448);
    up.inject(down);
    await until(() => ra.frames.length === 2 && rb.frames.length === 21 + 4);
    expect(ra.frames[1]).toEqual(down);
    expect(rb.frames.slice(-4).map((f) => tcpSegment(f).len)).toEqual([1448, 1448, 1448, 656]);
    expect(sw.stats().offload).toMatchObject({ segmented: 2, segments: 21 + 4 });
  });

  it('keeps plain frames with an uplink when asked (vnetHdr off)', async () => {
    const sw = newSwitch();
    const up = new OffloadUplink();
    await sw.attachBackend(0, up, { vnetHdr: 'off' });
    expect(up.capabilities().vnetHdrLen).toBe(0);
    const a = port(sw, 1);
    a.setCapabilities({ vnetHdrLen: 12, offloads: TSO });
    await recorder(a);
    a.send(tcpFrame(BROADCAST, mac(1), 3000, 1448));
    await until(() => up.sent.length === 3);
    expect(up.sent.map((f) => tcpSegment(f).len)).toEqual([1448, 1448, 104]);
  });
});
