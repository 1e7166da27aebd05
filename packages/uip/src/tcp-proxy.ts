/**
 * TCP proxy in the manner of kvmtool's uip/tcp.c: no TCP state machine of our own on the guest
 * side, each guest connection is spliced onto one host socket.
 *
 * Theory of operation
 * - Guest SYN → host connect to the destination (host_ip → 127.0.0.1, see uip.ts). The SYN-ACK
 *   is sent only once the host side has connected; a refused or failed connect answers the SYN
 *   with RST. A SYN the guest repeats meanwhile is ignored; one repeated after our SYN-ACK gets
 *   the SYN-ACK again.
 * - Guest → host: in-order data is written to the host socket and ACKed at once (no delayed
 *   ACKs). The window we advertise is `max-flow-buffer` minus what the host socket has not yet
 *   flushed; when it had closed below one MSS, the socket's drain sends a window update.
 *   Out-of-order data (something was lost) is not kept: it is answered with a duplicate ACK and
 *   the guest's own retransmission repairs the hole.
 * - Host → guest: bytes read from the host are kept until the guest ACKs them and are sent in
 *   MSS-sized segments, never more than the guest's advertised window (RFC 7323 scaling when the
 *   guest offers it) beyond the last ACK. The host socket is paused while `max-flow-buffer`
 *   bytes are waiting, and while the guest has paused receiving.
 * - FIN and RST are relayed both ways: guest FIN → host `end()`; host EOF → our FIN after the
 *   data; guest RST → host socket destroyed; host reset/error → RST to the guest. A connection
 *   is forgotten when both FINs are through and ours is ACKed, or on any RST.
 * - hostfwd: an accepted host connection becomes our SYN to the guest (from host_ip, a port from
 *   49152 up); the host socket stays paused until the guest's SYN-ACK.
 *
 * Loss. uip relies on a lossless guest link (virtio/TAP/in-process queues do not drop; the
 * backend honours pauseRecv instead of dropping). There is no retransmission timer for data,
 * no persist timer and no delayed-ACK timer. What happens if a frame is lost anyway:
 * - guest → us: the guest retransmits after its RTO (we only ACK in-order data), so it heals.
 * - us → guest: three duplicate ACKs from the guest make us resend everything unacknowledged
 *   (go-back-N, counted `tcp-go-back-n`). A lost segment at the tail of a burst, a lost FIN or a
 *   lost window update stalls the flow until the guest sends something (its own data, a window
 *   probe or keepalive).
 * - our SYN for hostfwd is the one exception: it is retried after 1, 2, 4 and 8 s (the guest may
 *   still be booting), then the host connection is closed (`hostfwd-syn-timeout`).
 *
 * Not done: IPv6, urgent data, SACK, timestamps, TSO/GSO (segments are at most mtu - 40 bytes),
 * TIME_WAIT (the guest keeps its own), simultaneous open.
 */
import {
  clearSegmentOut,
  createSegmentOut,
  resetFor,
  TcpFlag,
  TimerEntry,
  type HostFwdRule,
  type HostTcp,
  type TcpHandlers,
  type TcpPayloadSource,
  type TcpSegmentIn,
} from '@guestnet/core';
import { TcpOptions, TcpView, scanTcpOptions } from '@guestnet/wire';
import type { UipContext } from './context.ts';
import { guestAddr } from './udp-proxy.ts';

/** Our window-scale shift, offered only to a guest that offers scaling itself (RFC 7323 §2.2). */
const OUR_WSCALE = 7;
const FWD_PORT_FIRST = 49152;
const SYN_RETRIES = 4;

const St = { CONNECTING: 0, SYN_SENT: 1, OPEN: 2, CLOSED: 3 } as const;
type St = (typeof St)[keyof typeof St];

const seqSub = (a: number, b: number): number => (a - b) | 0;

class Conn implements TcpPayloadSource {
  state: St;
  readonly outer: number;
  /** The guest's port and address, the peer address/port as the guest sees it. */
  readonly guestPort: number;
  readonly guest: number;
  readonly peer: number;
  readonly peerPort: number;
  host: HostTcp | null = null;
  hostGone = false;
  hostEof = false;
  hostPausedForBuffer = false;
  /** Our sequence space: sndUna is the oldest unacknowledged data byte (after the SYN). */
  sndUna = 0;
  /** Data bytes sent beyond sndUna. */
  sent = 0;
  finSent = false;
  finAcked = false;
  rcvNxt = 0;
  guestFin = false;
  guestWnd = 0;
  /** Shift applied to the guest's window field; -1 = scaling not in use (also for ours). */
  guestShift = -1;
  ourShift = -1;
  mss = 536;
  dupAcks = 0;
  /** The last window we advertised was below one MSS: send an update when the host drains. */
  windowShut = false;
  /** Host bytes from sndUna on (sent-unacked and unsent). */
  readonly chunks: Uint8Array[] = [];
  head = 0;
  buffered = 0;
  synTries = 0;
  readonly timer: TimerEntry;

