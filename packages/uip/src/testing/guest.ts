/**
 * A scripted test guest for uip's stack tier, built from the wire layer and core's frame
 * builder: ARP, DHCP, ICMP echo, UDP sockets and a deliberately simple TCP (in-order only, no
 * retransmission — uip's link is lossless, and a loss would show up as a stalled test). Every
 * frame received is parsed with the wire views and its checksums verified; the TCP side also
 * checks that uip never sends beyond the window this guest advertised (`windowViolations`).
 */
import { FrameOut, TcpFlag, clearSegmentOut, createSegmentOut, type NetBackend, type TcpPayloadSource } from '@guestnet/core';
import {
  ArpOp,
  ArpView,
  Dhcpv4MessageType,
  Dhcpv4View,
  EtherType,
  EthernetView,
  Icmpv4View,
  IpProto,
  Ipv4View,
  MAC_BROADCAST,
  TcpOptions,
  TcpView,
  UdpView,
  emitArp,
  emitDhcpv4,
  dhcpv4Len,
  ipv4PseudoSum,
  parseDhcpv4,
  scanTcpOptions,
  type Dhcpv4Repr,
} from '@guestnet/wire';

export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);

export interface RecvDatagram {
  data: Uint8Array;
  src: number;
  sport: number;
}

export class GuestUdp {
  readonly port: number;
  readonly queue: RecvDatagram[] = [];
  private readonly guest: UipTestGuest;
  constructor(guest: UipTestGuest, port: number) {
    this.guest = guest;
    this.port = port;
  }
  send(dst: number, dport: number, data: Uint8Array): void {
    this.guest.out.sendUdp4(this.guest.ip, this.port, dst, dport, data, this.guest.gatewayMac);
  }
  async recv(ms = 5000): Promise<RecvDatagram> {
    await this.guest.until(() => this.queue.length > 0, `a datagram on port ${this.port}`, ms);
    return this.queue.shift()!;
  }
}

export class GuestTcp implements TcpPayloadSource {
  readonly guest: UipTestGuest;
  readonly lport: number;
  readonly peer: number;
  readonly pport: number;
  state: 'syn-sent' | 'syn-rcvd' | 'open' | 'reset' | 'closed' = 'syn-sent';
  sndUna = 0;
  sndNxt = 0;
  rcvNxt = 0;
  peerWnd = 0;
  peerShift = 0;
  peerMss = 536;
  finRecv = false;
  finSent = false;
  /** Window this guest advertises (bytes, unscaled: no window scaling offered unless `wscale`). */
  rcvWindow: number;
  /** Highest sequence the window we advertised allows. */
  private rcvLimit = 0;
  windowViolations = 0;
  private readonly chunks: Uint8Array[] = [];
  received = 0;
  private out: Uint8Array = new Uint8Array(0);
  private outOff = 0;
  private finPending = false;

  constructor(guest: UipTestGuest, lport: number, peer: number, pport: number, rcvWindow: number) {
    this.guest = guest;
    this.lport = lport;
    this.peer = peer;
    this.pport = pport;
    this.rcvWindow = rcvWindow;
  }

  copySendData(seqOffset: number, dst: Uint8Array, dstOff: number, len: number): void {
    dst.set(this.out.subarray(seqOffset, seqOffset + len), dstOff);
  }

  segment(flags: number, seq: number, len: number, dataOff: number, syn = false): void {
    const h = this.guest.hdr;
    clearSegmentOut(h);
    h.seq = seq;
    h.flags = flags;
    if (flags & TcpFlag.ACK) h.ack = this.rcvNxt;
    h.window = Math.min(65535, this.rcvWindow);
    if (syn) h.mss = 1460;
    h.payloadSeqOffset = dataOff;
    this.rcvLimit = (this.rcvNxt + h.window) >>> 0;
    this.guest.out.sendTcp4(this.guest.ip, this.lport, this.peer, this.pport, h, len, this, Math.max(len, 1460));
  }

  write(data: Uint8Array): void {
    const rest = this.out.subarray(this.outOff);
    const n = new Uint8Array(rest.length + data.length);
    n.set(rest);
    n.set(data, rest.length);
    this.out = n;
    this.outOff = 0;
    this.pump();
  }

  end(): void {
    this.finPending = true;
    this.pump();
  }

