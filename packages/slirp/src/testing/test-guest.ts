/**
 * A scripted test guest built from the wire layer, for the stack tier of the tests: it plays a
 * guest OS on the other side of a NetBackend — ARP, DHCP, UDP, ICMP echo and TCP (the guest's TCP
 * is our own engine, so two TCP implementations meet back to back, as KarpelesLab/slirp tests do).
 *
 * Frames to the backend are built with FrameOut (with the guest's MAC as the source); frames from
 * the backend are parsed with the wire views and checksums are verified, so a stack that emits a
 * bad checksum fails the test that receives it.
 */
import {
  ArpOp,
  ArpView,
  Dhcpv4MessageType,
  Dhcpv4View,
  EtherType,
  EthernetView,
  IpProto,
  Ipv4View,
  Ipv6View,
  Ipv6ExtInfo,
  TcpOptions,
  TcpView,
  UdpView,
  emitArp,
  emitDhcpv4,
  ipv4PseudoSum,
  parseDhcpv4,
  scanTcpOptions,
  walkIpv6Headers,
  pseudoSumV6,
  checksum,
  MAC_BROADCAST,
  Icmpv6View,
  VirtioNetFlags,
  VirtioNetGso,
  emitNdp,
  ndpLen,
  parseNdp,
  ndpFindOption,
  emitDhcpv6,
  dhcpv6Len,
  dhcpv6DuidLl,
  parseDhcpv6,
  Dhcpv6View,
  Dhcpv6MsgType,
  virtioNetCompleteChecksum,
  type Dhcpv4Repr,
  type Dhcpv6Repr,
  type NdpRepr,
} from '@guestnet/wire';
import type { NetBackend } from '@guestnet/core';
import { FrameOut } from '@guestnet/core';
import { TcpConnection, resolveTcpConfig } from '../tcp/connection.ts';
import { createSegmentOut, type TcpOutput, type TcpPayloadSource, type TcpSegmentIn } from '@guestnet/core';

export interface TestGuestOptions {
  /** The guest NIC's MAC. Default 52:54:00:12:34:56. */
  mac?: Uint8Array;
  /**
   * Speak virtio-net headers (negotiate them on the backend first): frames sent carry a header,
   * TCP/UDP checksums are left partial (NEEDS_CSUM); with `tso` the guest's TCP sends super-frames
   * (gso_type TCPV4). Received frames have their header parsed, recorded in `vnetRx`, partial
   * checksums completed, and are then handled as plain Ethernet.
   */
  vnetHdrLen?: 0 | 10 | 12;
  tso?: boolean;
}

/** What a received virtio-net header said. */
export interface VnetRxInfo {
  flags: number;
  gsoType: number;
  gsoSize: number;
  hdrLen: number;
  csumStart: number;
  csumOffset: number;
  /** Ethernet frame length (after the header). */
  frameLen: number;
  /** num_buffers (12-byte header only; -1 for a 10-byte header). */
  numBuffers: number;
}

const NO_PAYLOAD: TcpPayloadSource = { copySendData() {} };
const ALL_ROUTERS = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);
const ALL_DHCP = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2);
const mcastMac = (a: Uint8Array): Uint8Array => Uint8Array.of(0x33, 0x33, a[12]!, a[13]!, a[14]!, a[15]!);
const DUMMY_IP6 = new Uint8Array(40);

export interface GuestUdp {
  src: number | Uint8Array;
  srcPort: number;
  dstPort: number;
  data: Uint8Array;
}

export class GuestTcpSocket {
  readonly conn: TcpConnection;
  readonly chunks: Uint8Array[] = [];
  received = 0;
  peerFin = false;
  closedReason: string | null = null;
  established = false;
  private waiters: (() => void)[] = [];
  pendingWrite: Uint8Array | null = null;
  readonly key: string;
  readonly guest: TestGuest;

