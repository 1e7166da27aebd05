/**
 * TCP NAT: guest TCP connections terminated by our own TCP (tcp/connection.ts) and proxied to
 * host sockets; host forwards (hostfwd) opened towards the guest the same way.
 *
 * Theory of operation
 * - Flows are keyed by (guest addr, guest port, remote addr, remote port) as the guest sees them.
 *   IPv4 keys are two numbers in nested maps (no allocation per segment); IPv6 keys are strings.
 * - Passive open (guest SYN): the destination is mapped (gateway → host loopback, DNS address →
 *   an upstream resolver, guestfwd address → its target, else the real address), checked against
 *   restrict/allow-list and the flow limit, then the host socket connects; only when it connected
 *   does the guest get its SYN-ACK (RST if refused), as libslirp does.
 * - Active open (hostfwd): an accepted host socket stays paused until the guest completed the
 *   handshake; the guest sees the connection coming from the gateway address.
 * - Data guest → host: in-order bytes from the engine are copied once into a per-flow
 *   accumulation buffer and written to the host socket once per batch (coalesced writes). The
 *   host socket's unsent bytes are reported to the engine as backlog, which shrinks the window the
 *   guest sees: a slow host peer cannot make us buffer more than `max-flow-buffer`.
 * - Data host → guest: bytes go into the engine's bounded send ring (copied there straight from
 *   the HostIo's shared read buffer: `borrowsChunks`); when it is full the host
 *   socket is paused until the engine reports space (`onWritable`). While the backend's receive
 *   side is paused, or the total buffered across flows exceeds `max-total-buffer`, host sockets
 *   stop being read.
 * - Timers: one TimerEntry per flow in the stack's queue, armed at the engine's next deadline.
 * - Closing: FINs are relayed as half-closes both ways; resets both ways; a flow leaves the table
 *   when the engine reports it closed.
 * Limits: `max-tcp-flows` (further SYNs get RST, counted `tcp-flow-limit`), per-flow buffers,
 * total buffer. Not done: TCP urgent data, IP options, ICMP errors from the host side (Node does
 * not expose them), relaying RST precisely (Node reports a reset as an error; we RST the guest).
 */
import { TcpView, TcpOptions, scanTcpOptions, ipv4PseudoSum, pseudoSumV6, IpProto, parseIpv4Addr, parseIpv6Addr } from '@guestnet/wire';
import type { HostFwdRule } from '@guestnet/core';
import type { StackContext } from './context.ts';
import type { HostTcp, TcpHandlers } from '@guestnet/core';
import { TimerEntry } from '@guestnet/core';
import { Table6, type Keyed6 } from './table6.ts';
import { TcpConnection, resolveTcpConfig, type ResolvedTcpConfig } from './tcp/connection.ts';
import { createSegmentOut, resetFor, TcpFlag, type TcpOutput, type TcpPayloadSource, type TcpSegmentIn, type TcpSegmentOut } from '@guestnet/core';

/** Where a guest connection goes on the host. */
export type TcpTarget =
  | { kind: 'inet'; address: string; port: number; family: 4 | 6 }
  | { kind: 'unix'; path: string }
  | { kind: 'cmd'; command: string };

/** Decides where a new guest connection goes; null = refuse (the reason already counted). */
export type TcpRouter = (family: 4 | 6, dst4: number, dst6: Uint8Array | null, dstPort: number) => TcpTarget | null | 'drop';

const ACC_SIZE = 64 * 1024;
/** First allocation of a batch's guest→host buffer when the first chunk is small. */
const SMALL_ACC = 2048;

const NO_ADDR6 = new Uint8Array(16);