  /** Open the receive window further (an application that reads). */
  setWindow(w: number): void {
    this.rcvWindow = w;
    if (this.state === 'open') this.segment(TcpFlag.ACK, this.sndNxt, 0, 0);
  }

  private pump(): void {
    if (this.state !== 'open') return;
    for (;;) {
      const inflight = (this.sndNxt - this.sndUna) | 0;
      const unsent = this.out.length - this.outOff - inflight;
      const n = Math.min(unsent, this.peerWnd - inflight, this.peerMss);
      if (n <= 0) break;
      this.segment(TcpFlag.ACK | TcpFlag.PSH, this.sndNxt, n, this.outOff + inflight);
      this.sndNxt = (this.sndNxt + n) >>> 0;
    }
    if (this.finPending && !this.finSent && this.sndNxt === ((this.sndUna + this.out.length - this.outOff) >>> 0)) {
      this.segment(TcpFlag.FIN | TcpFlag.ACK, this.sndNxt, 0, 0);
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      this.finSent = true;
    }
  }

  input(v: TcpView, opts: TcpOptions): void {
    const f = v.flags;
    if (f & TcpFlag.RST) {
      this.state = 'reset';
      return;
    }
    if (f & TcpFlag.SYN) {
      if (this.state === 'syn-sent' && f & TcpFlag.ACK && v.ackNum === this.sndNxt) {
        this.rcvNxt = (v.seqNum + 1) >>> 0;
        this.peerMss = opts.mss > 0 ? opts.mss : 536;
        this.peerWnd = v.window;
        this.sndUna = this.sndNxt;
        this.state = 'open';
        this.segment(TcpFlag.ACK, this.sndNxt, 0, 0);
        this.pump();
      } else if (this.state === 'syn-rcvd' || this.state === 'open') {
        this.segment(TcpFlag.ACK, this.sndNxt, 0, 0);
      }
      return;
    }
    if (f & TcpFlag.ACK) {
      const a = (v.ackNum - this.sndUna) | 0;
      if (a > 0 && a <= ((this.sndNxt - this.sndUna) | 0)) {
        // Our SYN occupies one sequence number but no data byte.
        const dataAcked = Math.min(this.state === 'syn-rcvd' ? a - 1 : a, this.out.length - this.outOff);
        this.outOff += dataAcked;
        this.sndUna = v.ackNum;
        if (this.state === 'syn-rcvd') this.state = 'open';
      }
      this.peerWnd = v.window << this.peerShift;
    }
    const len = v.payloadLen;
    if (len > 0) {
      const end = (v.seqNum + len) >>> 0;
      if (((end - this.rcvLimit) | 0) > 0) this.windowViolations++;
      if (v.seqNum === this.rcvNxt) {
        this.chunks.push(v.bytes.slice(v.payloadOffset, v.payloadOffset + len));
        this.received += len;
        this.rcvNxt = end;
      }
    }
    if (f & TcpFlag.FIN && ((v.seqNum + len) >>> 0) === this.rcvNxt && !this.finRecv) {
      this.finRecv = true;
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    }
    if (len > 0 || f & TcpFlag.FIN) this.segment(TcpFlag.ACK, this.sndNxt, 0, 0);
    this.pump();
  }

  data(): Uint8Array {
    const n = new Uint8Array(this.received);
    let o = 0;
    for (const c of this.chunks) {
      n.set(c, o);
      o += c.length;
    }
    return n;
  }
}

export class UipTestGuest {
  readonly backend: NetBackend;
  readonly mac: Uint8Array;
  ip = 0;
  gatewayMac: Uint8Array = MAC_BROADCAST;
  readonly out: FrameOut;
  readonly hdr = createSegmentOut();
  readonly arpReplies: { ip: number; mac: Uint8Array }[] = [];
  readonly echoReplies: { src: number; seq: number }[] = [];
  readonly dhcpReplies: Dhcpv4Repr[] = [];
  readonly badChecksums: string[] = [];
  private readonly udps = new Map<number, GuestUdp>();
  private readonly tcps = new Map<string, GuestTcp>();
  private readonly listeners = new Map<number, (c: GuestTcp) => void>();
  private readonly waiters = new Set<() => void>();
  /** >0 while a frame is being handed to the backend: frames it answers with synchronously wait. */
  private sending = 0;
  private readonly deferred: Uint8Array[] = [];
  private nextPort = 40000;
  private readonly eth = new EthernetView();
  private readonly ip4 = new Ipv4View();
  private readonly udpv = new UdpView();
  private readonly tcpv = new TcpView();
  private readonly opts = new TcpOptions();
  private readonly icmpv = new Icmpv4View();
  private readonly arpv = new ArpView();
  private readonly dhcpv = new Dhcpv4View();