  constructor(guest: TestGuest, conn: TcpConnection, key: string) {
    this.guest = guest;
    this.conn = conn;
    this.key = key;
    conn.onData = (c) => {
      this.chunks.push(c.slice());
      this.received += c.length;
      conn.consumed(c.length);
      this.wake();
    };
    conn.onPeerFin = () => {
      this.peerFin = true;
      this.wake();
    };
    conn.onEstablished = () => {
      this.established = true;
      this.wake();
    };
    conn.onClosed = (r) => {
      this.closedReason = r;
      this.guest.forget(this);
      this.wake();
    };
    conn.onWritable = () => this.pump();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until `cond` holds (re-checked on every event), or time out. */
  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (state ${this.conn.state}, received ${this.received})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Queue bytes; honours the engine's send buffer bound. */
  write(data: Uint8Array): void {
    this.pendingWrite = this.pendingWrite ? concat(this.pendingWrite, data) : data;
    this.pump();
  }

  private pump(): void {
    if (!this.pendingWrite) return;
    const n = this.conn.write(this.pendingWrite);
    this.pendingWrite = n >= this.pendingWrite.length ? null : this.pendingWrite.subarray(n);
    this.guest.flushTcp(this);
  }

  end(): void {
    const finish = () => {
      if (this.pendingWrite) {
        setTimeout(finish, 5);
        return;
      }
      this.conn.shutdownWrite();
      this.guest.flushTcp(this);
    };
    finish();
  }

  /** Abort: RST to the peer. */
  abort(): void {
    this.conn.abort();
    this.guest.flushTcp(this);
  }

  data(): Uint8Array {
    return concat(...this.chunks);
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export class TestGuest {
  readonly mac: Uint8Array;
  gatewayMac: Uint8Array = MAC_BROADCAST;
  /** The router's MAC as NDP resolved it (null until `ndpResolve`); IPv6 falls back to `gatewayMac`. */
  gatewayMac6: Uint8Array | null = null;
  ip = 0;
  ip6: Uint8Array | null = null;
  /** fe80:: address from the MAC (EUI-64). */
  readonly linkLocal: Uint8Array;
  readonly vnetHdrLen: number;
  /** Headers of every frame received (vnet mode only). */
  readonly vnetRx: VnetRxInfo[] = [];
  /** Frames from the backend the guest could not parse; a stack test expects none. */
  readonly malformed: string[] = [];
  /** Router advertisements received (parsed). */
  readonly ras: Extract<NdpRepr, { kind: 'routerAdvert' }>[] = [];
  /** Neighbor advertisements received (parsed), with the IPv6 source. */
  readonly nas: { src: Uint8Array; na: Extract<NdpRepr, { kind: 'neighborAdvert' }> }[] = [];
  /** ARP replies received: sender IP → sender MAC. */
  readonly arpReplies = new Map<number, Uint8Array>();
  readonly backend: NetBackend;
  readonly out: FrameOut;
  /** Every frame received, for tests that inspect raw output. */
  readonly frames: Uint8Array[] = [];
  readonly udp: GuestUdp[] = [];
  readonly icmp: { src: number; type: number; data: Uint8Array }[] = [];
  readonly badChecksums: string[] = [];
  private readonly sockets = new Map<string, GuestTcpSocket>();
  private readonly listeners = new Map<number, (s: GuestTcpSocket) => void>();
  private readonly tcpCfg: ReturnType<typeof resolveTcpConfig>;
  private readonly tcpCfg6: ReturnType<typeof resolveTcpConfig>;
  private waiters: (() => void)[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  keepFrames = false;
  private readonly eth = new EthernetView();
  private readonly ip4v = new Ipv4View();
  private readonly ip6v = new Ipv6View();
  private readonly ext = new Ipv6ExtInfo();
  private readonly udpv = new UdpView();
  private readonly tcpv = new TcpView();
  private readonly opts = new TcpOptions();
  private nextPort = 40000;
  private holdTx = 0;
  /** Largest frame sent (with its vnet header), to see TSO super-frames leave. */
  txMaxLen = 0;
  private readonly heldTx: Uint8Array[] = [];

  constructor(backend: NetBackend, opts: TestGuestOptions = {}) {
    this.backend = backend;
    this.mac = (opts.mac ?? Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)).slice();
    this.vnetHdrLen = opts.vnetHdrLen ?? 0;
    const tso = this.vnetHdrLen > 0 && opts.tso === true;
    // With TSO the guest's TCP emits up to ~64 KiB per segment; FrameOut marks it GSO TCPV4.
    // A short minimum RTO (the link is in-process) keeps lossy-link tests fast; the stack's own
    // TCP keeps its defaults.
    this.tcpCfg = resolveTcpConfig({ mss: 1460, maxSegmentPayload: tso ? 44 * 1460 : 0, minRtoMs: 30, timeWaitMs: 200 });
    this.tcpCfg6 = resolveTcpConfig({ mss: 1440, minRtoMs: 30, timeWaitMs: 200 });
    this.linkLocal = new Uint8Array(16);
    this.linkLocal[0] = 0xfe;
    this.linkLocal[1] = 0x80;
    this.linkLocal.set(this.eui64(), 8);
    const self = this;
    this.out = new FrameOut({
      deliver: (f) => {
        // While a socket is being created its SYN is held back: the backend may answer (RST)
        // synchronously, before the socket is in the table to receive the answer.
        if (f.length > self.txMaxLen) self.txMaxLen = f.length;
        if (self.holdTx > 0) self.heldTx.push(f.slice());
        else self.backend.send(f);
      },
      drop: (r) => {
        throw new Error(`test guest could not send: ${r}`);
      },
      get gatewayMac() {
        return self.mac;
      },
      macFor4: () => self.gatewayMac,
      macFor6: () => self.gatewayMac6 ?? self.gatewayMac,
    });
    this.out.setCaps({ vnetHdrLen: this.vnetHdrLen, csum: this.vnetHdrLen > 0, tso4: tso, tso6: false, mtu: 1500 });
  }

  /** The EUI-64 interface identifier of the MAC (RFC 4291 appendix A). */
  eui64(): Uint8Array {
    const m = this.mac;
    return Uint8Array.of(m[0]! ^ 2, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!);
  }

  async start(): Promise<void> {
    await this.backend.init((f) => this.receive(f));
    // The guest's TCP timers.
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const s of this.sockets.values()) if (s.conn.nextDeadline() <= now) s.conn.poll(now);
    }, 5);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.backend.close();
  }

