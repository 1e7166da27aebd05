/**
 * UipBackend: `backend=uip`, the kvmtool-style minimal user-mode network (kvmtool `net/uip`).
 *
 * Theory of operation
 * - One guest, one fixed address: the guest is `guest_ip` (handed out by DHCP, a pool of one),
 *   the gateway is `host_ip` on the /24 around it, with MAC `host_mac`. Frames to the guest go to
 *   the MAC the guest last used as a source, or `guest_mac` before it has sent anything.
 * - Frames in: ARP requests for host_ip are answered; ICMP echo to host_ip is answered here;
 *   echo to any other address is dropped and counted (`icmp-unsupported`) — Node has no ICMP
 *   sockets and uip never fakes a reply. UDP to port 67 goes to the DHCP server (core's, the one
 *   slirp uses), other UDP to the UDP proxy, TCP to the TCP proxy; each proxy opens host sockets.
 * - Addresses: host_ip means the host itself (127.0.0.1); every other destination is connected
 *   to as is, subject to the `allow` list. DNS: the guest gets the host's resolvers (kvmtool
 *   semantics); a resolver the guest cannot reach directly (loopback, or a port other than 53 —
 *   always the case with `dns-upstream=127.0.0.1#PORT` in tests) is offered as host_ip instead,
 *   and host_ip:53 is then relayed to it.
 * - Sources: only guest_ip (or 0.0.0.0 for DHCP) is accepted as a source address
 *   (`ipv4-foreign-source` otherwise), so a guest cannot make the proxy speak for other hosts.
 *
 * Limits and non-goals, compared with slirp: IPv4 only (IPv6 frames are dropped, `ipv6`), no
 * fragmentation or reassembly (fragments dropped, `ipv4-fragment`), no TFTP, no DNS relay of its
 * own, no guestfwd, no virtio-net header/offloads, no restrict mode, and a TCP proxy that relies
 * on a lossless guest link (tcp-proxy.ts says exactly what happens on loss).
 */
import {
  BaseBackend,
  DhcpServer,
  ErrorCode,
  FrameOut,
  GuestnetError,
  HostForwards,
  TimerQueue,
  Verdict,
  allowed4,
  realClock,
  type Clock,
  type HostAddr,
  type HostFwdRule,
  type HostIo,
} from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { ArpOp, ArpView, EtherType, EthernetView, Icmpv4Type, Icmpv4View, IpProto, Ipv4View, UdpView, emitArp, ipv4PseudoSum, ipv4ToString, parseIpv4Addr } from '@guestnet/wire';
import { resolveUipConfig, type UipConfig } from './config.ts';
import type { UipContext } from './context.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { UdpProxy } from './udp-proxy.ts';

export interface UipRuntime {
  /** Host side; default: Node sockets. */
  io?: HostIo;
  /** Time source; default: performance.now() with real timers. Tests pass a ManualClock. */
  clock?: Clock;
  /** Control-path log lines; default: none. */
  log?: (level: 'debug' | 'info' | 'warn', msg: string) => void;
}

const LOOPBACK = '127.0.0.1';
const EMPTY_FRAME = new Uint8Array(0);

export class UipBackend extends BaseBackend {
  readonly type = 'uip';
  readonly cfg: UipConfig;
  private readonly io: HostIo;
  private readonly timers: TimerQueue;
  private readonly out: FrameOut;
  private readonly ctx: UipContext;
  private readonly tcp: TcpProxy;
  private readonly udp: UdpProxy;
  private readonly dhcp: DhcpServer;
  private readonly fwd: HostForwards;
  private readonly extra: Record<string, number> = Object.create(null);
  /** The guest's MAC: its last unicast source address, else guest_mac. */
  private readonly guestMac: Uint8Array;
  /** Where host_ip:53 goes when the guest's resolver is reached through host_ip. */
  private dnsRedirect: HostAddr | null = null;
  private delivering = 0;
  private readonly reentrant: Uint8Array[] = [];
  private reentrantScheduled = false;
  private readonly eth = new EthernetView();
  private readonly ip4 = new Ipv4View();
  private readonly udpv = new UdpView();
  private readonly arpv = new ArpView();
  private readonly icmpv = new Icmpv4View();
  private readonly srcMac = new Uint8Array(6);