  constructor(backend: NetBackend, mac: Uint8Array = GUEST_MAC) {
    this.backend = backend;
    this.mac = mac;
    this.out = new FrameOut({
      deliver: (f) => {
        this.sending++;
        try {
          backend.send(f);
        } finally {
          this.sending--;
        }
      },
      drop: (r) => {
        throw new Error(`guest could not send: ${r}`);
      },
      gatewayMac: mac,
      macFor4: () => this.gatewayMac,
      macFor6: () => null,
    });
  }

  async start(): Promise<void> {
    await this.backend.init((f) => this.receive(f));
  }

  /** Resolve once `cond()` holds, re-checked after every received frame; reject after `ms`. */
  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    if (cond()) return;
    await new Promise<void>((resolve, reject) => {
      const w = (): void => {
        if (!cond()) return;
        clearTimeout(t);
        this.waiters.delete(w);
        resolve();
      };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`test guest: timed out waiting for ${what}`));
      }, ms);
      this.waiters.add(w);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  // ---- protocols -----------------------------------------------------------------------------

  arp(target: number): void {
    const p = new Uint8Array(28);
    emitArp({ op: ArpOp.REQUEST, senderMac: this.mac, senderIp: this.ip, targetMac: new Uint8Array(6), targetIp: target }, p, 0);
    this.out.sendL2(MAC_BROADCAST, EtherType.ARP, p);
  }

  ping(dst: number, seq: number, size = 56): void {
    const body = new Uint8Array(8 + size);
    body[0] = 8;
    body[4] = 0x12;
    body[5] = 0x34;
    body[6] = seq >>> 8;
    body[7] = seq & 0xff;
    for (let i = 8; i < body.length; i++) body[i] = i & 0xff;
    this.out.sendIcmp4(this.ip, dst, body);
  }

  private dhcpSend(type: number, xid: number, extra: Partial<Dhcpv4Repr['options']> = {}): void {
    const r: Dhcpv4Repr = {
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
      chaddr: this.mac,
      sname: '',
      file: '',
      options: { messageType: type, ...extra },
    };
    const b = new Uint8Array(dhcpv4Len(r));
    const n = emitDhcpv4(r, b, 0);
    this.out.sendUdp4(0, 68, 0xffffffff, 67, b.subarray(0, n), MAC_BROADCAST);
  }

  /** DISCOVER → OFFER → REQUEST → ACK; configures `ip` and returns the ACK. */
  async dhcp(): Promise<Dhcpv4Repr> {
    const xid = 0x1234abcd;
    this.dhcpSend(Dhcpv4MessageType.DISCOVER, xid);
    await this.until(() => this.dhcpReplies.some((r) => r.options.messageType === Dhcpv4MessageType.OFFER), 'DHCPOFFER');
    const offer = this.dhcpReplies.find((r) => r.options.messageType === Dhcpv4MessageType.OFFER)!;
    this.dhcpSend(Dhcpv4MessageType.REQUEST, xid, { requestedIp: offer.yiaddr, serverId: offer.options.serverId! });
    await this.until(() => this.dhcpReplies.some((r) => r.options.messageType === Dhcpv4MessageType.ACK), 'DHCPACK');
    const ack = this.dhcpReplies.find((r) => r.options.messageType === Dhcpv4MessageType.ACK)!;
    this.ip = ack.yiaddr;
    return ack;
  }

  udp(port = this.nextPort++): GuestUdp {
    const u = new GuestUdp(this, port);
    this.udps.set(port, u);
    return u;
  }

  /** Open a TCP connection; resolves when established, rejects on RST. */
  async connect(dst: number, dport: number, rcvWindow = 65535): Promise<GuestTcp> {
    const c = new GuestTcp(this, this.nextPort++, dst, dport, rcvWindow);
    this.tcps.set(`${c.lport}|${dst}|${dport}`, c);
    c.sndUna = c.sndNxt = 1000;
    c.segment(TcpFlag.SYN, c.sndNxt, 0, 0, true);
    c.sndNxt = 1001;
    await this.until(() => c.state !== 'syn-sent', `SYN-ACK from port ${dport}`);
    if (c.state === 'reset') throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    return c;
  }

  /** Accept connections to `port` (hostfwd). */
  listen(port: number, onConn: (c: GuestTcp) => void): void {
    this.listeners.set(port, onConn);
  }

  // ---- receive -------------------------------------------------------------------------------

  private receive(f: Uint8Array): void {
    // A kernel never processes a received frame in the middle of transmitting one; neither do we.
    if (this.sending > 0 || this.deferred.length > 0) {
      this.deferred.push(f.slice());
      if (this.deferred.length === 1) queueMicrotask(() => this.drainDeferred());
      return;
    }
    this.process(f);
  }

  private drainDeferred(): void {
    for (let i = 0; i < this.deferred.length; i++) this.process(this.deferred[i]!);
    this.deferred.length = 0;
  }

  private process(f: Uint8Array): void {
    const e = this.eth;
    if (!e.reset(f, 0, f.length)) throw new Error('guest got a malformed frame');
    if (e.ethertype === EtherType.ARP) {
      const a = this.arpv;
      if (a.reset(f, e.payloadOffset, e.payloadLen) && a.op === ArpOp.REPLY) {
        const mac = f.slice(a.senderMacOffset, a.senderMacOffset + 6);
        this.arpReplies.push({ ip: a.senderIp, mac });
        this.gatewayMac = mac;
      }
    } else if (e.ethertype === EtherType.IPv4) this.ipv4(f, e.payloadOffset, e.payloadLen);
    this.wake();
  }

  private ipv4(f: Uint8Array, off: number, len: number): void {
    const ip = this.ip4;
    if (!ip.reset(f, off, len) || !ip.verifyChecksum()) {
      this.badChecksums.push('ipv4');
      return;
    }
    if (this.gatewayMac === MAC_BROADCAST) this.gatewayMac = f.slice(6, 12);
    const l4 = ip.payloadOffset;
    const l4len = ip.payloadLen;
    const ps = ipv4PseudoSum(ip.src, ip.dst, ip.protocol, l4len);
    if (ip.protocol === IpProto.UDP) {
      const u = this.udpv;
      if (!u.reset(f, l4, l4len) || !u.verifyChecksumPseudo(ps, true)) {
        this.badChecksums.push('udp');
        return;
      }
      const data = f.slice(u.payloadOffset, u.payloadOffset + u.payloadLen);
      if (u.dstPort === 68 && u.srcPort === 67) {
        const d = this.dhcpv;
        if (d.reset(data, 0, data.length)) {
          const r = parseDhcpv4(d);
          if (r) this.dhcpReplies.push(r);
        }
        return;
      }
      this.udps.get(u.dstPort)?.queue.push({ data, src: ip.src, sport: u.srcPort });
    } else if (ip.protocol === IpProto.ICMP) {
      const v = this.icmpv;
      if (!v.reset(f, l4, l4len) || !v.verifyChecksum()) {
        this.badChecksums.push('icmp');
        return;
      }
      if (v.type === 0) this.echoReplies.push({ src: ip.src, seq: (f[l4 + 6]! << 8) | f[l4 + 7]! });
    } else if (ip.protocol === IpProto.TCP) {
      const t = this.tcpv;
      if (!t.reset(f, l4, l4len) || !t.verifyChecksumPseudo(ps)) {
        this.badChecksums.push('tcp');
        return;
      }
      this.opts.clear();
      scanTcpOptions(t, this.opts);
      const key = `${t.dstPort}|${ip.src}|${t.srcPort}`;
      let c = this.tcps.get(key);
      if (!c && t.flags === TcpFlag.SYN) {
        const l = this.listeners.get(t.dstPort);
        if (!l) return;
        c = new GuestTcp(this, t.dstPort, ip.src, t.srcPort, 65535);
        this.tcps.set(key, c);
        c.state = 'syn-rcvd';
        c.rcvNxt = (t.seqNum + 1) >>> 0;
        c.peerMss = this.opts.mss > 0 ? this.opts.mss : 536;
        c.peerWnd = t.window;
        c.sndUna = 5000;
        c.segment(TcpFlag.SYN | TcpFlag.ACK, 5000, 0, 0, true);
        c.sndNxt = 5001;
        l(c);
        return;
      }
      c?.input(t, this.opts);
    }
  }
}