  forget(s: GuestTcpSocket): void {
    if (this.sockets.get(s.key) === s) this.sockets.delete(s.key);
  }

  flushTcp(s: GuestTcpSocket): void {
    s.conn.flush(performance.now());
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  // ---- receive ---------------------------------------------------------------------------------

  private receive(frame: Uint8Array): void {
    if (this.keepFrames) this.frames.push(frame.slice());
    let f = frame;
    const v = this.vnetHdrLen;
    if (v > 0) {
      if (frame.length < v + 14) {
        this.malformed.push('short vnet frame');
        return;
      }
      const info: VnetRxInfo = {
        flags: frame[0]!,
        gsoType: frame[1]!,
        hdrLen: frame[2]! | (frame[3]! << 8),
        gsoSize: frame[4]! | (frame[5]! << 8),
        csumStart: frame[6]! | (frame[7]! << 8),
        csumOffset: frame[8]! | (frame[9]! << 8),
        frameLen: frame.length - v,
        numBuffers: v >= 12 ? frame[10]! | (frame[11]! << 8) : -1,
      };
      this.vnetRx.push(info);
      f = frame.slice(v);
      // A partial checksum is ours to finish (we are the "device"); verify it below as usual.
      if (info.flags & VirtioNetFlags.NEEDS_CSUM && !virtioNetCompleteChecksum(f, 0, f.length, info.csumStart, info.csumOffset)) {
        this.malformed.push('bad csum_start/csum_offset');
        return;
      }
      if (info.gsoType !== VirtioNetGso.NONE && !(info.flags & VirtioNetFlags.NEEDS_CSUM)) this.malformed.push('GSO frame without NEEDS_CSUM');
    }
    try {
      this.receiveEth(f);
    } catch (e) {
      this.malformed.push((e as Error).message);
    }
    this.wake();
  }

  private receiveEth(f: Uint8Array): void {
    const e = this.eth;
    if (!e.reset(f, 0, f.length)) throw new Error('backend sent a malformed Ethernet frame');
    if (e.ethertype === EtherType.ARP) {
      const a = new ArpView();
      if (a.reset(f, 14, f.length - 14) && a.op === ArpOp.REPLY) {
        this.gatewayMac = f.slice(6, 12);
        this.arpReplies.set(a.senderIp, f.slice(6, 12));
      }
    } else if (e.ethertype === EtherType.IPv4) {
      this.receive4(f);
    } else if (e.ethertype === EtherType.IPv6) {
      this.receive6(f);
    }
  }

  private receive4(f: Uint8Array): void {
    const ip = this.ip4v;
    if (!ip.reset(f, 14, f.length - 14)) throw new Error('backend sent a malformed IPv4 packet');
    if (!ip.verifyChecksum()) this.badChecksums.push('ipv4');
    const src = ip.src;
    const dst = ip.dst;
    const off = ip.payloadOffset;
    const len = ip.payloadLen;
    if (ip.isFragment) {
      this.frags.push({ off: ip.fragmentOffset, more: ip.moreFragments, data: f.slice(off, off + len), src, dst });
      if (!ip.moreFragments) this.reassemble();
      return;
    }
    this.l4v4(f, off, len, src, dst, ip.protocol);
  }

  private frags: { off: number; more: boolean; data: Uint8Array; src: number; dst: number }[] = [];
  private reassemble(): void {
    const total = Math.max(...this.frags.map((x) => x.off + x.data.length));
    const buf = new Uint8Array(total);
    for (const x of this.frags) buf.set(x.data, x.off);
    const { src, dst } = this.frags[0]!;
    this.frags = [];
    this.l4v4(buf, 0, total, src, dst, IpProto.UDP);
  }

  private l4v4(f: Uint8Array, off: number, len: number, src: number, dst: number, proto: number): void {
    if (proto === IpProto.UDP) {
      const u = this.udpv;
      if (!u.reset(f, off, len)) throw new Error('bad UDP from backend');
      if (!u.verifyChecksumPseudo(ipv4PseudoSum(src, dst, IpProto.UDP, u.length), true)) this.badChecksums.push('udp');
      const data = f.slice(u.payloadOffset, u.payloadOffset + u.payloadLen);
      if (u.srcPort === 67 && u.dstPort === 68) this.dhcpReplies.push(data);
      this.udp.push({ src, srcPort: u.srcPort, dstPort: u.dstPort, data });
    } else if (proto === IpProto.ICMP) {
      if (checksum(f, off, len) !== 0) this.badChecksums.push('icmp');
      this.icmp.push({ src, type: f[off]!, data: f.slice(off, off + len) });
    } else if (proto === IpProto.TCP) {
      const t = this.tcpv;
      if (!t.reset(f, off, len)) throw new Error('bad TCP from backend');
      if (!t.verifyChecksumPseudo(ipv4PseudoSum(src, dst, IpProto.TCP, len))) this.badChecksums.push('tcp');
      this.tcpInput(`${src}:${t.srcPort}:${t.dstPort}`, src, null, t);
    }
  }

  private receive6(f: Uint8Array): void {
    const ip = this.ip6v;
    if (!ip.reset(f, 14, f.length - 14)) throw new Error('backend sent a malformed IPv6 packet');
    if (!walkIpv6Headers(ip, this.ext)) return;
    const x = this.ext;
    const src = f.slice(22, 38);
    if (x.proto === IpProto.UDP) {
      const u = this.udpv;
      if (!u.reset(f, x.offset, x.len)) throw new Error('bad UDP6 from backend');
      if (!u.verifyChecksumPseudo(pseudoSumV6(f, 22, 38, IpProto.UDP, u.length), false)) this.badChecksums.push('udp6');
      this.udp.push({ src, srcPort: u.srcPort, dstPort: u.dstPort, data: f.slice(u.payloadOffset, u.payloadOffset + u.payloadLen) });
    } else if (x.proto === IpProto.TCP) {
      const t = this.tcpv;
      if (!t.reset(f, x.offset, x.len)) throw new Error('bad TCP6');
      if (!t.verifyChecksumPseudo(pseudoSumV6(f, 22, 38, IpProto.TCP, x.len))) this.badChecksums.push('tcp6');
      this.tcpInput(`${Buffer.from(src).toString('hex')}:${t.srcPort}:${t.dstPort}`, 0, src, t);
    } else if (x.proto === IpProto.ICMPv6) {
      if (checksum(f, x.offset, x.len, pseudoSumV6(f, 22, 38, IpProto.ICMPv6, x.len)) !== 0) this.badChecksums.push('icmp6');
      const type = f[x.offset]!;
      this.icmp6.push({ src, type, data: f.slice(x.offset, x.offset + x.len) });
      if (type === 134 || type === 136) {
        const iv = new Icmpv6View();
        const r = iv.reset(f, x.offset, x.len) ? parseNdp(iv) : null;
        if (r?.kind === 'routerAdvert') this.ras.push(r);
        else if (r?.kind === 'neighborAdvert') this.nas.push({ src, na: r });
        else this.malformed.push('unparseable NDP message');
      }
    }
  }

  readonly icmp6: { src: Uint8Array; type: number; data: Uint8Array }[] = [];
  private readonly dhcpReplies: Uint8Array[] = [];

  private tcpInput(key: string, src4: number, src6: Uint8Array | null, t: TcpView): void {
    scanTcpOptions(t, this.opts);
    const o = this.opts;
    const seg: TcpSegmentIn = {
      seq: t.seqNum,
      ack: t.ackNum,
      flags: t.flags,
      window: t.window,
      payload: t.bytes.subarray(t.payloadOffset, t.payloadOffset + t.payloadLen),
      mss: o.mss >= 0 ? o.mss : undefined,
      wscale: o.wscale >= 0 ? o.wscale : undefined,
      sackPermitted: o.sackPermitted || undefined,
      tsVal: o.hasTimestamp ? o.tsVal : undefined,
      tsEcr: o.hasTimestamp ? o.tsEcr : undefined,
    };
    const now = performance.now();
    const s = this.sockets.get(key);
    if (s) {
      s.conn.input(seg, now);
      s.conn.flush(now);
      return;
    }
    const accept = this.listeners.get(t.dstPort);
    if (accept && seg.flags & 0x02 && !(seg.flags & 0x10)) {
      const remotePort = t.srcPort;
      const localPort = t.dstPort;
      const ns = this.makeSocket(key, src4, src6, remotePort, localPort, (out) =>
        TcpConnection.acceptSyn(seg, now, 12345, src6 ? this.tcpCfg6 : this.tcpCfg, out, { deferSynAck: false }),
      );
      ns.conn.flush(now);
      accept(ns);
    }
  }

  private makeSocket(
    key: string,
    remote4: number,
    remote6: Uint8Array | null,
    remotePort: number,
    localPort: number,
    make: (out: TcpOutput) => TcpConnection,
  ): GuestTcpSocket {
    const self = this;
    let conn: TcpConnection | null = null;
    const out: TcpOutput = {
      emit(hdr, payloadLen, src) {
        const mss = conn ? conn.sendMss : 1460;
        if (remote6) self.out.sendTcp6(self.ip6!, localPort, remote6, remotePort, hdr, payloadLen, src, mss);
        else self.out.sendTcp4(self.ip, localPort, remote4, remotePort, hdr, payloadLen, src, mss);
      },
    };
    this.holdTx++;
    let s: GuestTcpSocket;
    try {
      conn = make(out);
      s = new GuestTcpSocket(this, conn, key);
      this.sockets.set(key, s);
    } finally {
      this.holdTx--;
    }
    if (this.holdTx === 0) for (const f of this.heldTx.splice(0)) this.backend.send(f);
    return s;
  }

  // ---- actions ---------------------------------------------------------------------------------

  /** ARP for the gateway so frames can be addressed. */
  async arp(target: number, ms = 10_000): Promise<void> {
    const p = new Uint8Array(28);
    emitArp({ op: ArpOp.REQUEST, senderMac: this.mac, senderIp: this.ip, targetMac: new Uint8Array(6), targetIp: target }, p, 0);
    const before = this.gatewayMac;
    this.out.sendL2(MAC_BROADCAST, EtherType.ARP, p);
    await this.until(() => this.gatewayMac !== before, 'ARP reply', ms);
  }

  /** DISCOVER → OFFER → REQUEST → ACK. Returns the ACK. */
  async dhcp(): Promise<Dhcpv4Repr> {
    const xid = 0x1234abcd;
    const chaddr = new Uint8Array(16);
    chaddr.set(this.mac);
    const base = (type: number, extra: Partial<Dhcpv4Repr['options']> = {}): Dhcpv4Repr => ({
      op: 1,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid,
      secs: 0,
      flags: 0,
      ciaddr: 0,
      yiaddr: 0,
      siaddr: 0,
      giaddr: 0,
      chaddr,
      sname: '',
      file: '',
      options: { messageType: type, parameterRequestList: [1, 3, 6, 15, 26, 119], ...extra },
    }) as Dhcpv4Repr;
    const send = (r: Dhcpv4Repr) => {
      const buf = new Uint8Array(600);
      const n = emitDhcpv4(r, buf, 0);
      this.out.sendUdp4(0, 68, 0xffffffff, 67, buf.subarray(0, n), MAC_BROADCAST);
    };
    const next = async (want: number): Promise<Dhcpv4Repr> => {
      await this.until(() => this.dhcpReplies.length > 0, 'DHCP reply');
      const raw = this.dhcpReplies.shift()!;
      const v = new Dhcpv4View();
      if (!v.reset(raw, 0, raw.length)) throw new Error('malformed DHCP reply');
      const r = parseDhcpv4(v);
      if (!r || r.options.messageType !== want) throw new Error(`expected DHCP type ${want}, got ${r?.options.messageType}`);
      return r;
    };
    send(base(Dhcpv4MessageType.DISCOVER));
    const offer = await next(Dhcpv4MessageType.OFFER);
    send(base(Dhcpv4MessageType.REQUEST, { requestedIp: offer.yiaddr, serverId: offer.options.serverId } as Partial<Dhcpv4Repr['options']>));
    const ack = await next(Dhcpv4MessageType.ACK);
    this.ip = ack.yiaddr;
    return ack;
  }

  sendUdp(dst: number, dstPort: number, data: Uint8Array, srcPort = 5555): void {
    this.out.sendUdp4(this.ip, srcPort, dst, dstPort, data);
  }

  sendUdp6(dst: Uint8Array, dstPort: number, data: Uint8Array, srcPort = 5555, src: Uint8Array = this.ip6!, dstMac: Uint8Array | null = null): void {
    this.out.sendUdp6(src, srcPort, dst, dstPort, data, dstMac);
  }

  /** Wait for (and remove) the first received datagram matching `pred`. */
  async recvUdp(pred: (u: GuestUdp) => boolean, what: string, ms = 10_000): Promise<GuestUdp> {
    let i = -1;
    await this.until(() => (i = this.udp.findIndex(pred)) >= 0, what, ms);
    return this.udp.splice(i, 1)[0]!;
  }

  /** A bare TCP segment with no connection behind it (SYN floods, stray ACKs). */
  sendRawTcp4(srcPort: number, dst: number, dstPort: number, flags: number, seq = 1000, ack = 0): void {
    const h = this.rawHdr;
    h.seq = seq >>> 0;
    h.ack = ack >>> 0;
    h.flags = flags;
    h.window = 65535;
    this.out.sendTcp4(this.ip, srcPort, dst, dstPort, h, 0, NO_PAYLOAD, 1460);
  }
  private readonly rawHdr = createSegmentOut();

  // ---- IPv6 ------------------------------------------------------------------------------------

  /** Router Solicitation from the link-local address; waits for an RA and forms the SLAAC address. */
  async slaac(): Promise<Extract<NdpRepr, { kind: 'routerAdvert' }>> {
    const rs: NdpRepr = { kind: 'routerSolicit', options: [{ kind: 'sourceLinkAddr', addr: this.mac }] };
    const body = new Uint8Array(ndpLen(rs));
    emitNdp(rs, body, 0, DUMMY_IP6, 0);
    const before = this.ras.length;
    this.out.sendIcmp6(this.linkLocal, ALL_ROUTERS, body, 255, mcastMac(ALL_ROUTERS));
    await this.until(() => this.ras.length > before, 'router advertisement');
    const ra = this.ras[this.ras.length - 1]!;
    const pi = ndpFindOption(ra.options, 'prefixInfo');
    if (!pi || !pi.autonomous || pi.prefixLen !== 64) throw new Error('RA has no SLAAC prefix');
    const a = pi.prefix.slice(0, 16);
    a.set(this.eui64(), 8);
    this.ip6 = a;
    const slla = ndpFindOption(ra.options, 'sourceLinkAddr');
    if (slla) this.gatewayMac = slla.addr.slice();
    return ra;
  }

  /** Neighbor Solicitation for `target`; resolves with the advertised MAC (also kept in gatewayMac6). */
  async ndpResolve(target: Uint8Array): Promise<Uint8Array> {
    const ns: NdpRepr = { kind: 'neighborSolicit', target, options: [{ kind: 'sourceLinkAddr', addr: this.mac }] };
    const body = new Uint8Array(ndpLen(ns));
    emitNdp(ns, body, 0, DUMMY_IP6, 0);
    const sn = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, target[13]!, target[14]!, target[15]!);
    const eq = (a: Uint8Array) => a.every((b, i) => b === target[i]);
    this.out.sendIcmp6(this.ip6 ?? this.linkLocal, sn, body, 255, mcastMac(sn));
    let hit: (typeof this.nas)[number] | undefined;
    await this.until(() => (hit = this.nas.find((n) => eq(n.na.target))) !== undefined, 'neighbor advertisement');
    const tlla = ndpFindOption(hit!.na.options, 'targetLinkAddr');
    if (!tlla) throw new Error('NA without target link-layer address');
    this.gatewayMac6 = tlla.addr.slice();
    return this.gatewayMac6;
  }