class Flow implements TcpOutput, Keyed6 {
  readonly nat: TcpNat;
  readonly family: 4 | 6;
  readonly guest4: number;
  readonly remote4: number;
  readonly guest6: Uint8Array | null;
  readonly remote6: Uint8Array | null;
  readonly guestPort: number;
  readonly remotePort: number;
  conn!: TcpConnection;
  host: HostTcp | null = null;
  hostConnected = false;
  /** Host→guest bytes the engine could not take yet. */
  pending: Uint8Array | null = null;
  hostPaused = false;
  /** Guest→host accumulation buffer (ownership passes to the socket when written). */
  acc: Uint8Array | null = null;
  accLen = 0;
  finToHost = false;
  hostEnded = false;
  closed = false;
  dirty = false;
  readonly timer: TimerEntry;

  // Keyed6 (the IPv6 flow table's key).
  get a6(): Uint8Array {
    return this.guest6 ?? NO_ADDR6;
  }
  get aPort(): number {
    return this.guestPort;
  }
  get b6(): Uint8Array | null {
    return this.remote6 ?? NO_ADDR6;
  }
  get bPort(): number {
    return this.remotePort;
  }

  constructor(nat: TcpNat, family: 4 | 6, guest4: number, guestPort: number, remote4: number, remotePort: number, guest6: Uint8Array | null, remote6: Uint8Array | null) {
    this.nat = nat;
    this.family = family;
    this.guest4 = guest4;
    this.guestPort = guestPort;
    this.remote4 = remote4;
    this.remotePort = remotePort;
    this.guest6 = guest6;
    this.remote6 = remote6;
    this.timer = new TimerEntry((now) => {
      if (this.closed) return;
      this.conn.poll(now);
      // The entry just left the heap (timer.at is Infinity): arm it for whatever is next.
      this.afterEngine();
    });
  }

  emit(hdr: TcpSegmentOut, payloadLen: number, conn: TcpPayloadSource): void {
    const out = this.nat.ctx.out;
    if (this.family === 4) out.sendTcp4(this.remote4, this.remotePort, this.guest4, this.guestPort, hdr, payloadLen, conn, this.conn ? this.conn.sendMss : 1460);
    else out.sendTcp6(this.remote6!, this.remotePort, this.guest6!, this.guestPort, hdr, payloadLen, conn, this.conn ? this.conn.sendMss : 1220);
  }

  /**
   * Re-arm the flow timer after the engine ran. Only an earlier deadline moves it: a later one (or
   * none) leaves it to fire early, poll finds nothing due, and it re-arms then. A request/response
   * flow moves its deadline on every segment (retransmission timer armed, then cleared by the
   * ACK); moving the heap entry — and the one host timer behind it — each time cost more than
   * the occasional early wake-up.
   */
  afterEngine(): void {
    if (this.closed) return;
    const at = this.conn.nextDeadline();
    if (at < this.timer.at) this.nat.ctx.timers.schedule(this.timer, at);
  }

