/**
 * UDP proxy (kvmtool uip/udp.c semantics): every guest flow (guest port, destination address,
 * destination port) gets its own host UDP socket; datagrams are relayed both ways and the flow
 * expires after `udp-timeout` seconds without traffic. Replies reach the guest with the flow's
 * destination as their source; a datagram from any other sender is dropped
 * (`udp-foreign-source`), so an unconnected host socket cannot be used to inject traffic.
 *
 * hostfwd=udp: each host client (address, port) of a forward is given a port on host_ip
 * (49152 and up); the guest answers that port and the answer leaves through the forward's
 * listening socket. Such mappings expire like flows.
 *
 * Limits: `max-udp-flows` flows (forward mappings included); the first datagrams of a flow wait
 * (at most 16) while its socket opens. While the guest has paused receiving, datagrams from the
 * host are dropped (`udp-rx-paused`): UDP has no flow control. Not done: fragmentation (a
 * datagram that does not fit the MTU is dropped by the frame builder), ICMP errors, broadcast.
 */
import { TimerEntry, type HostFwdRule, type HostUdp, type UdpListener } from '@guestnet/core';
import { ipv4ToString, parseIpv4Addr } from '@guestnet/wire';
import type { UipContext } from './context.ts';

const OPEN_QUEUE = 16;
const FWD_PORT_FIRST = 49152;

interface Flow {
  readonly key: number;
  readonly guestPort: number;
  readonly dst: number;
  readonly dport: number;
  readonly peer: string;
  readonly peerPort: number;
  sock: HostUdp | null;
  /** Datagrams waiting for the socket to open; null once open. */
  queue: Uint8Array[] | null;
  lastUsed: number;
  readonly timer: TimerEntry;
  closed: boolean;
}

interface FwdMap {
  readonly port: number;
  readonly listener: UdpListener;
  readonly rule: HostFwdRule;
  readonly client: string;
  readonly clientPort: number;
  lastUsed: number;
  readonly timer: TimerEntry;
}

export class UdpProxy {
  private readonly ctx: UipContext;
  private readonly flows = new Map<number, Map<number, Flow>>();
  private readonly fwd = new Map<number, FwdMap>();
  private readonly fwdByClient = new Map<string, FwdMap>();
  private nextFwdPort = FWD_PORT_FIRST;
  private count = 0;
  private closed = false;

  constructor(ctx: UipContext) {
    this.ctx = ctx;
  }

  get flowCount(): number {
    return this.count;
  }

  /** A datagram from the guest; `data` is borrowed for the call. */
  output(guestPort: number, dst: number, dport: number, data: Uint8Array): void {
    if (this.closed) return;
    const ctx = this.ctx;
    if (dst === ctx.cfg.hostIp) {
      const m = this.fwd.get(dport);
      if (m) {
        m.lastUsed = ctx.timers.now();
        m.listener.send(data.slice(), m.clientPort, m.client);
        return;
      }
    }
    const outer = dst * 65536 + dport;
    let f = this.flows.get(outer)?.get(guestPort);
    if (!f) {
      const to = ctx.target(dst, dport);
      if (!to) return;
      if (this.count >= ctx.cfg.maxUdpFlows) {
        ctx.drop('udp-flow-limit');
        return;
      }
      f = this.open(outer, guestPort, dst, dport, to.address, to.port);
    }
    f.lastUsed = ctx.timers.now();
    if (f.sock) f.sock.send(data.slice(), f.peerPort, f.peer);
    else if (f.queue && f.queue.length < OPEN_QUEUE) f.queue.push(data.slice());
    else ctx.drop('udp-opening-queue-full');
  }

  private open(outer: number, guestPort: number, dst: number, dport: number, peer: string, peerPort: number): Flow {
    const ctx = this.ctx;
    const f: Flow = {
      key: outer,
      guestPort,
      dst,
      dport,
      peer,
      peerPort,
      sock: null,
      queue: [],
      lastUsed: ctx.timers.now(),
      timer: new TimerEntry((now) => this.expire(f, now)),
      closed: false,
    };
    let inner = this.flows.get(outer);
    if (!inner) this.flows.set(outer, (inner = new Map()));
    inner.set(guestPort, f);
    this.count++;
    ctx.timers.schedule(f.timer, f.lastUsed + ctx.cfg.udpTimeoutMs);
    ctx.io
      .openUdp(4, {
        onMessage: (msg, from) => this.fromHost(f, msg, from),
        onError: (e) => ctx.log('debug', `uip udp ${ipv4ToString(dst)}:${dport}: ${e.code}`),
      })
      .then(
        (sock) => {
          if (f.closed) {
            sock.close();
            return;
          }
          f.sock = sock;
          for (const d of f.queue ?? []) sock.send(d, f.peerPort, f.peer);
          f.queue = null;
        },
        (e: unknown) => {
          ctx.drop('udp-socket-failed');
          ctx.log('warn', `uip udp: cannot open a host socket: ${String(e)}`);
          this.remove(f);
        },
      );
    return f;
  }

