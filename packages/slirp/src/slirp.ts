/**
 * SlirpBackend: the user-mode NAT as a NetBackend — what QEMU's `-netdev user` (libslirp) gives a
 * guest, in TypeScript, without root or native code.
 *
 * Theory of operation
 * - The guest sees a small virtual network (10.0.2.0/24 and fec0::/64 by default): a gateway
 *   (.2 / ::2) that is the host's loopback, a DNS server (.3 / ::3) that relays to the host's
 *   resolvers, DHCP, router advertisements, stateless DHCPv6 and TFTP. Everything else the guest
 *   sends to outside addresses leaves through ordinary host sockets (TCP and UDP NAT).
 * - Data path (`onSend`): vnet header → Ethernet → ARP / IPv4 / IPv6 → fragments reassembled →
 *   ICMP, UDP (services or NAT) or TCP (our TCP, proxied). One set of views is reused for every
 *   frame; nothing on it throws; every discarded frame is counted by reason.
 * - Batching: TCP work caused by a frame (ACKs, host writes) is flushed once per `send`, or once
 *   per `sendBatch`, so a burst of segments yields one ACK and one coalesced host write.
 * - Backpressure: `pauseRecv` stops reading host sockets; the guest-facing TCP windows shrink as
 *   host peers slow down; every queue is bounded by the configured limits.
 * - One instance is one stack: several instances in a process share nothing but the event loop.
 *
 * Not supported: ICMP echo to outside hosts (Node cannot open ICMP sockets without native code:
 * such pings are dropped and counted `icmp-unsupported`, never answered falsely), SMB (`smb=`),
 * IPv4 options beyond passing over them, 802.1Q tagged frames (dropped `vlan`).
 */