  /** Guest → host bytes (borrowed): accumulate for one write per batch. */
  takeFromGuest(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const rem = chunk.length - off;
      if (!this.acc) {
        // Sized for what arrived: a request/response flow writes a few bytes per batch, and a
        // 64 KiB buffer handed to the socket for each of them is pure allocation and GC churn.
        this.acc = new Uint8Array(rem <= SMALL_ACC ? SMALL_ACC : Math.max(ACC_SIZE, rem));
        this.accLen = 0;
      } else if (this.acc.length < ACC_SIZE && this.acc.length - this.accLen < rem) {
        // A second segment in the same batch: this is bulk data, grow to the coalescing size.
        const big = new Uint8Array(ACC_SIZE);
        big.set(this.acc.subarray(0, this.accLen));
        this.acc = big;
      }
      const n = Math.min(chunk.length - off, this.acc.length - this.accLen);
      this.acc.set(chunk.subarray(off, off + n), this.accLen);
      this.accLen += n;
      off += n;
      // A full small buffer grows on the next chunk instead (keeps coalescing for bulk data).
      if (this.accLen === this.acc.length && this.accLen >= ACC_SIZE) this.writeToHost();
    }
    this.markDirty();
  }

  writeToHost(): void {
    if (!this.acc || this.accLen === 0 || !this.host) return;
    const data = this.accLen === this.acc.length ? this.acc : this.acc.subarray(0, this.accLen);
    this.acc = null;
    this.accLen = 0;
    this.host.write(data);
    this.conn.setHostBacklog(this.host.pendingBytes);
  }

  markDirty(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.nat.dirty.push(this);
  }

  /** Host → guest bytes, borrowed for the call (the HostIo may reuse the buffer: see borrowsChunks). */
  takeFromHost(data: Uint8Array): void {
    if (this.closed) return;
    const n = this.conn.write(data);
    if (n < data.length) {
      // Backpressure (rare): keep a copy of what the send ring could not take.
      this.pending = data.slice(n);
      this.pauseHost();
    }
    this.conn.flush(this.nat.ctx.timers.now());
    this.afterEngine();
    this.nat.checkTotal();
  }

  pauseHost(): void {
    if (!this.hostPaused && this.host) {
      this.hostPaused = true;
      this.host.pause();
    }
  }

  resumeHost(): void {
    if (this.hostPaused && this.host && !this.pending && !this.nat.readsPaused) {
      this.hostPaused = false;
      this.host.resume();
    }
  }

  onWritable(): void {
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      const n = this.conn.write(p);
      if (n < p.length) this.pending = p.subarray(n);
      else if (this.hostEnded) this.conn.shutdownWrite();
    }
    if (!this.pending) this.resumeHost();
  }

  hostHandlers(): TcpHandlers {
    return {
      borrowsChunks: true,
      onConnect: () => {
        if (this.closed) return;
        this.hostConnected = true;
        const now = this.nat.ctx.timers.now();
        if (this.conn.awaitingHost) this.conn.hostConnected(now);
        this.afterEngine();
      },
      onData: (chunk) => this.takeFromHost(chunk),
      onEnd: () => {
        this.hostEnded = true;
        if (this.closed) return;
        if (!this.pending) this.conn.shutdownWrite();
        this.conn.flush(this.nat.ctx.timers.now());
        this.afterEngine();
      },
      onDrain: () => {
        if (this.closed || !this.host) return;
        this.conn.setHostBacklog(this.host.pendingBytes);
        this.conn.flush(this.nat.ctx.timers.now());
        this.afterEngine();
      },
      onClose: (err) => {
        this.host = null;
        if (this.closed) return;
        if (!this.hostConnected) {
          this.nat.ctx.count(err?.code === 'ECONNREFUSED' ? 'tcp-host-refused' : 'tcp-host-connect-failed');
          this.conn.hostRefused(true);
          return;
        }
        if (err) {
          // Reset or failure on the host side: reset the guest side too.
          this.nat.ctx.count('tcp-host-reset');
          this.conn.abort();
        } else if (!this.hostEnded) {
          this.hostEnded = true;
          this.conn.shutdownWrite();
          this.conn.flush(this.nat.ctx.timers.now());
          this.afterEngine();
        }
      },
    };
  }

  wireEngine(): void {
    const c = this.conn;
    c.onData = (chunk) => this.takeFromGuest(chunk);
    c.onPeerFin = () => {
      this.finToHost = true;
      this.markDirty();
    };
    c.onWritable = () => this.onWritable();
    c.onClosed = (reason) => this.nat.removeFlow(this, reason);
  }
}

export class TcpNat {
  readonly ctx: StackContext;
  private readonly flows4 = new Map<number, Map<number, Flow>>();
  private readonly flows6 = new Table6<Flow>();
  private count = 0;
  readonly dirty: Flow[] = [];
  readsPaused = false;
  private cfg4: ResolvedTcpConfig;
  private cfg6: ResolvedTcpConfig;
  private readonly view = new TcpView();
  private readonly opts = new TcpOptions();
  private readonly seg: TcpSegmentIn = { seq: 0, ack: 0, flags: 0, window: 0, payload: new Uint8Array(0) };
  private readonly rstHdr = createSegmentOut();
  private readonly sack = new Uint32Array(8);
  private readonly router: TcpRouter;
  private nextHostfwdPort = 0;
  private totalPaused = false;
  private lastTotalCheck = -Infinity;