  constructor(options: Record<string, unknown>, rt: UipRuntime = {}) {
    const cfg = resolveUipConfig(options);
    super({ mtu: cfg.mtu });
    this.caps.hostfwd = true;
    this.cfg = cfg;
    this.guestMac = cfg.guestMac.slice();
    this.io = rt.io ?? createNodeHostIo();
    this.timers = new TimerQueue(rt.clock ?? realClock);
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
      gatewayMac: cfg.hostMac,
      macFor4: () => this.guestMac,
      macFor6: () => null,
    });
    this.out.setCaps({ vnetHdrLen: 0, csum: false, tso4: false, tso6: false, mtu: cfg.mtu });
    const self = this;
    const log = rt.log ?? (() => {});
    this.ctx = {
      cfg,
      io: this.io,
      timers: this.timers,
      out: this.out,
      drop: (reason, n = 1) => this.drop(reason, n),
      count: (name, n = 1) => {
        this.extra[name] = (this.extra[name] ?? 0) + n;
      },
      log,
      target: (dst, dport) => this.target(dst, dport),
      get rxPaused() {
        return self.paused;
      },
    };
    this.tcp = new TcpProxy(this.ctx);
    this.udp = new UdpProxy(this.ctx);
    this.fwd = new HostForwards(this.ctx, this.tcp, this.udp);
    this.dhcp = new DhcpServer({ ...this.ctx, learn4: (_ip, mac) => this.guestMac.set(mac) });
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  protected async onInit(): Promise<void> {
    const ups = this.cfg.dnsUpstream.length > 0 ? this.cfg.dnsUpstream : await this.io.systemResolvers();
    const servers: number[] = [];
    for (const u of ups) {
      const a = u.family === 4 ? parseIpv4Addr(u.address) : null;
      if (a === null) continue; // no IPv6 in uip
      if (a >>> 24 === 127 || u.port !== 53) {
        // The guest cannot reach the host's loopback or a non-standard port: offer host_ip.
        if (!this.dnsRedirect) this.dnsRedirect = { address: u.address, port: u.port, family: 4 };
        if (!servers.includes(this.cfg.hostIp)) servers.push(this.cfg.hostIp);
      } else if (!servers.includes(a)) servers.push(a);
    }
    this.cfg.dnsServers = servers.slice(0, 3);
    for (const rule of this.cfg.hostfwd) await this.hostfwdAdd(rule);
  }

  protected async onClose(): Promise<void> {
    this.fwd.close();
    this.tcp.close();
    this.udp.close();
    this.dhcp.close();
    this.timers.close();
  }

  protected override onPause(): void {
    this.tcp.setPaused(true);
  }

  protected override onResume(): void {
    this.tcp.setPaused(false);
  }

  protected override hostfwdAdd(rule: HostFwdRule): Promise<HostFwdRule> {
    if (rule.guestAddr !== '' && parseIpv4Addr(rule.guestAddr) !== this.cfg.guestIp) {
      return Promise.reject(
        new GuestnetError(ErrorCode.BadConfig, `hostfwd guest address ${rule.guestAddr} is not guest_ip ${ipv4ToString(this.cfg.guestIp)}`, {
          hint: 'uip serves one guest: leave the guest address empty',
        }),
      );
    }
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
    return { ...this.extra, 'tcp-buffered-bytes': this.tcp.bufferedBytes() };
  }

  /** The DNS servers DHCP hands out (after init). */
  dnsServers(): string[] {
    return this.cfg.dnsServers.map(ipv4ToString);
  }

  private target(dst: number, dport: number): HostAddr | null {
    const c = this.cfg;
    let to: HostAddr;
    if (dst === c.hostIp) {
      to = dport === 53 && this.dnsRedirect ? this.dnsRedirect : { address: LOOPBACK, port: dport, family: 4 };
    } else {
      if (dst === 0 || dst === c.broadcast || dst >>> 28 >= 14 || ((dst & c.mask) >>> 0) === c.net || dst >>> 24 === 127) {
        this.drop('bad-destination');
        return null;
      }
      to = { address: ipv4ToString(dst), port: dport, family: 4 };
    }
    if (dport === 0 || !allowed4(c.allow, parseIpv4Addr(to.address)!)) {
      this.drop('allow');
      return null;
    }
    return to;
  }

  // ---- data path -------------------------------------------------------------------------------

  protected onSend(frame: Uint8Array): Verdict {
    // A guest answering from inside our rx call would re-enter a proxy mid-segment: such frames
    // are copied and handled once the current call has unwound (bounded like any queue).
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
    return Verdict.Delivered;
  }

  private drainReentrant(): void {
    for (let i = 0; i < this.reentrant.length && this.isRunning; i++) {
      const f = this.reentrant[i]!;
      this.reentrant[i] = EMPTY_FRAME;
      this.input(f);
    }
    this.reentrant.length = 0;
    this.reentrantScheduled = false;
  }

  private input(frame: Uint8Array): void {
    const eth = this.eth;
    if (!eth.reset(frame, 0, frame.length)) {
      this.drop('eth-malformed');
      return;
    }
    if (eth.vlanId >= 0) {
      this.drop('vlan');
      return;
    }
    const srcMac = this.srcMac;
    for (let i = 0; i < 6; i++) srcMac[i] = frame[6 + i]!;
    if (srcMac[0]! & 1) {
      this.drop('eth-multicast-source');
      return;
    }
    switch (eth.ethertype) {
      case EtherType.ARP:
        this.arp(frame, eth.payloadOffset, eth.payloadLen, srcMac);
        return;
      case EtherType.IPv4:
        this.ipv4(frame, eth.payloadOffset, eth.payloadLen, srcMac);
        return;
      case EtherType.IPv6:
        this.drop('ipv6');
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
    if (a.senderIp === this.cfg.guestIp) this.guestMac.set(srcMac);
    if (a.op !== ArpOp.REQUEST || a.targetIp !== this.cfg.hostIp) return; // only the gateway answers
    const reply = new Uint8Array(28);
    emitArp({ op: ArpOp.REPLY, senderMac: this.cfg.hostMac, senderIp: this.cfg.hostIp, targetMac: srcMac.slice(), targetIp: a.senderIp }, reply, 0);
    this.out.sendL2(srcMac, EtherType.ARP, reply);
  }

  private ipv4(frame: Uint8Array, off: number, len: number, srcMac: Uint8Array): void {
    const ip = this.ip4;
    if (!ip.reset(frame, off, len)) {
      this.drop('ipv4-malformed');
      return;
    }
    if (!ip.verifyChecksum()) {
      this.drop('ipv4-bad-checksum');
      return;
    }
    if (ip.isFragment) {
      this.drop('ipv4-fragment');
      return;
    }
    const src = ip.src;
    const dst = ip.dst;
    const l4 = ip.payloadOffset;
    const l4len = ip.payloadLen;
    if (src === 0) {
      // Only a DHCP client without an address may send from 0.0.0.0.
      if (ip.protocol === IpProto.UDP) this.udp4(frame, l4, l4len, src, dst, srcMac);
      else this.drop('ipv4-foreign-source');
      return;
    }
    if (src !== this.cfg.guestIp) {
      this.drop('ipv4-foreign-source');
      return;
    }
    this.guestMac.set(srcMac);
    switch (ip.protocol) {
      case IpProto.TCP:
        this.tcp.input(frame, l4, l4len, src, dst, ipv4PseudoSum(src, dst, IpProto.TCP, l4len), false);
        return;
      case IpProto.UDP:
        this.udp4(frame, l4, l4len, src, dst, srcMac);
        return;
      case IpProto.ICMP:
        this.icmp4(frame, l4, l4len, src, dst);
        return;
      default:
        this.drop('ipv4-protocol');
    }
  }

  private udp4(buf: Uint8Array, off: number, len: number, src: number, dst: number, srcMac: Uint8Array): void {
    const u = this.udpv;
    if (!u.reset(buf, off, len)) {
      this.drop('udp-malformed');
      return;
    }
    if (!u.verifyChecksumPseudo(ipv4PseudoSum(src, dst, IpProto.UDP, u.length), true)) {
      this.drop('udp-bad-checksum');
      return;
    }
    const payload = buf.subarray(u.payloadOffset, u.payloadOffset + u.payloadLen);
    const c = this.cfg;
    if (u.dstPort === 67 && (dst === 0xffffffff || dst === c.broadcast || dst === c.hostIp)) {
      this.dhcp.handle(src, u.srcPort, dst, u.dstPort, payload, srcMac);
      return;
    }
    if (src === 0) {
      this.drop('ipv4-foreign-source');
      return;
    }
    this.udp.output(u.srcPort, dst, u.dstPort, payload);
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
    if (dst !== this.cfg.hostIp) {
      this.drop('icmp-unsupported'); // never fake a reply for a host we cannot ping
      return;
    }
    const body = buf.slice(off, off + len);
    body[0] = Icmpv4Type.EchoReply;
    this.out.sendIcmp4(dst, src, body);
  }
}