import {
  ArpOp,
  ArpView,
  EtherType,
  EthernetView,
  Icmpv4Type,
  Icmpv4View,
  IpProto,
  Ipv4View,
  Ipv6ExtInfo,
  Ipv6View,
  UdpView,
  VirtioNetFlags,
  emitArp,
  ipv4PseudoSum,
  ipv6Equal,
  isIpv6Multicast,
  pseudoSumV6,
  walkIpv6Headers,

} from '@guestnet/wire';
import { BaseBackend, Verdict, type Capabilities, type HostFwdRule } from '@guestnet/core';
import { resolveSlirpConfig, type SlirpConfig } from './config.ts';
import type { StackContext } from './context.ts';
import type { HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { FrameOut } from '@guestnet/core';
import { realClock, TimerEntry, TimerQueue, type Clock } from '@guestnet/core';
import { NeighborTable } from './neighbors.ts';
import { Policy } from './policy.ts';
import { TcpNat } from './tcp-nat.ts';
import { UdpNat } from './udp-nat.ts';
import { HostForwards } from '@guestnet/core';
import { DhcpServer } from '@guestnet/core';
import { DnsRelay } from './dns-relay.ts';
import { TftpServer } from './tftp-server.ts';
import { Icmpv6Handler } from './icmpv6-input.ts';
import { Dhcpv6Server } from './dhcpv6-server.ts';
import { Reassembler } from './reassembly.ts';

export interface SlirpRuntime {
  /** Host side; default: Node sockets. */
  io?: HostIo;
  /** Time source; default: performance.now() with real timers. Tests pass a ManualClock. */
  clock?: Clock;
  /** Control-path log lines; default: none. */
  log?: (level: 'debug' | 'info' | 'warn', msg: string) => void;
}

const EMPTY_FRAME = new Uint8Array(0);

export class SlirpBackend extends BaseBackend {
  readonly type = 'slirp';
  readonly cfg: SlirpConfig;
  private readonly io: HostIo;
  private readonly timers: TimerQueue;
  private readonly out: FrameOut;
  private readonly ctx: StackContext;
  private readonly neighbors: NeighborTable;
  private readonly policy: Policy;
  private readonly tcp: TcpNat;
  private readonly udp: UdpNat;
  private readonly fwd: HostForwards;
  private readonly dhcp: DhcpServer;
  private readonly dns: DnsRelay;
  private readonly tftp: TftpServer;
  private readonly icmp6: Icmpv6Handler;
  private readonly dhcp6: Dhcpv6Server;
  private readonly frags: Reassembler;
  private readonly fragTimer: TimerEntry;
  private readonly extra: Record<string, number> = Object.create(null);
  private lastGuestIp = 0;
  private inBatch = false;
  /** >0 while a frame is being handed to the guest: a `send` from inside `rx` is re-entrant. */
  private delivering = 0;
  /** Frames sent re-entrantly, processed once the current work has unwound (see onSend). */
  private readonly reentrant: Uint8Array[] = [];
  private reentrantScheduled = false;
  // Reused views: one per layer, reset per frame.
  private readonly eth = new EthernetView();
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  private readonly ext6 = new Ipv6ExtInfo();
  private readonly udpv = new UdpView();
  private readonly arpv = new ArpView();
  private readonly icmpv = new Icmpv4View();
  private readonly srcMac = new Uint8Array(6);
  private readonly udpSrc6 = new Uint8Array(16);
  private readonly udpDst6 = new Uint8Array(16);

  constructor(options: Record<string, unknown>, rt: SlirpRuntime = {}) {
    const cfg = resolveSlirpConfig(options);
    super({ mtu: cfg.mtu, supportedVnetHdrLens: [10, 12], supportedOffloads: { csum: true, tso4: true, tso6: true } });
    this.caps.hostfwd = true;
    this.cfg = cfg;
    this.io = rt.io ?? createNodeHostIo();
    this.timers = new TimerQueue(rt.clock ?? realClock);
    this.neighbors = new NeighborTable();
    const log = rt.log ?? (() => {});
    this.out = new FrameOut({
      deliver: (f) => {
        this.delivering++;
        try {
          this.deliver(f);
        } finally {
          this.delivering--;
        }
      },
      drop: (r) => this.drop(r),
      gatewayMac: cfg.gatewayMac,
      macFor4: (ip) => this.neighbors.macFor4(ip),
      macFor6: (ip, off) => this.neighbors.macFor6(ip, off),
    });
    this.out.setCaps({ vnetHdrLen: 0, csum: false, tso4: false, tso6: false, mtu: cfg.mtu });
    const self = this;
    this.ctx = {
      cfg,
      io: this.io,
      timers: this.timers,
      out: this.out,
      drop: (reason, n = 1) => this.drop(reason, n),
      count: (name, n = 1) => {
        this.extra[name] = (this.extra[name] ?? 0) + n;
      },
      learn4: (ip, mac) => {
        this.neighbors.learn4(ip, mac);
      },
      learn6: (ip, mac) => {
        this.neighbors.learn6(ip, mac);
      },
      guestIp4: () => self.guestIp4(),
      log,
    };
    this.dns = new DnsRelay(this.ctx);
    this.policy = new Policy(cfg, {
      drop: (r) => this.drop(r),
      dnsUpstream: (family) => this.dns.pickUpstream(family),
    });
    this.tcp = new TcpNat(this.ctx, (f, d4, d6, port) => this.policy.tcp(f, d4, d6, port));
    this.udp = new UdpNat(
      this.ctx,
      (f, d4, d6) => this.policy.udp(f, d4, d6),
      (addr, f) => this.policy.reverse(addr, f),
    );
    this.fwd = new HostForwards(this.ctx, this.tcp, this.udp);
    this.dhcp = new DhcpServer(this.ctx);
    this.tftp = new TftpServer(this.ctx);
    this.icmp6 = new Icmpv6Handler(this.ctx);
    this.dhcp6 = new Dhcpv6Server(this.ctx);
    this.frags = new Reassembler({ maxBytes: cfg.maxReassembly, maxDatagrams: 64, drop: (r, n) => this.drop(r, n) });
    this.fragTimer = new TimerEntry((now) => this.expireFragments(now));
  }

  private guestIp4(): number {
    const mac = this.neighbors.lastMac;
    const leased = mac ? this.dhcp.guestAddress(mac) : 0;
    return leased || this.lastGuestIp;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  protected async onInit(): Promise<void> {
    // The upstream list must be known before the first guest SYN to the DNS address: the TCP
    // path picks an upstream synchronously and would refuse (RST) while it is still loading.
    await this.dns.start();
    for (const rule of this.cfg.hostfwd) await this.fwd.add(rule);
    if (this.cfg.ipv6) this.icmp6.start();
  }

  protected async onClose(): Promise<void> {
    this.fwd.close();
    this.tcp.close();
    this.udp.close();
    this.dns.close();
    this.tftp.close();
    this.dhcp.close();
    this.icmp6.close();
    this.dhcp6.close();
    this.timers.close();
  }

  protected override onPause(): void {
    this.tcp.setReadsPaused(true);
    this.udp.readsPaused = true;
  }

  protected override onResume(): void {
    this.tcp.setReadsPaused(false);
    this.udp.readsPaused = false;
  }

  protected override onCapabilities(c: Capabilities): void {
    this.out.setCaps({ vnetHdrLen: c.vnetHdrLen, csum: c.offloads.csum, tso4: c.offloads.tso4, tso6: c.offloads.tso6, mtu: this.cfg.mtu });
    this.tcp.setGso(c.vnetHdrLen > 0 && c.offloads.tso4, c.vnetHdrLen > 0 && c.offloads.tso6);
  }

  protected override hostfwdAdd(rule: HostFwdRule): Promise<HostFwdRule> {
    return this.fwd.add(rule);
  }
  protected override hostfwdRemove(rule: Pick<HostFwdRule, 'proto' | 'host'>): Promise<boolean> {
    return this.fwd.remove(rule);
  }
  protected override hostfwdList(): HostFwdRule[] {
    return this.fwd.list();
  }

  protected override flowCounts(): Record<string, number> {
    return { tcp: this.tcp.flowCount, udp: this.udp.flowCount };
  }

  protected override extraStats(): Record<string, number> {
    return {
      ...this.extra,
      'tcp-buffered-bytes': this.tcp.bufferedBytes(),
      'dhcp-leases': this.dhcp.leases().length,
      'neighbor-evicted': this.neighbors.evictions,
    };
  }

  /** DHCP leases handed out (for `guestnet stats` and tests). */
  leases(): { ip: number; mac: Uint8Array }[] {
    return this.dhcp.leases();
  }

  // ---- data path -------------------------------------------------------------------------------

  override sendBatch(frames: readonly Uint8Array[]): number {
    this.inBatch = true;
    try {
      return super.sendBatch(frames);
    } finally {
      this.inBatch = false;
      this.tcp.flush();
    }
  }

  protected onSend(frame: Uint8Array): Verdict {
    // A guest that answers from inside our `rx` call (an in-process emulator, pair()) would re-enter
    // the stack in the middle of emitting a segment. Such frames are copied and processed after
    // the current call stack unwinds, in order; the queue is bounded like any other.
    if (this.delivering > 0 || this.reentrant.length > 0) {
      if (this.reentrant.length >= 4096) {
        this.drop('reentrant-overflow');
        return Verdict.Dropped;
      }
      this.reentrant.push(frame.slice());
      if (!this.reentrantScheduled) {
        this.reentrantScheduled = true;
        queueMicrotask(() => this.drainReentrant());
      }
      return Verdict.Delivered;
    }
    this.input(frame);
    if (!this.inBatch) this.tcp.flush();
    return Verdict.Delivered;
  }

  private drainReentrant(): void {
    // Frames queued while draining are appended and drained by this same loop.
    for (let i = 0; i < this.reentrant.length && this.isRunning; i++) {
      const f = this.reentrant[i]!;
      this.reentrant[i] = EMPTY_FRAME;
      this.input(f);
      this.tcp.flush();
    }
    this.reentrant.length = 0;
    this.reentrantScheduled = false;
  }

  private input(frame: Uint8Array): void {
    const vlen = this.caps.vnetHdrLen;
    let csumDone = false;
    if (vlen > 0) {
      // NEEDS_CSUM: the guest left a partial checksum for us to finish; we are the final consumer,
      // so there is nothing to verify. DATA_VALID: already verified.
      const flags = frame[0]!;
      csumDone = (flags & (VirtioNetFlags.NEEDS_CSUM | VirtioNetFlags.DATA_VALID)) !== 0;
    }
    const eth = this.eth;
    if (!eth.reset(frame, vlen, frame.length - vlen)) {
      this.drop('eth-malformed');
      return;
    }
    if (eth.vlanId >= 0) {
      this.drop('vlan');
      return;
    }
    const srcMac = this.srcMac;
    for (let i = 0; i < 6; i++) srcMac[i] = frame[vlen + 6 + i]!; // no view allocated per frame
    if (srcMac[0]! & 1) {
      this.drop('eth-multicast-source');
      return;
    }
    this.neighbors.noteMac(srcMac);
    switch (eth.ethertype) {
      case EtherType.ARP:
        this.arp(frame, eth.payloadOffset, eth.payloadLen, srcMac);
        return;
      case EtherType.IPv4:
        if (this.cfg.ipv4) this.ipv4(frame, eth.payloadOffset, eth.payloadLen, srcMac, csumDone);
        else this.drop('ipv4-disabled');
        return;
      case EtherType.IPv6:
        if (this.cfg.ipv6) this.ipv6(frame, eth.payloadOffset, eth.payloadLen, srcMac, csumDone);
        else this.drop('ipv6-disabled');
        return;
      default:
        this.drop('ethertype');
    }
  }

  private arp(frame: Uint8Array, off: number, len: number, srcMac: Uint8Array): void {
    const a = this.arpv;
    if (!a.reset(frame, off, len)) {
      this.drop('arp-malformed');
      return;
    }
    const spa = a.senderIp;
    if (spa !== 0 && !this.policy.isOurs4(spa)) this.neighbors.learn4(spa, frame, a.senderMacOffset);
    if (a.op !== ArpOp.REQUEST) return;
    const tpa = a.targetIp;
    if (!this.policy.isOurs4(tpa)) return; // not for us: a real LAN would stay silent too
    const reply = new Uint8Array(28);
    emitArp({ op: ArpOp.REPLY, senderMac: this.cfg.gatewayMac, senderIp: tpa, targetMac: srcMac.slice(), targetIp: spa }, reply, 0);
    this.out.sendL2(srcMac, EtherType.ARP, reply);
  }

  private ipv4(frame: Uint8Array, off: number, len: number, srcMac: Uint8Array, csumDone: boolean): void {
    const ip = this.ip4;
    if (!ip.reset(frame, off, len)) {
      this.drop('ipv4-malformed');
      return;
    }
    if (!ip.verifyChecksum()) {
      this.drop('ipv4-bad-checksum');
      return;
    }
    const src = ip.src;
    const dst = ip.dst;
    if (src !== 0) {
      if (this.policy.isOurs4(src) || (src >>> 24) === 127 || src >>> 28 >= 14) {
        this.drop('ipv4-martian-source');
        return;
      }
      if (((src & this.cfg.mask) >>> 0) === this.cfg.net) {
        this.lastGuestIp = src;
        this.neighbors.learn4(src, srcMac);
      }
    }
    let proto = ip.protocol;
    let l4 = ip.payloadOffset;
    let l4len = ip.payloadLen;
    let buf = frame;
    if (ip.isFragment) {
      const whole = this.frags.add4(frame, off, this.timers.now());
      this.timers.schedule(this.fragTimer, this.frags.nextDeadline());
      if (!whole) return;
      buf = whole.payload;
      l4 = 0;
      l4len = whole.payload.length;
      proto = whole.protocol;
      csumDone = false;
    }
    switch (proto) {
      case IpProto.TCP:
        this.tcp.input4(buf, l4, l4len, src, dst, csumDone);
        return;
      case IpProto.UDP:
        this.udp4(buf, l4, l4len, src, dst, srcMac, csumDone);
        return;
      case IpProto.ICMP:
        this.icmp4(buf, l4, l4len, src, dst);
        return;
      default:
        this.drop('ipv4-protocol');
    }
  }

  private udp4(buf: Uint8Array, off: number, len: number, src: number, dst: number, srcMac: Uint8Array, csumDone: boolean): void {
    const u = this.udpv;
    if (!u.reset(buf, off, len)) {
      this.drop('udp-malformed');
      return;
    }
    if (!csumDone && !u.verifyChecksumPseudo(ipv4PseudoSum(src, dst, IpProto.UDP, u.length), true)) {
      this.drop('udp-bad-checksum');
      return;
    }
    const sport = u.srcPort;
    const dport = u.dstPort;
    const payload = buf.subarray(u.payloadOffset, u.payloadOffset + u.payloadLen);
    const c = this.cfg;
    if (dport === 67 && (dst === 0xffffffff || dst === c.broadcast || dst === c.host)) {
      this.dhcp.handle(src, sport, dst, dport, payload, srcMac);
      return;
    }
    if (dst === 0xffffffff || dst === c.broadcast || dst >>> 28 === 14) {
      this.drop('udp-broadcast');
      return;
    }
    if (dst === c.dns && dport === 53) {
      this.dns.handle(src, sport, dst, dport, payload, srcMac);
      return;
    }
    if (dst === c.host && dport === 69 && c.tftpRoot) {
      this.tftp.handle(src, sport, dst, dport, payload, srcMac);
      return;
    }
    this.udp.output(4, src, null, sport, dst, null, dport, payload);
  }

  private icmp4(buf: Uint8Array, off: number, len: number, src: number, dst: number): void {
    const v = this.icmpv;
    if (!v.reset(buf, off, len)) {
      this.drop('icmp-malformed');
      return;
    }
    if (!v.verifyChecksum()) {
      this.drop('icmp-bad-checksum');
      return;
    }
    if (v.type !== Icmpv4Type.EchoRequest) {
      this.drop('icmp-type');
      return;
    }
    if (!this.policy.isOurs4(dst)) {
      // Node has no ICMP sockets; never fake a reply for a host we cannot reach.
      this.drop('icmp-unsupported');
      return;
    }
    const body = buf.slice(off, off + len);
    body[0] = Icmpv4Type.EchoReply;
    this.out.sendIcmp4(dst, src, body);
  }

  private ipv6(frame: Uint8Array, off: number, len: number, srcMac: Uint8Array, csumDone: boolean): void {
    const ip = this.ip6;
    if (!ip.reset(frame, off, len)) {
      this.drop('ipv6-malformed');
      return;
    }
    const ext = this.ext6;
    if (!walkIpv6Headers(ip, ext)) {
      this.drop(ext.drop ?? 'ipv6-ext');
      return;
    }
    let buf = frame;
    let l4 = ext.offset;
    let l4len = ext.len;
    let proto = ext.proto;
    let ipOff = off;
    if (ext.isFragment) {
      const whole = this.frags.add6(frame, off, ext.fragHeaderOffset, this.timers.now());
      this.timers.schedule(this.fragTimer, this.frags.nextDeadline());
      if (!whole) return;
      // Walk the rebuilt packet again; a fragment inside a fragment is dropped.
      buf = whole.datagram;
      ipOff = 0;
      if (!ip.reset(buf, 0, buf.length) || !walkIpv6Headers(ip, ext) || ext.isFragment) {
        this.drop('ipv6-frag-nested');
        return;
      }
      l4 = ext.offset;
      l4len = ext.len;
      proto = ext.proto;
      csumDone = false;
    }
    switch (proto) {
      case IpProto.ICMPv6: {
        const dst = buf.subarray(ipOff + 24, ipOff + 40); // control path only
        if (this.policy.isOurs6(dst) || isIpv6Multicast(dst)) this.icmp6.handle(buf, ipOff, l4, l4len, srcMac);
        else this.drop('icmp6-unsupported');
        return;
      }
      case IpProto.TCP:
        this.tcp.input6(buf, ipOff, l4, l4len, csumDone);
        return;
      case IpProto.UDP:
        this.udp6(buf, ipOff, l4, l4len, srcMac, csumDone);
        return;
      default:
        this.drop('ipv6-protocol');
    }
  }

  private udp6(buf: Uint8Array, ipOff: number, off: number, len: number, srcMac: Uint8Array, csumDone: boolean): void {
    const u = this.udpv;
    if (!u.reset(buf, off, len)) {
      this.drop('udp-malformed');
      return;
    }
    if (!csumDone && !u.verifyChecksumPseudo(pseudoSumV6(buf, ipOff + 8, ipOff + 24, IpProto.UDP, u.length), false)) {
      this.drop('udp-bad-checksum');
      return;
    }
    // Addresses into reused scratch arrays (services copy what they keep).
    const src = this.udpSrc6;
    const dst = this.udpDst6;
    for (let i = 0; i < 16; i++) {
      src[i] = buf[ipOff + 8 + i]!;
      dst[i] = buf[ipOff + 24 + i]!;
    }
    const payload = buf.subarray(u.payloadOffset, u.payloadOffset + u.payloadLen);
    const sport = u.srcPort;
    const dport = u.dstPort;
    if (dport === 547) {
      this.dhcp6.handle(src, sport, dst, dport, payload, srcMac);
      return;
    }
    if (isIpv6Multicast(dst)) {
      this.drop('udp-multicast');
      return;
    }
    if (dport === 53 && ipv6Equal(dst, this.cfg.ipv6Dns)) {
      this.dns.handle6(src, sport, dst, dport, payload, srcMac);
      return;
    }
    if (dport === 69 && this.cfg.tftpRoot && ipv6Equal(dst, this.cfg.ipv6Host)) {
      this.tftp.handle6(src, sport, dst, dport, payload, srcMac);
      return;
    }
    this.udp.output(6, 0, src, sport, 0, dst, dport, payload);
  }

  private expireFragments(now: number): void {
    for (const x of this.frags.expire(now)) {
      // RFC 792 / RFC 4443: time exceeded, fragment reassembly (code 1), quoting the first fragment.
      if (x.family === 4) {
        const body = new Uint8Array(8 + x.quote.length);
        body[0] = Icmpv4Type.TimeExceeded;
        body[1] = 1;
        body.set(x.quote, 8);
        this.out.sendIcmp4(this.cfg.host, x.src, body);
      } else {
        const body = new Uint8Array(8 + x.quote.length);
        body[0] = 3; // Time Exceeded
        body[1] = 1;
        body.set(x.quote, 8);
        this.out.sendIcmp6(this.cfg.ipv6LinkLocal, x.src, body, 64);
      }
    }
    this.timers.schedule(this.fragTimer, this.frags.nextDeadline());
  }
}