  constructor(ctx: StackContext, router: TcpRouter) {
    this.ctx = ctx;
    this.router = router;
    this.cfg4 = this.makeCfg(false, 40);
    this.cfg6 = this.makeCfg(false, 60);
  }

  private makeCfg(gso: boolean, ipTcpHdr: number): ResolvedTcpConfig {
    const c = this.ctx.cfg;
    const mss = c.mtu - ipTcpHdr;
    return resolveTcpConfig({
      mss,
      defaultPeerMss: ipTcpHdr === 60 ? 1220 : 536,
      maxSegmentPayload: gso ? Math.floor((65535 - 20 - 60) / mss) * mss : 0,
      sendBufferSize: c.maxFlowBuffer,
      recvBufferSize: c.maxFlowBuffer,
      // The guest's FIN is relayed as a half-close and the host's FIN usually comes back well
      // within 2 ms: the FIN's ACK rides on ours instead of costing a frame (see connection.ts).
      // Not for PSH: measured, holding a request's ACK for the answer (pshAckDelayMs: 1) cost
      // request/response latency here (the timer per request) more than the frame saved.
      finAckDelayMs: 2,
    });
  }

  /** Called when offloads change: new connections use GSO-sized segments when granted. */
  setGso(tso4: boolean, tso6: boolean): void {
    this.cfg4 = this.makeCfg(tso4, 40);
    this.cfg6 = this.makeCfg(tso6, 60);
  }

  get flowCount(): number {
    return this.count;
  }

  /** Bytes buffered by all flows (send rings, reassembly, host socket backlogs). */
  bufferedBytes(): number {
    let n = 0;
    const add = (f: Flow) => {
      n += f.conn.bufferBytes + (f.host ? f.host.pendingBytes : 0) + (f.pending ? f.pending.length : 0) + f.accLen;
    };
    for (const m of this.flows4.values()) for (const f of m.values()) add(f);
    this.flows6.forEach(add);
    return n;
  }

  /** Pause host reads when the total buffer limit is exceeded; resume when back under half. */
  checkTotal(): void {
    const limit = this.ctx.cfg.maxTotalBuffer;
    // Cheap estimate first: flows × per-flow bound cannot exceed the limit → nothing to do.
    if (this.count * this.ctx.cfg.maxFlowBuffer * 2 <= limit && !this.totalPaused) return;
    // The walk over every flow is amortized: at most once per 5 ms of stack time.
    const now = this.ctx.timers.now();
    if (now - this.lastTotalCheck < 5) return;
    this.lastTotalCheck = now;
    const used = this.bufferedBytes();
    if (!this.totalPaused && used > limit) {
      this.totalPaused = true;
      this.ctx.count('tcp-total-buffer-pause');
      this.setReadsPaused(true);
    } else if (this.totalPaused && used < limit / 2) {
      this.totalPaused = false;
      this.setReadsPaused(false);
    }
  }

  private forEach(fn: (f: Flow) => void): void {
    for (const m of this.flows4.values()) for (const f of m.values()) fn(f);
    this.flows6.forEach(fn);
  }

  /** Stop / restart reading host sockets (backend pauseRecv, total buffer limit). */
  setReadsPaused(paused: boolean): void {
    this.readsPaused = paused || this.totalPaused;
    this.forEach((f) => {
      if (this.readsPaused) f.pauseHost();
      else f.resumeHost();
    });
  }

  // ---- input -----------------------------------------------------------------------------------