  constructor(state: St, outer: number, guest: number, guestPort: number, peer: number, peerPort: number, onTimer: (c: Conn) => void) {
    this.state = state;
    this.outer = outer;
    this.guest = guest;
    this.guestPort = guestPort;
    this.peer = peer;
    this.peerPort = peerPort;
    this.timer = new TimerEntry(() => onTimer(this));
  }

  get sndNxt(): number {
    return (this.sndUna + this.sent + (this.finSent ? 1 : 0)) >>> 0;
  }

  copySendData(seqOffset: number, dst: Uint8Array, dstOff: number, len: number): void {
    let i = 0;
    let off = this.head + seqOffset;
    while (i < this.chunks.length && off >= this.chunks[i]!.length) off -= this.chunks[i++]!.length;
    while (len > 0 && i < this.chunks.length) {
      const c = this.chunks[i++]!;
      const n = Math.min(len, c.length - off);
      dst.set(c.subarray(off, off + n), dstOff);
      dstOff += n;
      len -= n;
      off = 0;
    }
  }

  consume(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }
}

export class TcpProxy {
  private readonly ctx: UipContext;
  private readonly conns = new Map<number, Map<number, Conn>>();
  private count = 0;
  private nextFwdPort = FWD_PORT_FIRST;
  private readonly view = new TcpView();
  private readonly opts = new TcpOptions();
  private readonly hdr = createSegmentOut();
  private readonly rstIn: TcpSegmentIn = { seq: 0, ack: 0, flags: 0, window: 0, payload: new Uint8Array(0) };
  private closed = false;

  constructor(ctx: UipContext) {
    this.ctx = ctx;
  }

  get flowCount(): number {
    return this.count;
  }

  bufferedBytes(): number {
    let n = 0;
    for (const inner of this.conns.values()) for (const c of inner.values()) n += c.buffered;
    return n;
  }

