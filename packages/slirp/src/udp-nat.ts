/**
 * UDP NAT: guest datagrams to outside addresses leave through host UDP sockets, one per guest
 * source (address, port) as libslirp does, so a guest socket talking to several peers keeps one
 * host port; replies from any peer come back with that peer as the source (the gateway address
 * when the peer is host loopback). Host forwards for UDP (hostfwd=udp:…) are here too.
 *
 * Theory of operation
 * - A flow is created by the guest's first datagram; its host socket opens asynchronously, and up
 *   to 16 datagrams wait for it (more are dropped, counted `udp-opening-queue-full`).
 * - Idle flows expire after `udp-timeout` (libslirp: 240 s for most ports; we default to 60 s, the
 *   Linux conntrack UDP timeout), releasing the socket. `max-udp-flows` bounds the table: a
 *   datagram that would create flow N+1 is dropped and counted `udp-flow-limit`.
 * - While the backend's receive side is paused, datagrams from the host are dropped and counted
 *   (`udp-rx-paused`): UDP has no flow control, and queueing would only grow memory.
 * - hostfwd UDP: each host client (address, port) gets its own source port on the gateway side
 *   (49152+), so the guest's replies can be routed back; such mappings expire like flows.
 * Not done: ICMP port unreachable towards the guest (Node does not report ICMP errors for
 * unconnected UDP sockets), UDP-Lite, IP options.
 */