  /**
   * A TCP segment from the guest. `csumDone`: the checksum need not be verified (the vnet header
   * said DATA_VALID, or NEEDS_CSUM for a partial checksum the guest left to us).
   */
  input4(frame: Uint8Array, l4Off: number, l4Len: number, src: number, dst: number, csumDone: boolean): void {
    const v = this.view;
    if (!v.reset(frame, l4Off, l4Len)) {
      this.ctx.drop('tcp-malformed');
      return;
    }
    if (!csumDone && !v.verifyChecksumPseudo(ipv4PseudoSum(src, dst, IpProto.TCP, l4Len))) {
      this.ctx.drop('tcp-bad-checksum');
      return;
    }
    const seg = this.fillSeg(v);
    if (!seg) return;
    const outer = this.flows4.get(src * 65536 + v.srcPort);
    let flow = outer?.get(dst * 65536 + v.dstPort);
    if (flow && !flow.conn.input(seg, this.ctx.timers.now())) flow = undefined; // TIME-WAIT reopened
    if (flow) {
      flow.markDirty();
      return;
    }
    this.newFromGuest(4, src, dst, null, null, v.srcPort, v.dstPort, seg);
  }

  input6(frame: Uint8Array, ipOff: number, l4Off: number, l4Len: number, csumDone: boolean): void {
    const v = this.view;
    if (!v.reset(frame, l4Off, l4Len)) {
      this.ctx.drop('tcp-malformed');
      return;
    }
    if (!csumDone && !v.verifyChecksumPseudo(pseudoSumV6(frame, ipOff + 8, ipOff + 24, IpProto.TCP, l4Len))) {
      this.ctx.drop('tcp-bad-checksum');
      return;
    }
    const seg = this.fillSeg(v);
    if (!seg) return;
    // Looked up from the packet bytes: no per-segment key or address copies.
    let flow = this.flows6.get(frame, ipOff + 8, v.srcPort, frame, ipOff + 24, v.dstPort);
    if (flow && !flow.conn.input(seg, this.ctx.timers.now())) flow = undefined;
    if (flow) {
      flow.markDirty();
      return;
    }
    // A new flow (or an RST for an unknown one): control path, copies are fine.
    const src = frame.slice(ipOff + 8, ipOff + 24);
    const dst = frame.slice(ipOff + 24, ipOff + 40);
    this.newFromGuest(6, 0, 0, src, dst, v.srcPort, v.dstPort, seg);
  }

  private fillSeg(v: TcpView): TcpSegmentIn | null {
    const o = this.opts;
    if (!scanTcpOptions(v, o)) this.ctx.count('tcp-options-malformed');
    const s = this.seg;
    s.seq = v.seqNum;
    s.ack = v.ackNum;
    s.flags = v.flags;
    s.window = v.window;
    s.payload = v.bytes.subarray(v.payloadOffset, v.payloadOffset + v.payloadLen);
    s.mss = o.mss >= 0 ? o.mss : undefined;
    s.wscale = o.wscale >= 0 ? o.wscale : undefined;
    s.sackPermitted = o.sackPermitted || undefined;
    s.tsVal = o.hasTimestamp ? o.tsVal : undefined;
    s.tsEcr = o.hasTimestamp ? o.tsEcr : undefined;
    if (o.sackCount > 0) {
      for (let i = 0; i < o.sackCount; i++) {
        this.sack[2 * i] = o.sackLeft[i]!;
        this.sack[2 * i + 1] = o.sackRight[i]!;
      }
      s.sackBlocks = this.sack;
      s.sackCount = o.sackCount;
    } else {
      s.sackBlocks = undefined;
      s.sackCount = 0;
    }
    return s;
  }

  private sendReset(family: 4 | 6, src4: number, dst4: number, src6: Uint8Array | null, dst6: Uint8Array | null, srcPort: number, dstPort: number, seg: TcpSegmentIn): void {
    if (!resetFor(seg, this.rstHdr)) return;
    const none: TcpPayloadSource = { copySendData() {} };
    if (family === 4) this.ctx.out.sendTcp4(dst4, dstPort, src4, srcPort, this.rstHdr, 0, none, 1460);
    else this.ctx.out.sendTcp6(dst6!, dstPort, src6!, srcPort, this.rstHdr, 0, none, 1220);
  }