  ping6(dst: Uint8Array, id = 1, seq = 1, data = new Uint8Array(32)): void {
    const body = new Uint8Array(8 + data.length);
    body[0] = 128;
    body[4] = id >>> 8;
    body[5] = id & 0xff;
    body[6] = seq >>> 8;
    body[7] = seq & 0xff;
    body.set(data, 8);
    this.out.sendIcmp6(this.ip6!, dst, body, 64);
  }

  /** Stateless DHCPv6 (RFC 8415 §6.1): Information-Request from the link-local address; returns the Reply. */
  async dhcpv6Info(): Promise<Dhcpv6Repr> {
    const req: Dhcpv6Repr = {
      msgType: Dhcpv6MsgType.INFORMATION_REQUEST,
      transactionId: 0x123456,
      options: { clientId: dhcpv6DuidLl(this.mac), oro: [23, 24], elapsedTime: 0 },
    };
    const buf = new Uint8Array(dhcpv6Len(req));
    emitDhcpv6(req, buf, 0);
    this.sendUdp6(ALL_DHCP, 547, buf, 546, this.linkLocal, mcastMac(ALL_DHCP));
    const u = await this.recvUdp((x) => x.srcPort === 547 && x.dstPort === 546, 'DHCPv6 reply');
    const v = new Dhcpv6View();
    const r = v.reset(u.data, 0, u.data.length) ? parseDhcpv6(v) : null;
    if (!r) throw new Error('malformed DHCPv6 reply');
    return r;
  }

  ping(dst: number, id = 1, seq = 1, data = new Uint8Array(32)): void {
    const body = new Uint8Array(8 + data.length);
    body[0] = 8;
    body[4] = id >>> 8;
    body[5] = id & 0xff;
    body[6] = seq >>> 8;
    body[7] = seq & 0xff;
    body.set(data, 8);
    this.out.sendIcmp4(this.ip, dst, body);
  }

  connect(dst: number | Uint8Array, port: number): GuestTcpSocket {
    const localPort = this.nextPort++;
    const now = performance.now();
    const v6 = typeof dst !== 'number';
    const key = v6 ? `${Buffer.from(dst).toString('hex')}:${port}:${localPort}` : `${dst}:${port}:${localPort}`;
    const s = this.makeSocket(key, v6 ? 0 : dst, v6 ? dst : null, port, localPort, (out) =>
      TcpConnection.connect(now, 777, v6 ? this.tcpCfg6 : this.tcpCfg, out),
    );
    return s;
  }

  /** Accept connections (from hostfwd) on a guest port. */
  listen(port: number, onConnection: (s: GuestTcpSocket) => void): void {
    this.listeners.set(port, onConnection);
  }
}