  /** A TCP segment from the guest at `buf[off…off+len)`; `csumDone` when the NIC verified it. */
  input(buf: Uint8Array, off: number, len: number, src: number, dst: number, pseudo: number, csumDone: boolean): void {
    const ctx = this.ctx;
    const v = this.view;
    if (!v.reset(buf, off, len)) {
      ctx.drop('tcp-malformed');
      return;
    }
    if (!csumDone && !v.verifyChecksumPseudo(pseudo)) {
      ctx.drop('tcp-bad-checksum');
      return;
    }
    const flags = v.flags;
    const sport = v.srcPort;
    const dport = v.dstPort;
    const outer = dst * 65536 + dport;
    const c = this.conns.get(outer)?.get(sport);
    if (!c) {
      if ((flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN) this.open(outer, src, sport, dst, dport);
      else this.resetUnknown(src, sport, dst, dport, flags);
      return;
    }
    const seq = v.seqNum;
    if (flags & TcpFlag.RST) {
      // RFC 5961 §3.2 in spirit: only a reset inside the window we offered is believed.
      if (c.state === St.SYN_SENT ? (flags & TcpFlag.ACK) !== 0 && v.ackNum === c.sndUna : seqSub(seq, c.rcvNxt) >= 0 && seqSub(seq, c.rcvNxt) < 1 << 24) {
        ctx.count('tcp-rst-from-guest');
        c.host?.destroy();
        this.remove(c);
      } else ctx.drop('tcp-rst-out-of-window');
      return;
    }
    if (c.state === St.CONNECTING) {
      ctx.count('tcp-syn-while-connecting'); // the SYN-ACK follows once the host side connects
      return;
    }
    if (c.state === St.SYN_SENT) {
      this.synAck(c, flags, seq);
      return;
    }
    if (flags & TcpFlag.SYN) {
      // Our SYN-ACK was lost (or is late): repeat it while nothing has been sent since.
      if (seq === ((c.rcvNxt - 1) >>> 0) && c.sent === 0 && !c.finSent) this.emit(c, TcpFlag.SYN | TcpFlag.ACK, (c.sndUna - 1) >>> 0, 0, 0, true);
      return;
    }
    if (!(flags & TcpFlag.ACK)) {
      ctx.drop('tcp-no-ack');
      return;
    }
    this.ack(c, v.ackNum, v.window, v.payloadLen === 0 && !(flags & TcpFlag.FIN));
    if (c.state === St.CLOSED) return;
    const plen = v.payloadLen;
    let needAck = false;
    if (plen > 0) {
      needAck = true;
      if (c.guestFin) ctx.drop('tcp-data-after-fin');
      else if (seq !== c.rcvNxt) ctx.drop('tcp-out-of-order');
      else if (c.hostGone || !c.host) {
        this.sendRst(c);
        return;
      } else if (c.host.pendingBytes > 2 * ctx.cfg.maxFlowBuffer) ctx.drop('tcp-flow-buffer-full');
      else {
        c.host.write(buf.slice(v.payloadOffset, v.payloadOffset + plen));
        c.rcvNxt = (c.rcvNxt + plen) >>> 0;
      }
    }
    if (flags & TcpFlag.FIN) {
      needAck = true;
      if (!c.guestFin && ((seq + plen) >>> 0) === c.rcvNxt) {
        c.guestFin = true;
        c.rcvNxt = (c.rcvNxt + 1) >>> 0;
        c.host?.end();
      }
    }
    if (needAck) this.emit(c, TcpFlag.ACK, c.sndNxt, 0, 0, false);
    this.flush(c);
    if (c.guestFin && c.finAcked) this.remove(c);
  }

  /** Guest ACK and window; `pure` = no data/FIN (a duplicate ACK candidate). */
  private ack(c: Conn, ack: number, window: number, pure: boolean): void {
    const oldWnd = c.guestWnd;
    c.guestWnd = window << (c.guestShift >= 0 ? c.guestShift : 0);
    const a = seqSub(ack, c.sndUna);
    const inFlight = c.sent + (c.finSent ? 1 : 0);
    if (a < 0 || a > inFlight) {
      if (a > inFlight) this.ctx.drop('tcp-ack-unsent');
      return;
    }
    if (a === 0) {
      if (pure && inFlight > 0 && c.guestWnd === oldWnd && ++c.dupAcks === 3) {
        // Something we sent was lost: resend from the oldest unacknowledged byte.
        this.ctx.count('tcp-go-back-n');
        c.sent = 0;
        c.finSent = false;
        c.dupAcks = 0;
      }
      return;
    }
    c.dupAcks = 0;
    const data = Math.min(a, c.sent);
    c.consume(data);
    c.sent -= data;
    c.sndUna = (c.sndUna + data) >>> 0;
    if (a > data) {
      c.finSent = false; // folded into sndUna:
      c.sndUna = (c.sndUna + 1) >>> 0;
      c.finAcked = true;
    }
    if (c.hostPausedForBuffer && c.buffered < this.ctx.cfg.maxFlowBuffer / 2) {
      c.hostPausedForBuffer = false;
      if (!this.ctx.rxPaused) c.host?.resume();
    }
  }

  /** Send what the guest's window allows, then our FIN once the host has ended and all is sent. */
  private flush(c: Conn): void {
    if (c.state !== St.OPEN || this.ctx.rxPaused) return;
    for (;;) {
      const n = Math.min(c.buffered - c.sent, c.guestWnd - c.sent, c.mss);
      if (n <= 0) break;
      this.emit(c, TcpFlag.ACK | TcpFlag.PSH, (c.sndUna + c.sent) >>> 0, n, c.sent, false);
      c.sent += n;
    }
    if (c.hostEof && !c.finSent && !c.finAcked && c.sent === c.buffered) {
      this.emit(c, TcpFlag.FIN | TcpFlag.ACK, (c.sndUna + c.sent) >>> 0, 0, 0, false);
      c.finSent = true;
    }
  }

  /** Flush every connection (after a resume). */
  flushAll(): void {
    for (const inner of this.conns.values()) for (const c of inner.values()) this.flush(c);
  }

  setPaused(paused: boolean): void {
    for (const inner of this.conns.values()) {
      for (const c of inner.values()) {
        if (paused) c.host?.pause();
        else if (!c.hostPausedForBuffer && c.state === St.OPEN) c.host?.resume();
      }
    }
    if (!paused) this.flushAll();
  }

  private rcvWindow(c: Conn): number {
    return Math.max(0, this.ctx.cfg.maxFlowBuffer - (c.host?.pendingBytes ?? 0));
  }

  private emit(c: Conn, flags: number, seq: number, len: number, dataOff: number, syn: boolean): void {
    const h = this.hdr;
    clearSegmentOut(h);
    h.seq = seq;
    h.flags = flags;
    if (flags & TcpFlag.ACK) h.ack = c.rcvNxt;
    const w = this.rcvWindow(c);
    if (syn) {
      // RFC 7323 §2.2: the window of a SYN is never scaled.
      h.window = Math.min(65535, w);
      h.mss = this.ctx.cfg.mtu - 40;
      if (c.ourShift >= 0 || c.state === St.SYN_SENT) h.wscale = OUR_WSCALE;
    } else {
      h.window = Math.min(65535, w >>> (c.ourShift >= 0 ? c.ourShift : 0));
    }
    c.windowShut = w < c.mss;
    h.payloadSeqOffset = dataOff;
    this.ctx.out.sendTcp4(c.peer, c.peerPort, c.guest, c.guestPort, h, len, c, Math.max(len, c.mss));
  }

  private sendRst(c: Conn): void {
    this.emit(c, TcpFlag.RST | TcpFlag.ACK, c.sndNxt, 0, 0, false);
    c.host?.destroy();
    this.remove(c);
  }

  private resetUnknown(src: number, sport: number, dst: number, dport: number, flags: number): void {
    const v = this.view;
    const seg = this.rstIn;
    seg.seq = v.seqNum;
    seg.ack = v.ackNum;
    seg.flags = flags;
    seg.payload = v.bytes.subarray(v.payloadOffset, v.payloadOffset + v.payloadLen);
    const h = this.hdr;
    if (!resetFor(seg, h)) return;
    this.ctx.drop('tcp-no-connection');
    this.ctx.out.sendTcp4(dst, dport, src, sport, h, 0, NO_DATA, 536);
  }

  private refuse(src: number, sport: number, dst: number, dport: number, seq: number): void {
    const h = this.hdr;
    clearSegmentOut(h);
    h.seq = 0;
    h.ack = (seq + 1) >>> 0;
    h.flags = TcpFlag.RST | TcpFlag.ACK;
    h.window = 0;
    this.ctx.out.sendTcp4(dst, dport, src, sport, h, 0, NO_DATA, 536);
  }

  // ---- guest → host connections --------------------------------------------------------------

  private open(outer: number, src: number, sport: number, dst: number, dport: number): void {
    const ctx = this.ctx;
    const v = this.view;
    const seq = v.seqNum;
    if (this.closed) return;
    if (this.count >= ctx.cfg.maxTcpFlows) {
      ctx.drop('tcp-flow-limit');
      this.refuse(src, sport, dst, dport, seq);
      return;
    }
    const to = ctx.target(dst, dport);
    if (!to) {
      this.refuse(src, sport, dst, dport, seq);
      return;
    }
    const c = new Conn(St.CONNECTING, outer, src, sport, dst, dport, () => {});
    c.rcvNxt = (seq + 1) >>> 0;
    this.synOptions(c, v.window);
    c.sndUna = (randomIsn() + 1) >>> 0;
    this.add(c);
    ctx.count('tcp-connect');
    c.host = ctx.io.connectTcp(to, this.handlers(c));
  }

  private synOptions(c: Conn, window: number): void {
    const o = this.opts;
    o.clear();
    // Options with a bad length end the scan (as Linux): what came before them still counts.
    if (!scanTcpOptions(this.view, o)) this.ctx.count('tcp-options-malformed');
    c.mss = Math.max(64, Math.min(o.mss > 0 ? o.mss : 536, this.ctx.cfg.mtu - 40));
    c.guestWnd = window;
    if (o.wscale >= 0) {
      c.guestShift = Math.min(o.wscale, 14);
      c.ourShift = OUR_WSCALE;
    } else {
      c.guestShift = -1;
      c.ourShift = -1;
    }
  }

  private handlers(c: Conn): TcpHandlers {
    return {
      onConnect: () => {
        if (c.state !== St.CONNECTING) return;
        c.state = St.OPEN;
        if (this.ctx.rxPaused) c.host?.pause();
        this.emit(c, TcpFlag.SYN | TcpFlag.ACK, (c.sndUna - 1) >>> 0, 0, 0, true);
      },
      onData: (chunk) => {
        if (c.state === St.CLOSED) return;
        c.chunks.push(chunk);
        c.buffered += chunk.length;
        if (c.buffered >= this.ctx.cfg.maxFlowBuffer && !c.hostPausedForBuffer) {
          c.hostPausedForBuffer = true;
          c.host?.pause();
        }
        this.flush(c);
      },
      onEnd: () => {
        c.hostEof = true;
        this.flush(c);
      },
      onDrain: () => {
        if (c.state === St.OPEN && c.windowShut) this.emit(c, TcpFlag.ACK, c.sndNxt, 0, 0, false);
      },
      onClose: (err) => {
        c.hostGone = true;
        c.host = null;
        if (c.state === St.CLOSED) return;
        if (c.state === St.CONNECTING) {
          this.ctx.count('tcp-connect-refused');
          this.ctx.log('debug', `uip tcp: connect failed: ${err?.code ?? 'closed'}`);
          this.refuse(c.guest, c.guestPort, c.peer, c.peerPort, (c.rcvNxt - 1) >>> 0);
          this.remove(c);
        } else if (err) {
          this.ctx.count('tcp-host-reset');
          this.sendRst(c);
        } else if (!c.hostEof) {
          c.hostEof = true;
          this.flush(c);
        }
      },
    };
  }

  // ---- hostfwd: host → guest connections -----------------------------------------------------

  acceptHostfwd(rule: HostFwdRule, attach: (h: TcpHandlers) => HostTcp): void {
    const ctx = this.ctx;
    if (this.closed || this.count >= ctx.cfg.maxTcpFlows) {
      ctx.drop('tcp-flow-limit');
      attach(NOOP_HANDLERS).destroy();
      return;
    }
    const guest = guestAddr(rule.guestAddr, ctx.cfg.guestIp);
    const hostIp = ctx.cfg.hostIp;
    let port = -1;
    for (let i = 0; i < 16384 && port < 0; i++) {
      const p = this.nextFwdPort;
      this.nextFwdPort = p >= 65535 ? FWD_PORT_FIRST : p + 1;
      if (!this.conns.get(hostIp * 65536 + p)?.has(rule.guestPort)) port = p;
    }
    if (port < 0) {
      ctx.drop('tcp-flow-limit');
      attach(NOOP_HANDLERS).destroy();
      return;
    }
    const c = new Conn(St.SYN_SENT, hostIp * 65536 + port, guest, rule.guestPort, hostIp, port, (cc) => this.synTimer(cc));
    c.sndUna = (randomIsn() + 1) >>> 0;
    c.mss = ctx.cfg.mtu - 40;
    this.add(c);
    c.host = attach(this.handlers(c)); // paused (pauseOnConnect) until the guest answers
    this.sendSyn(c);
  }

  private sendSyn(c: Conn): void {
    this.emit(c, TcpFlag.SYN, (c.sndUna - 1) >>> 0, 0, 0, true);
    this.ctx.timers.schedule(c.timer, this.ctx.timers.now() + 1000 * 2 ** c.synTries);
  }

  private synTimer(c: Conn): void {
    if (c.state !== St.SYN_SENT) return;
    if (++c.synTries > SYN_RETRIES) {
      this.ctx.count('hostfwd-syn-timeout');
      c.host?.destroy();
      this.remove(c);
      return;
    }
    this.sendSyn(c);
  }

  private synAck(c: Conn, flags: number, seq: number): void {
    const v = this.view;
    if ((flags & (TcpFlag.SYN | TcpFlag.ACK)) !== (TcpFlag.SYN | TcpFlag.ACK) || v.ackNum !== c.sndUna) {
      this.ctx.drop('tcp-bad-synack');
      return;
    }
    this.ctx.timers.cancel(c.timer);
    c.rcvNxt = (seq + 1) >>> 0;
    this.synOptions(c, v.window);
    c.state = St.OPEN;
    this.emit(c, TcpFlag.ACK, c.sndNxt, 0, 0, false);
    if (!this.ctx.rxPaused) c.host?.resume();
    this.flush(c);
  }

  // ---- table ---------------------------------------------------------------------------------

  private add(c: Conn): void {
    let inner = this.conns.get(c.outer);
    if (!inner) this.conns.set(c.outer, (inner = new Map()));
    inner.set(c.guestPort, c);
    this.count++;
  }

  private remove(c: Conn): void {
    if (c.state === St.CLOSED) return;
    c.state = St.CLOSED;
    this.ctx.timers.cancel(c.timer);
    const inner = this.conns.get(c.outer);
    inner?.delete(c.guestPort);
    if (inner && inner.size === 0) this.conns.delete(c.outer);
    this.count--;
    c.chunks.length = 0;
    c.buffered = 0;
  }

  close(): void {
    this.closed = true;
    for (const inner of [...this.conns.values()]) {
      for (const c of [...inner.values()]) {
        c.host?.destroy();
        this.remove(c);
      }
    }
  }
}

const NO_DATA: TcpPayloadSource = { copySendData: () => {} };
const NOOP_HANDLERS: TcpHandlers = { onConnect() {}, onData() {}, onEnd() {}, onDrain() {}, onClose() {} };

function randomIsn(): number {
  return (Math.random() * 0x100000000) >>> 0;
}