  private newFromGuest(family: 4 | 6, src4: number, dst4: number, src6: Uint8Array | null, dst6: Uint8Array | null, srcPort: number, dstPort: number, seg: TcpSegmentIn): void {
    const ctx = this.ctx;
    // Only a bare SYN opens a connection; anything else for an unknown flow gets RST (RFC 9293 §3.10.7.1).
    if ((seg.flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) !== TcpFlag.SYN) {
      if (!(seg.flags & TcpFlag.RST)) ctx.count('tcp-rst-unknown-flow');
      this.sendReset(family, src4, dst4, src6, dst6, srcPort, dstPort, seg);
      return;
    }
    const target = this.router(family, dst4, dst6, dstPort);
    if (target === 'drop') return; // counted by the router (restrict, no such host)
    if (target === null) {
      this.sendReset(family, src4, dst4, src6, dst6, srcPort, dstPort, seg);
      return;
    }
    if (this.count >= ctx.cfg.maxTcpFlows) {
      ctx.drop('tcp-flow-limit');
      this.sendReset(family, src4, dst4, src6, dst6, srcPort, dstPort, seg);
      return;
    }
    if (this.totalPaused) {
      ctx.drop('tcp-buffer-limit');
      this.sendReset(family, src4, dst4, src6, dst6, srcPort, dstPort, seg);
      return;
    }
    const flow = new Flow(this, family, src4, srcPort, dst4, dstPort, src6, dst6);
    const now = ctx.timers.now();
    flow.conn = TcpConnection.acceptSyn(seg, now, randomU32(), family === 4 ? this.cfg4 : this.cfg6, flow, {
      deferSynAck: true,
      tsOffset: randomU32(),
    });
    flow.wireEngine();
    this.addFlow(flow);
    const h = flow.hostHandlers();
    try {
      if (target.kind === 'inet') flow.host = ctx.io.connectTcp({ address: target.address, port: target.port, family: target.family }, h);
      else if (target.kind === 'unix') flow.host = ctx.io.connectUnix(target.path, h);
      else flow.host = ctx.io.spawnCommand(target.command, h);
    } catch (e) {
      ctx.log('warn', `tcp: cannot open host side: ${(e as Error).message}`);
      flow.conn.hostRefused(true);
      return;
    }
    if (this.readsPaused) flow.pauseHost();
    flow.afterEngine();
  }

  private addFlow(f: Flow): void {
    if (f.family === 4) {
      const k = f.guest4 * 65536 + f.guestPort;
      let m = this.flows4.get(k);
      if (!m) this.flows4.set(k, (m = new Map()));
      m.set(f.remote4 * 65536 + f.remotePort, f);
    } else {
      this.flows6.add(f);
    }
    this.count++;
  }

  removeFlow(f: Flow, reason: string): void {
    if (f.closed) return;
    f.closed = true;
    this.ctx.count(`tcp-closed-${reason}`);
    this.ctx.timers.cancel(f.timer);
    if (f.family === 4) {
      const k = f.guest4 * 65536 + f.guestPort;
      const m = this.flows4.get(k);
      if (m && m.get(f.remote4 * 65536 + f.remotePort) === f) {
        m.delete(f.remote4 * 65536 + f.remotePort);
        if (m.size === 0) this.flows4.delete(k);
      }
    } else {
      this.flows6.delete(f);
    }
    this.count--;
    const host = f.host;
    if (host) {
      if (reason === 'fin') {
        f.writeToHost();
        host.end();
      } else {
        host.destroy();
      }
    }
    f.pending = null;
    f.acc = null;
  }