  private fromHost(f: Flow, msg: Uint8Array, from: { address: string; port: number }): void {
    const ctx = this.ctx;
    if (f.closed) return;
    if (from.port !== f.peerPort || from.address !== f.peer) {
      ctx.drop('udp-foreign-source');
      return;
    }
    if (ctx.rxPaused) {
      ctx.drop('udp-rx-paused');
      return;
    }
    f.lastUsed = ctx.timers.now();
    ctx.out.sendUdp4(f.dst, f.dport, ctx.cfg.guestIp, f.guestPort, msg);
  }

  private expire(f: Flow, now: number): void {
    const due = f.lastUsed + this.ctx.cfg.udpTimeoutMs;
    if (due > now) {
      this.ctx.timers.schedule(f.timer, due);
      return;
    }
    this.ctx.count('udp-flow-expired');
    this.remove(f);
  }

  private remove(f: Flow): void {
    if (f.closed) return;
    f.closed = true;
    this.ctx.timers.cancel(f.timer);
    f.sock?.close();
    const inner = this.flows.get(f.key);
    inner?.delete(f.guestPort);
    if (inner && inner.size === 0) this.flows.delete(f.key);
    this.count--;
  }

  // ---- hostfwd=udp -------------------------------------------------------------------------

  /** A datagram arrived on a forward's listener from a host client. */
  fromHostfwd(listener: UdpListener, rule: HostFwdRule, data: Uint8Array, from: { address: string; port: number }): void {
    const ctx = this.ctx;
    if (this.closed) return;
    if (ctx.rxPaused) {
      ctx.drop('udp-rx-paused');
      return;
    }
    const ck = `${from.address}|${from.port}|${rule.host.kind === 'inet' ? rule.host.port : 0}`;
    let m = this.fwdByClient.get(ck);
    if (!m) {
      if (this.count >= ctx.cfg.maxUdpFlows) {
        ctx.drop('udp-flow-limit');
        return;
      }
      const port = this.freeFwdPort();
      if (port < 0) {
        ctx.drop('udp-flow-limit');
        return;
      }
      const mm: FwdMap = {
        port,
        listener,
        rule,
        client: from.address,
        clientPort: from.port,
        lastUsed: ctx.timers.now(),
        timer: new TimerEntry((now) => this.expireFwd(mm, ck, now)),
      };
      m = mm;
      this.fwd.set(port, m);
      this.fwdByClient.set(ck, m);
      this.count++;
      ctx.timers.schedule(m.timer, m.lastUsed + ctx.cfg.udpTimeoutMs);
    }
    m.lastUsed = ctx.timers.now();
    const guest = rule.guestAddr ? guestAddr(rule.guestAddr, ctx.cfg.guestIp) : ctx.cfg.guestIp;
    ctx.out.sendUdp4(ctx.cfg.hostIp, m.port, guest, rule.guestPort, data);
  }

  private freeFwdPort(): number {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextFwdPort;
      this.nextFwdPort = p >= 65535 ? FWD_PORT_FIRST : p + 1;
      if (!this.fwd.has(p)) return p;
    }
    return -1;
  }

  private expireFwd(m: FwdMap, ck: string, now: number): void {
    const due = m.lastUsed + this.ctx.cfg.udpTimeoutMs;
    if (due > now) {
      this.ctx.timers.schedule(m.timer, due);
      return;
    }
    this.removeFwd(m, ck);
  }

  private removeFwd(m: FwdMap, ck: string): void {
    this.ctx.timers.cancel(m.timer);
    this.fwd.delete(m.port);
    this.fwdByClient.delete(ck);
    this.count--;
  }

  /** A forward was removed: forget its client mappings. */
  dropListener(listener: UdpListener): void {
    for (const [ck, m] of this.fwdByClient) if (m.listener === listener) this.removeFwd(m, ck);
  }

  close(): void {
    this.closed = true;
    for (const inner of this.flows.values()) for (const f of inner.values()) this.remove(f);
    for (const [ck, m] of this.fwdByClient) this.removeFwd(m, ck);
  }
}

/** A rule's guest address (dotted quad), or `dflt` when empty or not an address. */
export function guestAddr(s: string, dflt: number): number {
  return parseIpv4Addr(s) ?? dflt;
}