import { ipv6Equal, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import type { HostFwdRule } from '@guestnet/core';
import type { StackContext } from './context.ts';
import type { HostUdp, UdpListener } from '@guestnet/core';
import { TimerEntry } from '@guestnet/core';
import { Table6 } from './table6.ts';

/** Where a guest datagram goes on the host: an address, or 'drop' (already counted). */
export type UdpRouter = (family: 4 | 6, dst4: number, dst6: Uint8Array | null, dstPort: number) => { address: string; family: 4 | 6 } | 'drop';

/** Maps a host peer address back to the address the guest should see, or null to use as-is. */
export type UdpReverseMap = (address: string, family: 4 | 6) => { v4: number; v6: Uint8Array | null };

const OPENING_QUEUE = 16;

interface Flow {
  key: number;
  /** IPv6 table key: the guest's address and port (a6/aPort), no remote part. */
  a6: Uint8Array;
  aPort: number;
  b6: null;
  bPort: 0;
  family: 4 | 6;
  guest4: number;
  guest6: Uint8Array | null;
  guestPort: number;
  sock: HostUdp | null;
  queue: { data: Uint8Array; port: number; address: string }[] | null;
  lastUsed: number;
  timer: TimerEntry;
  closed: boolean;
}

interface FwdMap {
  key: string;
  listener: UdpListener;
  rule: HostFwdRule;
  clientAddr: string;
  clientPort: number;
  gwPort: number;
  lastUsed: number;
  timer: TimerEntry;
}

export class UdpNat {
  private readonly ctx: StackContext;
  private readonly flows4 = new Map<number, Flow>();
  private readonly flows6 = new Table6<Flow>();
  private readonly router: UdpRouter;
  private readonly reverse: UdpReverseMap;
  readsPaused = false;
  /** hostfwd mappings by gateway port (what the guest replies to) and by client. */
  private readonly fwdByGwPort = new Map<number, FwdMap>();
  private readonly fwdByClient = new Map<string, FwdMap>();
  private nextGwPort = 0;

  constructor(ctx: StackContext, router: UdpRouter, reverse: UdpReverseMap) {
    this.ctx = ctx;
    this.router = router;
    this.reverse = reverse;
  }

  get flowCount(): number {
    return this.flows4.size + this.flows6.size;
  }

  /** A guest datagram to a non-virtual destination (or a hostfwd reply). `payload` is borrowed. */
  output(family: 4 | 6, src4: number, src6: Uint8Array | null, srcPort: number, dst4: number, dst6: Uint8Array | null, dstPort: number, payload: Uint8Array): void {
    const ctx = this.ctx;
    // A reply to a hostfwd client: the guest answers the gateway-side port we gave that client.
    const isGw = family === 4 ? dst4 === ctx.cfg.host : dst6 !== null && ipv6Equal(dst6, ctx.cfg.ipv6Host);
    if (isGw) {
      const m = this.fwdByGwPort.get(dstPort);
      if (m && m.rule.guestPort === srcPort) {
        m.lastUsed = ctx.timers.now();
        m.listener.send(payload.slice(), m.clientPort, m.clientAddr);
        return;
      }
    }
    const target = this.router(family, dst4, dst6, dstPort);
    if (target === 'drop') return;
    const now = ctx.timers.now();
    const flow = (family === 4 ? this.flows4.get(src4 * 65536 + srcPort) : this.flows6.get(src6!, 0, srcPort, null, 0, 0)) ?? this.openChecked(family, src4, src6, srcPort);
    if (!flow) return;
    flow.lastUsed = now;
    const data = payload.slice();
    if (flow.sock) flow.sock.send(data, dstPort, target.address);
    else if (flow.queue && flow.queue.length < OPENING_QUEUE) flow.queue.push({ data, port: dstPort, address: target.address });
    else ctx.drop('udp-opening-queue-full');
  }

  /** A new flow, unless the table is full (counted). */
  private openChecked(family: 4 | 6, src4: number, src6: Uint8Array | null, srcPort: number): Flow | null {
    if (this.flowCount >= this.ctx.cfg.maxUdpFlows) {
      this.ctx.drop('udp-flow-limit');
      return null;
    }
    return this.open(family, src4, src6, srcPort);
  }

  private open(family: 4 | 6, src4: number, src6: Uint8Array | null, srcPort: number): Flow {
    const ctx = this.ctx;
    const guest6 = src6 ? src6.slice(0, 16) : null;
    const flow: Flow = {
      key: family === 4 ? src4 * 65536 + srcPort : 0,
      a6: guest6 ?? new Uint8Array(16),
      aPort: srcPort,
      b6: null,
      bPort: 0,
      family,
      guest4: src4,
      guest6,
      guestPort: srcPort,
      sock: null,
      queue: [],
      lastUsed: ctx.timers.now(),
      timer: new TimerEntry((now) => this.expire(flow, now)),
      closed: false,
    };
    if (family === 4) this.flows4.set(flow.key, flow);
    else this.flows6.add(flow);
    ctx.timers.schedule(flow.timer, flow.lastUsed + ctx.cfg.udpTimeoutMs);
    ctx.io
      .openUdp(family, {
        onMessage: (data, from) => this.fromHost(flow, data, from),
        onError: (err) => ctx.log('debug', `udp flow ${srcPort}: ${err.code}`),
      })
      .then(
        (sock) => {
          if (flow.closed) {
            sock.close();
            return;
          }
          flow.sock = sock;
          const q = flow.queue ?? [];
          flow.queue = null;
          for (const d of q) sock.send(d.data, d.port, d.address);
        },
        (err: Error) => {
          ctx.log('warn', `udp: cannot open a host socket: ${err.message}`);
          ctx.drop('udp-socket-failed', flow.queue?.length ?? 1);
          this.remove(flow);
        },
      );
    return flow;
  }

  private fromHost(flow: Flow, data: Uint8Array, from: { address: string; port: number }): void {
    if (flow.closed) return;
    if (this.readsPaused) {
      this.ctx.drop('udp-rx-paused');
      return;
    }
    flow.lastUsed = this.ctx.timers.now();
    const src = this.reverse(from.address, flow.family);
    if (flow.family === 4) this.ctx.out.sendUdp4(src.v4, from.port, flow.guest4, flow.guestPort, data);
    else this.ctx.out.sendUdp6(src.v6!, from.port, flow.guest6!, flow.guestPort, data);
  }

  private expire(flow: Flow, now: number): void {
    if (flow.closed) return;
    const deadline = flow.lastUsed + this.ctx.cfg.udpTimeoutMs;
    if (deadline > now) {
      this.ctx.timers.schedule(flow.timer, deadline);
      return;
    }
    this.ctx.count('udp-flow-expired');
    this.remove(flow);
  }

  private remove(flow: Flow): void {
    flow.closed = true;
    this.ctx.timers.cancel(flow.timer);
    flow.sock?.close();
    flow.sock = null;
    if (flow.family === 4) {
      if (this.flows4.get(flow.key) === flow) this.flows4.delete(flow.key);
    } else this.flows6.delete(flow);
  }

  // ---- hostfwd ---------------------------------------------------------------------------------

  /** A datagram from a host client of a UDP hostfwd listener. */
  fromHostfwd(listener: UdpListener, rule: HostFwdRule, data: Uint8Array, from: { address: string; port: number }): void {
    const ctx = this.ctx;
    if (this.readsPaused) {
      ctx.drop('udp-rx-paused');
      return;
    }
    const ckey = `${rule.host.kind === 'inet' ? rule.host.port : 0}|${from.address}|${from.port}`;
    let m = this.fwdByClient.get(ckey);
    const now = ctx.timers.now();
    if (!m) {
      if (this.fwdByGwPort.size >= ctx.cfg.maxUdpFlows) {
        ctx.drop('udp-flow-limit');
        return;
      }
      const gwPort = this.allocGwPort();
      const mm: FwdMap = {
        key: ckey,
        listener,
        rule,
        clientAddr: from.address,
        clientPort: from.port,
        gwPort,
        lastUsed: now,
        timer: new TimerEntry((t) => {
          if (mm.lastUsed + ctx.cfg.udpTimeoutMs > t) ctx.timers.schedule(mm.timer, mm.lastUsed + ctx.cfg.udpTimeoutMs);
          else this.removeFwd(mm);
        }),
      };
      m = mm;
      this.fwdByClient.set(ckey, m);
      this.fwdByGwPort.set(gwPort, m);
      ctx.timers.schedule(m.timer, now + ctx.cfg.udpTimeoutMs);
    }
    m.lastUsed = now;
    if (rule.guestAddr.includes(':')) {
      const g = parseIpv6Addr(rule.guestAddr);
      if (!g) return;
      ctx.out.sendUdp6(ctx.cfg.ipv6Host, m.gwPort, g, rule.guestPort, data);
    } else {
      const g = rule.guestAddr ? (parseIpv4Addr(rule.guestAddr) ?? 0) : ctx.guestIp4();
      if (!g) {
        ctx.drop('hostfwd-no-guest-address');
        return;
      }
      ctx.out.sendUdp4(ctx.cfg.host, m.gwPort, g, rule.guestPort, data);
    }
  }

  /** Forget the mappings of a removed hostfwd listener. */
  dropListener(listener: UdpListener): void {
    for (const m of [...this.fwdByClient.values()]) if (m.listener === listener) this.removeFwd(m);
  }

  private removeFwd(m: FwdMap): void {
    this.ctx.timers.cancel(m.timer);
    this.fwdByClient.delete(m.key);
    if (this.fwdByGwPort.get(m.gwPort) === m) this.fwdByGwPort.delete(m.gwPort);
  }

  private allocGwPort(): number {
    for (let i = 0; i < 16384; i++) {
      const p = 49152 + (this.nextGwPort++ & 0x3fff);
      if (!this.fwdByGwPort.has(p)) return p;
    }
    return 49152;
  }

  close(): void {
    for (const f of [...this.flows4.values(), ...this.flows6.toArray()]) this.remove(f);
    for (const m of [...this.fwdByClient.values()]) this.removeFwd(m);
  }
}