  /** End of a batch of guest frames: write coalesced data, relay FINs, emit ACKs and data. */
  flush(): void {
    if (this.dirty.length === 0) return;
    const now = this.ctx.timers.now();
    for (let i = 0; i < this.dirty.length; i++) {
      const f = this.dirty[i]!;
      f.dirty = false;
      if (f.closed) continue;
      f.writeToHost();
      if (f.finToHost && f.host && !f.closed) {
        f.finToHost = false;
        f.host.end();
      }
      f.conn.flush(now);
      f.afterEngine();
    }
    this.dirty.length = 0;
    // ACKs in this batch may have freed buffer space: reads paused by the total limit resume here.
    this.checkTotal();
  }

  // ---- hostfwd ---------------------------------------------------------------------------------

  /**
   * A host connection accepted by a hostfwd listener: open a connection to the guest. The host
   * socket stays paused until the guest answers.
   */
  acceptHostfwd(rule: HostFwdRule, attach: (h: TcpHandlers) => HostTcp): void {
    const ctx = this.ctx;
    const family: 4 | 6 = rule.guestAddr.includes(':') ? 6 : 4;
    if (this.count >= ctx.cfg.maxTcpFlows) {
      ctx.drop('tcp-flow-limit');
      attach(nullHandlers).destroy();
      return;
    }
    let guest4 = 0;
    let guest6: Uint8Array | null = null;
    let remote6: Uint8Array | null = null;
    if (family === 4) {
      guest4 = rule.guestAddr ? (parseIpv4Addr(rule.guestAddr) ?? 0) : ctx.guestIp4();
      if (!guest4) {
        ctx.count('hostfwd-no-guest-address');
        attach(nullHandlers).destroy();
        return;
      }
    } else {
      guest6 = parseIpv6Addr(rule.guestAddr);
      remote6 = ctx.cfg.ipv6Host;
      if (!guest6) {
        attach(nullHandlers).destroy();
        return;
      }
    }
    const remote4 = ctx.cfg.host;
    const remotePort = this.allocPort(family, guest4, guest6, rule.guestPort);
    const flow = new Flow(this, family, guest4, rule.guestPort, remote4, remotePort, guest6, remote6);
    const now = ctx.timers.now();
    flow.conn = TcpConnection.connect(now, randomU32(), family === 4 ? this.cfg4 : this.cfg6, flow, { tsOffset: randomU32() });
    flow.wireEngine();
    flow.hostConnected = true;
    flow.hostPaused = true; // accepted paused (pauseOnConnect)
    flow.conn.onEstablished = () => flow.resumeHost();
    this.addFlow(flow);
    flow.host = attach(flow.hostHandlers());
    flow.conn.flush(now);
    flow.afterEngine();
  }

  private allocPort(family: 4 | 6, guest4: number, guest6: Uint8Array | null, guestPort: number): number {
    for (let tries = 0; tries < 16384; tries++) {
      const p = 49152 + ((this.nextHostfwdPort++ & 0x3fff) >>> 0);
      if (family === 4) {
        if (!this.flows4.get(guest4 * 65536 + guestPort)?.has(this.ctx.cfg.host * 65536 + p)) return p;
      } else if (!this.flows6.has(guest6!, guestPort, this.ctx.cfg.ipv6Host, p)) return p;
    }
    return 49152;
  }

  close(): void {
    this.forEach((f) => {
      f.closed = true;
      this.ctx.timers.cancel(f.timer);
      f.host?.destroy();
    });
    this.flows4.clear();
    this.flows6.clear();
    this.count = 0;
  }
}

const nullHandlers: TcpHandlers = { onConnect() {}, onData() {}, onEnd() {}, onDrain() {}, onClose() {} };

const rnd = new Uint32Array(64);
let rndIdx = 64;
function randomU32(): number {
  if (rndIdx >= rnd.length) {
    crypto.getRandomValues(rnd);
    rndIdx = 0;
  }
  return rnd[rndIdx++]!;
}

