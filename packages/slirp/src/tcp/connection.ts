/**
 * TcpConnection: the guest-facing TCP endpoint of the NAT, as a sans-IO state machine.
 *
 * Theory of operation
 * -------------------
 * Every guest TCP connection terminates here; the glue proxies its byte streams to a host socket.
 * The engine never touches sockets, timers, clocks or wire bytes: the glue hands in parsed
 * segments ({@link TcpSegmentIn}) with the current time in ms, and receives segments through
 * {@link TcpOutput.emit}, copying payload bytes from our send buffer straight into its frame.
 *
 * The glue's loop for one connection:
 *   1. `conn.input(seg, now)` for each segment of a batch from the guest (callbacks fire inside);
 *   2. `conn.write(bytes)` / `shutdownWrite()` / `consumed(n)` as the host socket produces events;
 *   3. `conn.flush(now)` once at the end of the batch / event: this is what emits data and ACKs,
 *      so a burst of guest segments yields one ACK and several host writes one train of segments;
 *   4. re-arm the stack timer for `conn.nextDeadline()` and call `conn.poll(now)` when it passes
 *      (poll runs the due timers, then flushes).
 * Emitted outside flush/poll: the SYN of `connect`, the SYN-ACK of `hostConnected` (or of
 * `acceptSyn` without deferral), and RSTs (`abort`, `hostRefused`, replies to invalid segments).
 *
 * Concerns live in their own files: sequence arithmetic (seq.ts), the send ring (send-buffer.ts),
 * reassembly (recv-buffer.ts), RTO (rto.ts), NewReno (congestion.ts). This file is the RFC 9293
 * state machine (§3.10) plus the policies that tie them together:
 *
 * - Handshake: passive opens come from a guest SYN (`acceptSyn`), answered only once the host
 *   connect succeeded (`hostConnected`; `hostRefused` answers with RST), as libslirp does; active
 *   opens (`connect`, hostfwd) send a SYN to the guest. Options negotiated: MSS, window scale
 *   (RFC 7323 §2; our shift is the smallest that covers the receive buffer), timestamps
 *   (RFC 7323 §3–5: RTT measurement and PAWS), SACK-permitted (RFC 2018). Simultaneous open works.
 * - Sending: host bytes wait in a bounded ring from SND.UNA; a segment goes out when the guest's
 *   window and cwnd allow, at most `maxSegmentPayload` bytes (the MSS, or up to 64 KiB for GSO).
 *   Nagle is off (the host side already batches); sender SWS avoidance (RFC 9293 §3.8.6.2.1) holds
 *   back a runt only while data is in flight. RTO per RFC 6298 with go-back-N from SND.UNA,
 *   fast retransmit / NewReno recovery (RFC 5681/6582). A zero window arms the persist timer
 *   (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): probes are `SEQ=SND.UNA-1` ACKs (as Linux), which
 *   any receiver answers with its current window, backed off exponentially up to maxRto and never
 *   giving up while answered.
 * - Receiving: in-order data goes to `onData` straight from the guest's segment (zero copy);
 *   out-of-order data is kept within the advertised window and reported with SACK blocks; data
 *   past the advertised right edge is dropped and counted. The advertised window is
 *   `recvBufferSize - unconsumed`, where `unconsumed` is what `onData` delivered minus what the glue
 *   says the host took (`consumed` / `setHostBacklog`); receiver SWS avoidance (RFC 9293
 *   §3.8.6.2.2) moves the right edge only in steps of min(buffer/2, MSS), and never backwards.
 * - ACKs (RFC 1122 §4.2.3.2, RFC 5681 §4.2): delayed until flush; sent at flush once ≥ 2 full
 *   segments are unacknowledged, when the last in-order segment had PSH (the guest wrote all it
 *   had and may be waiting — avoids the Nagle/delayed-ACK stall; with `pshAckDelayMs` that ACK
 *   waits that long for our data to carry it), or after `delayedAckMs`. The ACK of a FIN in
 *   ESTABLISHED waits `finAckDelayMs` for our own FIN (0: at once). Sent at
 *   once (one duplicate ACK per segment, with SACK) for out-of-order data, a filled hole, duplicate
 *   or unacceptable segments, a FIN, and window re-openings.
 * - Closing: guest FIN → `onPeerFin` (the glue half-closes the host socket); host EOF →
 *   `shutdownWrite()` → FIN after queued data. TIME-WAIT lasts `timeWaitMs` (default 2 s, not
 *   2·MSL = 4 min): it protects a 4-tuple from old duplicates of a previous incarnation, and on a
 *   virtual link a segment's lifetime is bounded by queueing in the glue — milliseconds. A fresh
 *   SYN in TIME-WAIT reopens (RFC 9293 §3.10.7.4 / RFC 6191): `input` returns false.
 * - Security (RFC 5961): an RST whose sequence is in the window but not exactly RCV.NXT, or any SYN
 *   on a synchronized connection, gets a challenge ACK instead of acting; ACKs for unsent data and
 *   ones far below SND.UNA are dropped. RSTs in TIME-WAIT are ignored (RFC 1337).
 *
 * Buffer ownership: `seg.payload` and `onData`'s chunk are borrowed for the call; `write` copies;
 * the emitted header is shared and valid only during `emit`.
 *
 * Not implemented: urgent data (URG is ignored, its bytes are plain data), SACK-based loss
 * recovery on the sending side (received SACK blocks are ignored; NewReno recovers), D-SACK,
 * ECN, PMTU discovery, TCP Fast Open, data carried on SYN/SYN-ACK (dropped; the peer resends),
 * the RFC 7323 24-day PAWS idle rule, challenge-ACK rate limiting.
 */

import { AckAction, NewReno } from './congestion.ts';
import { RecvBuffer } from './recv-buffer.ts';
import { RtoEstimator } from './rto.ts';
import { SendBuffer } from './send-buffer.ts';
import { clearSegmentOut, createSegmentOut, TcpFlag } from '@guestnet/core';
import type { TcpOutput, TcpPayloadSource, TcpSegmentIn } from '@guestnet/core';
import { seqAdd, seqGe, seqGt, seqLe, seqLt, seqSub } from './seq.ts';

/** Tunables; every field is optional (see {@link resolveTcpConfig} for defaults). */
export interface TcpConfig {
  /** The MSS our link carries (MTU − IP − TCP headers), advertised to the guest. Default 1460. */
  mss?: number;
  /** Peer MSS assumed when the guest's SYN has no MSS option (RFC 9293 §3.7.1: 536 for IPv4; use 1220 for IPv6). */
  defaultPeerMss?: number;
  /**
   * Largest payload per emitted segment. 0 (default) = the MSS. With GSO (virtio-net header) set it
   * up to 65535 − headers: the glue then splits with `gso_size = conn.sendMss`.
   */
  maxSegmentPayload?: number;
  /** Host→guest buffer bound in bytes. Default 256 KiB. */
  sendBufferSize?: number;
  /** Guest→host window: bytes delivered but not yet consumed by the host, at most. Default 256 KiB. */
  recvBufferSize?: number;
  /** Initial congestion window in bytes. Default 64 KiB (see congestion.ts). */
  initialCwnd?: number;
  windowScaling?: boolean;
  timestamps?: boolean;
  sack?: boolean;
  /** Delayed-ACK timer (RFC 1122 §4.2.3.2 allows up to 500 ms). Default 40 ms, as Linux. */
  delayedAckMs?: number;
  /**
   * How long the ACK of a segment with PSH may wait for data of ours to ride on. 0 (default) =
   * ACK at the flush that processed it. A proxy whose host peer answers within this time then
   * sends one segment instead of two, as Linux's delayed ACK in interactive ("pingpong") mode
   * does; bounded by a timer, so a guest whose Nagle waits for the ACK stalls at most this long.
   */
  pshAckDelayMs?: number;
  /**
   * How long the ACK of the guest's FIN (in ESTABLISHED) may wait for our own FIN to ride on —
   * Linux does the same when it enters CLOSE-WAIT. 0 (default) = ACK at once. A proxy that
   * half-closes its host side on the guest's FIN sees the host's FIN back within this time and
   * answers with one FIN+ACK instead of an ACK and a FIN.
   */
  finAckDelayMs?: number;
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  /** RTO expiries without progress before giving up with `onClosed('timeout')`. Default 12. */
  maxRetransmits?: number;
  /** Same for SYN / SYN-ACK. Default 5. */
  maxSynRetransmits?: number;
  /** TIME-WAIT duration. Default 2000 ms (see header). */
  timeWaitMs?: number;
  /** Keepalive after this much silence from the guest; 0 (default) = off. */
  keepaliveIdleMs?: number;
  /** Interval between unanswered keepalive probes. Default 75 s (RFC 1122 §4.2.3.6 / Linux). */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before `onClosed('timeout')`. Default 9. */
  keepaliveProbes?: number;
  /** An emptied buffer's storage is released after this much idleness. Default 1000 ms. */
  idleTrimMs?: number;
}

/** A validated config, shared by many connections (create it once per stack). */
export interface ResolvedTcpConfig {
  readonly mss: number;
  readonly defaultPeerMss: number;
  readonly maxSegmentPayload: number;
  readonly sendBufferSize: number;
  readonly recvBufferSize: number;
  readonly initialCwnd: number;
  readonly windowScaling: boolean;
  readonly timestamps: boolean;
  readonly sack: boolean;
  readonly delayedAckMs: number;
  readonly pshAckDelayMs: number;
  readonly finAckDelayMs: number;
  readonly initialRtoMs: number;
  readonly minRtoMs: number;
  readonly maxRtoMs: number;
  readonly maxRetransmits: number;
  readonly maxSynRetransmits: number;
  readonly timeWaitMs: number;
  readonly keepaliveIdleMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveProbes: number;
  readonly idleTrimMs: number;
  /** Our window-scale shift: the smallest with 65535·2^shift ≥ recvBufferSize. */
  readonly rcvWscale: number;
}

function clampInt(v: number | undefined, def: number, min: number, max: number): number {
  if (v === undefined || !Number.isFinite(v)) return def;
  v = Math.floor(v);
  return v < min ? min : v > max ? max : v;
}

/** Fill in defaults and clamp out-of-range values (no throw: a config is already validated upstream). */
export function resolveTcpConfig(c: TcpConfig = {}): ResolvedTcpConfig {
  const mss = clampInt(c.mss, 1460, 64, 65495);
  const recvBufferSize = clampInt(c.recvBufferSize, 256 * 1024, 1024, 1 << 30);
  const windowScaling = c.windowScaling ?? true;
  let rcvWscale = 0;
  while (windowScaling && 65535 * 2 ** rcvWscale < recvBufferSize && rcvWscale < 14) rcvWscale++;
  const minRtoMs = clampInt(c.minRtoMs, 200, 1, 60_000);
  const maxRtoMs = clampInt(c.maxRtoMs, 60_000, minRtoMs, 3_600_000);
  const msp = clampInt(c.maxSegmentPayload, 0, 0, 65535);
  return Object.freeze({
    mss,
    defaultPeerMss: clampInt(c.defaultPeerMss, 536, 64, 65495),
    maxSegmentPayload: msp,
    sendBufferSize: clampInt(c.sendBufferSize, 256 * 1024, 1024, 1 << 30),
    recvBufferSize,
    initialCwnd: clampInt(c.initialCwnd, 64 * 1024, 1, 1 << 30),
    windowScaling,
    timestamps: c.timestamps ?? true,
    sack: c.sack ?? true,
    delayedAckMs: clampInt(c.delayedAckMs, 40, 0, 500),
    pshAckDelayMs: clampInt(c.pshAckDelayMs, 0, 0, 500),
    finAckDelayMs: clampInt(c.finAckDelayMs, 0, 0, 500),
    initialRtoMs: clampInt(c.initialRtoMs, 1000, minRtoMs, maxRtoMs),
    minRtoMs,
    maxRtoMs,
    maxRetransmits: clampInt(c.maxRetransmits, 12, 1, 100),
    maxSynRetransmits: clampInt(c.maxSynRetransmits, 5, 0, 100),
    timeWaitMs: clampInt(c.timeWaitMs, 2000, 0, 240_000),
    keepaliveIdleMs: clampInt(c.keepaliveIdleMs, 0, 0, 1e9),
    keepaliveIntervalMs: clampInt(c.keepaliveIntervalMs, 75_000, 1, 1e9),
    keepaliveProbes: clampInt(c.keepaliveProbes, 9, 1, 1000),
    idleTrimMs: clampInt(c.idleTrimMs, 1000, 0, 1e9),
    rcvWscale,
  });
}

/** RFC 9293 §3.3.2 states, by name. (No LISTEN: passive opens start from a SYN.) */
export const TcpState = {
  Closed: 'CLOSED',
  SynSent: 'SYN-SENT',
  SynReceived: 'SYN-RECEIVED',
  Established: 'ESTABLISHED',
  FinWait1: 'FIN-WAIT-1',
  FinWait2: 'FIN-WAIT-2',
  CloseWait: 'CLOSE-WAIT',
  Closing: 'CLOSING',
  LastAck: 'LAST-ACK',
  TimeWait: 'TIME-WAIT',
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

/**
 * Why a connection ended: `fin` orderly close (both FINs acked, TIME-WAIT over or LAST-ACK acked);
 * `reset` the guest sent an acceptable RST; `timeout` retransmissions, SYN retries or keepalives
 * exhausted; `aborted` the glue called `abort()` / `hostRefused()`.
 */
export type TcpCloseReason = 'fin' | 'reset' | 'timeout' | 'aborted';

/** Per-connection counters (plain numbers; read them, never reset them). */
export class TcpConnStats {
  segsIn = 0;
  segsOut = 0;
  /** Guest→host bytes delivered to `onData`. */
  bytesIn = 0;
  /** Host→guest bytes sent for the first time. */
  bytesOut = 0;
  /** Segments sent again (RTO go-back-N, fast/partial-ACK retransmits, SYN retries). */
  retransmits = 0;
  /** Third-duplicate-ACK retransmissions (RFC 5681 §3.2). */
  fastRetransmits = 0;
  /** Retransmission timer expiries. */
  timeouts = 0;
  /** Duplicate ACKs received. */
  dupAcks = 0;
  /** Out-of-order segments / bytes buffered for reassembly. */
  oooSegments = 0;
  oooBytes = 0;
  /** Zero-window probes sent. */
  windowProbes = 0;
  /** RFC 5961 challenge ACKs sent. */
  challengeAcks = 0;
  /** Dropped: data segments wholly below RCV.NXT (ACKed again). */
  dropDuplicate = 0;
  /** Dropped: unacceptable sequence numbers (outside the window). */
  dropOutOfWindow = 0;
  /** Segments / bytes cut off beyond the advertised window (a peer ignoring our window). */
  dropBeyondWindow = 0;
  dropBeyondWindowBytes = 0;
  /** Out-of-order bytes not kept (reassembly range or size limit). */
  dropOooOverflowBytes = 0;
  /** Dropped by PAWS (RFC 7323 §5): timestamp older than TS.Recent. */
  dropPaws = 0;
  /** Dropped: ACK field acknowledges unsent data or is far in the past. */
  dropBadAck = 0;
  /** Dropped: no ACK flag on a synchronized connection. */
  dropNoAck = 0;
  /** Dropped: anything else invalid for the state (e.g. non-SYN in SYN-SENT). */
  dropInvalid = 0;
}

/** Options of {@link TcpConnection.acceptSyn}. */
export interface AcceptOptions {
  /** Wait for `hostConnected()` before answering (default true, as libslirp). */
  deferSynAck?: boolean;
  /** Offset added to `now` for our RFC 7323 TSval clock (randomize per connection, RFC 7323 §7.1). */
  tsOffset?: number;
}

/** Options of {@link TcpConnection.connect}. */
export interface ConnectOptions {
  tsOffset?: number;
}

const S_CLOSED = 0;
const S_SYN_SENT = 1;
const S_SYN_RCVD = 2;
const S_ESTAB = 3;
const S_FIN_WAIT_1 = 4;
const S_FIN_WAIT_2 = 5;
const S_CLOSE_WAIT = 6;
const S_CLOSING = 7;
const S_LAST_ACK = 8;
const S_TIME_WAIT = 9;
const STATE_NAMES: readonly TcpState[] = [
  TcpState.Closed,
  TcpState.SynSent,
  TcpState.SynReceived,
  TcpState.Established,
  TcpState.FinWait1,
  TcpState.FinWait2,
  TcpState.CloseWait,
  TcpState.Closing,
  TcpState.LastAck,
  TcpState.TimeWait,
];

const FIN = TcpFlag.FIN;
const SYN = TcpFlag.SYN;
const RST = TcpFlag.RST;
const PSH = TcpFlag.PSH;
const ACK = TcpFlag.ACK;

/** Duplicate ACKs emitted per flush at most (enough for the peer's 3-dupack threshold and inflation). */
const MAX_PURE_ACKS = 16;

// One header for every segment of every connection: emit() is synchronous and may not re-enter.
const HDR = createSegmentOut();

const noop = (): void => {};

export class TcpConnection implements TcpPayloadSource {
  /** In-order guest→host data; `chunk` is borrowed for the call (copy it to keep it). */
  onData: (chunk: Uint8Array) => void = noop;
  /** The guest sent FIN: half-close the host socket. Fires once. */
  onPeerFin: () => void = noop;
  /** The send buffer has room again after a short `write`: resume reading the host socket. */
  onWritable: () => void = noop;
  /** The connection is gone; no further callbacks or emissions. Fires once. */
  onClosed: (reason: TcpCloseReason) => void = noop;
  /** The three-way handshake completed. */
  onEstablished: () => void = noop;
  /** Free slot for the glue (its flow entry, host socket…). */
  userData: unknown = undefined;
  readonly stats = new TcpConnStats();
  readonly config: ResolvedTcpConfig;

  private st = S_CLOSED;
  private readonly out: TcpOutput;
  private readonly sb: SendBuffer;
  private readonly rb: RecvBuffer;
  private readonly rtt: RtoEstimator;
  private readonly cc: NewReno;
  private readonly iss: number;
  private readonly tsOffset: number;

  // Send sequence space (RFC 9293 §3.3.1). sndMax is the highest sequence ever sent: after an RTO
  // sndNxt rewinds to sndUna (go-back-N) while sndMax still bounds acceptable ACKs.
  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  /** Sequence number of the first byte in the send buffer. */
  private dataBase: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private maxSndWnd = 0;
  private synAcked = false;
  private finQueued = false;
  private synPending = false;
  private waitingHost = false;
  private rtxFirst = false;
  private synWindow = 0;

  // Receive side.
  private irs = 0;
  private rcvAdvRight = 0;
  private lastAckSent = 0;
  private peerFinSeq = 0;
  private peerFinPending = false;
  private unconsumed = 0;

  // Negotiated options.
  private peerMss = 536;
  private effMss = 536;
  private maxSeg = 536;
  private rcvMss = 536;
  private rcvMssEst = 536;
  private sndWscale = 0;
  private rcvWscale = 0;
  private wsOk = false;
  private tsOk = false;
  private sackOk = false;
  private tsRecent = 0;

  // ACK policy.
  private ackNow = false;
  private ackPendingBytes = 0;
  private lastPsh = false;
  /** A FIN from the guest waits for its ACK (see finAckDelayMs). */
  private finAckPending = false;
  private pureAcks = 0;

  // Timers: absolute ms, Infinity = not armed.
  private rtxAt = Infinity;
  private persistAt = Infinity;
  private delackAt = Infinity;
  private timeWaitAt = Infinity;
  private keepaliveAt = Infinity;
  private trimAt = Infinity;
  private retries = 0;
  private persistBackoff = 0;
  private keepaliveSent = 0;

  // RTT timing of one segment when timestamps are off (RFC 6298 §3, Karn).
  private rttTiming = false;
  private rttSeq = 0;
  private rttTime = 0;

  private writeBlocked = false;

  private constructor(cfg: ResolvedTcpConfig, out: TcpOutput, iss: number, tsOffset: number) {
    this.config = cfg;
    this.out = out;
    this.sb = new SendBuffer(cfg.sendBufferSize);
    this.rb = new RecvBuffer(cfg.recvBufferSize, { deliver: (c) => this.deliver(c) });
    this.rtt = new RtoEstimator(cfg.initialRtoMs, cfg.minRtoMs, cfg.maxRtoMs);
    this.cc = new NewReno(cfg.defaultPeerMss, cfg.initialCwnd);
    iss >>>= 0;
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = iss;
    this.sndMax = iss;
    this.dataBase = seqAdd(iss, 1);
    this.sndWl2 = iss;
    this.tsOffset = tsOffset >>> 0;
    this.rcvMss = cfg.mss;
  }

  /**
   * Passive open from the guest's SYN (the glue found no connection for its 4-tuple and decided
   * to connect to the host). The connection is in SYN-RECEIVED; with `deferSynAck` (default) the
   * SYN-ACK waits for {@link hostConnected} / {@link hostRefused}, and retransmitted SYNs are
   * absorbed meanwhile. `iss`: our initial sequence number (random, RFC 9293 §3.4.1 / RFC 6528).
   */
  static acceptSyn(syn: TcpSegmentIn, now: number, iss: number, cfg: ResolvedTcpConfig, out: TcpOutput, opts: AcceptOptions = {}): TcpConnection {
    const c = new TcpConnection(cfg, out, iss, opts.tsOffset ?? 0);
    c.st = S_SYN_RCVD;
    c.irs = syn.seq >>> 0;
    c.rb.nxt = seqAdd(c.irs, 1);
    c.lastAckSent = c.rb.nxt;
    c.negotiate(syn, cfg.windowScaling, cfg.timestamps, cfg.sack);
    c.sndWnd = syn.window; // never scaled in a SYN (RFC 7323 §2.2)
    c.maxSndWnd = syn.window;
    c.sndWl1 = c.irs;
    c.resetKeepalive(now);
    if (opts.deferSynAck ?? true) {
      c.waitingHost = true;
    } else {
      c.synPending = true;
      c.flush(now);
    }
    return c;
  }

  /** Active open towards the guest (hostfwd): emits the SYN now; SYN-SENT. */
  static connect(now: number, iss: number, cfg: ResolvedTcpConfig, out: TcpOutput, opts: ConnectOptions = {}): TcpConnection {
    const c = new TcpConnection(cfg, out, iss, opts.tsOffset ?? 0);
    c.st = S_SYN_SENT;
    c.synPending = true;
    c.flush(now);
    return c;
  }

  // ---------------------------------------------------------------- public surface: state

  /** RFC 9293 state name. */
  get state(): TcpState {
    return STATE_NAMES[this.st];
  }

  /** A deferred passive open is still waiting for `hostConnected` / `hostRefused`. */
  get awaitingHost(): boolean {
    return this.waitingHost;
  }

  /** Payload bytes per wire segment towards the guest (use as `gso_size`). */
  get sendMss(): number {
    return this.effMss;
  }

  /** Largest payload this connection passes to one `emit` (≥ sendMss; > sendMss only with GSO). */
  get maxSegmentPayload(): number {
    return this.maxSeg;
  }

  /** The guest's MSS option (or the default). */
  get peerMssOption(): number {
    return this.peerMss;
  }

  /** Negotiated window-scale shifts: applied to the guest's windows / to ours. */
  get sndWindowScale(): number {
    return this.sndWscale;
  }
  get rcvWindowScale(): number {
    return this.rcvWscale;
  }

  /** Whether RFC 7323 timestamps / RFC 2018 SACK are in use. */
  get timestampsEnabled(): boolean {
    return this.tsOk;
  }
  get sackEnabled(): boolean {
    return this.sackOk;
  }

  /** Bytes in the send buffer (unacknowledged + unsent). */
  get sendQueued(): number {
    return this.sb.length;
  }

  /** Bytes `write` would accept now. */
  get sendFree(): number {
    return this.finQueued || this.st === S_CLOSED ? 0 : this.sb.free;
  }

  /** The guest's current send window in bytes (scaled). */
  get peerWindow(): number {
    return this.sndWnd;
  }

  /** The window we last advertised, in bytes. */
  get rcvWindow(): number {
    const w = seqSub(this.rcvAdvRight, this.rb.nxt);
    return w > 0 ? w : 0;
  }

  /** Bytes delivered through `onData` that the glue has not reported consumed. */
  get unconsumedBytes(): number {
    return this.unconsumed;
  }

  get cwnd(): number {
    return this.cc.cwnd;
  }
  get ssthresh(): number {
    return this.cc.ssthresh;
  }
  /** Current retransmission timeout in ms (backoff included) and smoothed RTT. */
  get rto(): number {
    return this.rtt.rto;
  }
  get srtt(): number {
    return this.rtt.srtt;
  }

  /** Bytes of buffer storage held (send ring + reassembly ring): 0 for an idle connection. */
  get bufferBytes(): number {
    return this.sb.storageBytes + this.rb.storageBytes;
  }

  /** Our ISN and the guest's. */
  get localIss(): number {
    return this.iss;
  }
  get remoteIss(): number {
    return this.irs;
  }

  // ---------------------------------------------------------------- public surface: glue calls

  /** Copy payload for the segment being emitted (see {@link TcpSegmentOut.payloadSeqOffset}). */
  copySendData(seqOffset: number, dst: Uint8Array, dstOff: number, len: number): void {
    this.sb.copyOut(seqOffset, dst, dstOff, len);
  }

  /** The host connect for a deferred passive open succeeded: send the SYN-ACK now. */
  hostConnected(now: number): void {
    if (!this.waitingHost || this.st !== S_SYN_RCVD) return;
    this.waitingHost = false;
    this.synPending = true;
    this.flush(now);
  }

  /**
   * The host connect failed: answer the guest's SYN with RST (unless `sendRst` is false, e.g. when
   * the glue answers with ICMP unreachable instead) and close with `aborted`.
   */
  hostRefused(sendRst = true): void {
    if (!this.waitingHost || this.st !== S_SYN_RCVD) return;
    this.waitingHost = false;
    if (sendRst) this.emitRst(0, this.rb.nxt, RST | ACK);
    this.closeNow('aborted');
  }

  /**
   * Queue host→guest bytes (copied). Returns how many were taken: less than offered when the send
   * buffer is full — the glue pauses the host socket and waits for `onWritable`. 0 after
   * `shutdownWrite` or close. Call `flush` to send.
   */
  write(data: Uint8Array, off = 0, len: number = data.length - off): number {
    const st = this.st;
    if (this.finQueued || len <= 0 || !(st === S_ESTAB || st === S_CLOSE_WAIT || st === S_SYN_RCVD || st === S_SYN_SENT)) return 0;
    const n = this.sb.append(data, off, len);
    if (n < len) this.writeBlocked = true;
    return n;
  }

  /** The host sent EOF: FIN to the guest after all queued data (half-close). Call `flush` to send. */
  shutdownWrite(): void {
    const st = this.st;
    if (this.finQueued || !(st === S_ESTAB || st === S_CLOSE_WAIT || st === S_SYN_RCVD || st === S_SYN_SENT)) return;
    this.finQueued = true;
  }

  /** Kill the connection: RST to the guest where RFC 9293 §3.10.5 says so, then `onClosed('aborted')`. */
  abort(): void {
    const st = this.st;
    if (st === S_CLOSED) return;
    if (this.waitingHost) this.emitRst(0, this.rb.nxt, RST | ACK);
    else if (st === S_SYN_RCVD || st === S_ESTAB || st === S_FIN_WAIT_1 || st === S_FIN_WAIT_2 || st === S_CLOSE_WAIT) {
      this.emitRst(this.sndMax, this.rb.nxt, RST | ACK);
    }
    this.closeNow('aborted');
  }

  /** The host took `n` more of the bytes delivered by `onData` (re-opens the window; then `flush`). */
  consumed(n: number): void {
    if (n <= 0) return;
    const u = this.unconsumed - n;
    this.unconsumed = u > 0 ? u : 0;
    this.checkWindowUpdate();
  }

  /** Set the host-side backlog directly (e.g. the host socket's pending bytes); then `flush`. */
  setHostBacklog(bytes: number): void {
    this.unconsumed = bytes > 0 ? bytes : 0;
    this.checkWindowUpdate();
  }

  /** Release idle buffer storage now (also done automatically `idleTrimMs` after they empty). */
  trimMemory(): void {
    this.sb.trim();
    this.rb.trim();
  }

  /** The earliest absolute time (ms) at which `poll` has work, or Infinity. */
  nextDeadline(): number {
    let d = this.rtxAt;
    if (this.persistAt < d) d = this.persistAt;
    if (this.delackAt < d) d = this.delackAt;
    if (this.timeWaitAt < d) d = this.timeWaitAt;
    if (this.keepaliveAt < d) d = this.keepaliveAt;
    if (this.trimAt < d) d = this.trimAt;
    return d;
  }

  /** Run the timers due at `now` (retransmission, persist, delayed ACK, keepalive, TIME-WAIT), then flush. */
  poll(now: number): void {
    if (this.st === S_CLOSED) return;
    if (now >= this.timeWaitAt) {
      this.closeNow('fin');
      return;
    }
    if (now >= this.rtxAt) {
      this.onRtxTimeout(now);
      if (this.st === S_CLOSED) return;
    }
    if (now >= this.persistAt) this.onPersist(now);
    if (now >= this.delackAt) {
      this.delackAt = Infinity;
      if (this.ackPendingBytes > 0 || this.finAckPending) this.ackNow = true;
    }
    if (now >= this.keepaliveAt) {
      this.onKeepalive(now);
      if (this.st === S_CLOSED) return;
    }
    if (now >= this.trimAt) {
      this.trimAt = Infinity;
      this.trimMemory();
    }
    this.flush(now);
  }

  /** Emit what is due: a pending SYN/SYN-ACK, retransmissions, new data and FIN, ACKs. */
  flush(now: number): void {
    const st = this.st;
    if (st === S_CLOSED) return;
    if (this.synPending) {
      this.synPending = false;
      this.emitSyn(now);
    }
    if (st === S_SYN_SENT || st === S_SYN_RCVD) {
      this.ackNow = false;
      this.pureAcks = 0;
      return;
    }
    if (this.rtxFirst) {
      this.rtxFirst = false;
      this.retransmitFirst(now);
    }
    this.sendData(now);
    if (this.pureAcks > 0) {
      const k = this.pureAcks;
      this.pureAcks = 0;
      for (let i = 0; i < k; i++) this.emitSegment(now, this.sndMax, ACK, 0);
    } else {
      const cfg = this.config;
      const pshDelay = cfg.pshAckDelayMs;
      const pending = this.ackPendingBytes;
      if (this.ackNow || (pending > 0 && ((this.lastPsh && pshDelay === 0) || pending >= 2 * this.rcvMssEst))) {
        this.emitSegment(now, this.sndMax, ACK, 0);
      } else if (pending > 0 || this.finAckPending) {
        // No segment of ours went out to carry the ACK: wait for one (or for the timer).
        const at = now + (this.finAckPending ? cfg.finAckDelayMs : this.lastPsh ? pshDelay : cfg.delayedAckMs);
        if (at < this.delackAt) this.delackAt = at;
      }
    }
    // Persist timer (RFC 9293 §3.8.6.1): zero window, nothing in flight, data waiting.
    if (this.sndWnd === 0 && this.persistAt === Infinity && this.sndUna === this.sndMax && this.st !== S_CLOSED) {
      if (seqLt(this.sndNxt, seqAdd(this.dataBase, this.sb.length))) this.persistAt = now + this.persistInterval();
    }
  }

  /**
   * Process one segment from the guest. Returns false only when a SYN reopened a connection in
   * TIME-WAIT: this connection is then closed (`onClosed('fin')` fired) and the glue must treat
   * the SYN as a new connection. Nothing but RSTs is emitted here: call `flush` after the batch.
   */
  input(seg: TcpSegmentIn, now: number): boolean {
    const st = this.st;
    if (st === S_CLOSED) return true;
    const stats = this.stats;
    stats.segsIn++;
    const flags = seg.flags;
    if (st === S_SYN_SENT) {
      this.inputSynSent(seg, now);
      return true;
    }
    const seq = seg.seq >>> 0;
    const rcvNxt = this.rb.nxt;
    if (this.waitingHost) {
      // Retransmitted SYNs wait for the host connect; a guest giving up may send an RST.
      if (flags & RST && seq === rcvNxt) this.closeNow('reset');
      return true;
    }
    const len = seg.payload.length;
    const fin = flags & FIN ? 1 : 0;
    if (st === S_TIME_WAIT && (flags & (SYN | ACK | RST)) === SYN) {
      // RFC 9293 §3.10.7.4 (TIME-WAIT SYN) / RFC 6191: a newer incarnation may take over.
      if (seqGt(seq, rcvNxt) || (this.tsOk && seg.tsVal !== undefined && seqGt(seg.tsVal >>> 0, this.tsRecent))) {
        this.closeNow('fin');
        return false;
      }
    }
    this.resetKeepalive(now);
    const hasTs = this.tsOk && seg.tsVal !== undefined;
    // PAWS (RFC 7323 §5.3 R1): an older timestamp marks an old duplicate.
    if (hasTs && !(flags & RST) && seqLt(seg.tsVal! >>> 0, this.tsRecent)) {
      stats.dropPaws++;
      this.ackNow = true;
      return true;
    }
    const right = this.rcvAdvRight;
    if (flags & RST) {
      // RFC 5961 §3.2: act only on an exact match; in-window → challenge ACK; else drop.
      if (seq === rcvNxt) {
        if (st !== S_TIME_WAIT) this.closeNow('reset'); // RFC 1337: TIME-WAIT ignores RST
      } else if (seqGe(seq, rcvNxt) && seqLt(seq, right)) {
        stats.challengeAcks++;
        this.ackNow = true;
      } else {
        stats.dropOutOfWindow++;
      }
      return true;
    }
    if (flags & SYN) {
      if (st === S_SYN_RCVD && seq === this.irs) {
        this.synPending = true; // the guest missed our SYN-ACK
        return true;
      }
      // RFC 5961 §4.2: any SYN on a synchronized connection gets a challenge ACK.
      stats.challengeAcks++;
      this.ackNow = true;
      return true;
    }
    // Acceptability (RFC 9293 §3.10.7.4, with Linux's inclusive right edge for empty segments
    // and acceptance at RCV.NXT in a zero window so ACKs, probes and bare FINs get through).
    const segLen = len + fin;
    const end = seqAdd(seq, segLen);
    let ok: boolean;
    if (segLen === 0) ok = seqGe(seq, rcvNxt) && seqLe(seq, right);
    else if (right === rcvNxt) ok = seq === rcvNxt;
    else ok = seqLt(seq, right) && seqGt(end, rcvNxt);
    if (!ok) {
      if (segLen > 0 && seqLe(end, rcvNxt)) stats.dropDuplicate++;
      else stats.dropOutOfWindow++;
      this.ackNow = true;
      // TIME-WAIT: a retransmitted FIN (our ACK of it was lost) restarts the timer (RFC 9293 §3.10.7.4).
      if (st === S_TIME_WAIT && fin) this.timeWaitAt = now + this.config.timeWaitMs;
      return true;
    }
    // TS.Recent (RFC 7323 §4.3).
    if (hasTs && seqLe(seq, this.lastAckSent)) this.tsRecent = seg.tsVal! >>> 0;
    if (!(flags & ACK)) {
      stats.dropNoAck++;
      return true;
    }
    if (st === S_SYN_RCVD) {
      const a = seg.ack >>> 0;
      if (!(seqGt(a, this.sndUna) && seqLe(a, this.sndMax))) {
        stats.dropBadAck++;
        this.emitRst(a, 0, RST);
        return true;
      }
    }
    if (!this.processAck(seg, seq, now, len, fin)) return true;
    if (this.st === S_CLOSED) return true;
    if (segLen > 0) this.processData(seg, seq, now, len, fin);
    return true;
  }

  // ---------------------------------------------------------------- internals: receiving

  private negotiate(seg: TcpSegmentIn, offeredWs: boolean, offeredTs: boolean, offeredSack: boolean): void {
    const cfg = this.config;
    this.peerMss = seg.mss !== undefined && seg.mss > 0 ? seg.mss : cfg.defaultPeerMss;
    const ws = seg.wscale;
    this.wsOk = offeredWs && ws !== undefined;
    if (offeredWs && ws !== undefined) {
      this.sndWscale = ws > 14 ? 14 : ws; // RFC 7323 §2.3
      this.rcvWscale = cfg.rcvWscale;
    } else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.tsOk = offeredTs && seg.tsVal !== undefined;
    if (this.tsOk) this.tsRecent = seg.tsVal! >>> 0;
    this.sackOk = offeredSack && seg.sackPermitted === true;
    const tsOpt = this.tsOk ? 12 : 0;
    let m = (this.peerMss < cfg.mss ? this.peerMss : cfg.mss) - tsOpt;
    if (m < 64) m = 64;
    this.effMss = m;
    this.maxSeg = cfg.maxSegmentPayload > m ? cfg.maxSegmentPayload : m;
    this.rcvMss = cfg.mss - tsOpt;
    this.rcvMssEst = m < this.rcvMss ? m : this.rcvMss;
    this.cc.setMss(m);
  }

  private inputSynSent(seg: TcpSegmentIn, now: number): void {
    const f = seg.flags;
    const stats = this.stats;
    const ackOk = (f & ACK) !== 0 && seg.ack >>> 0 === seqAdd(this.iss, 1);
    if (f & ACK && !ackOk) {
      stats.dropBadAck++;
      if (!(f & RST)) this.emitRst(seg.ack >>> 0, 0, RST);
      return;
    }
    if (f & RST) {
      if (ackOk) this.closeNow('reset'); // the guest refused the hostfwd connection
      else stats.dropInvalid++;
      return;
    }
    if (!(f & SYN)) {
      stats.dropInvalid++;
      return;
    }
    const cfg = this.config;
    this.irs = seg.seq >>> 0;
    this.rb.nxt = seqAdd(this.irs, 1);
    this.lastAckSent = this.rb.nxt;
    this.rcvAdvRight = seqAdd(this.rb.nxt, this.synWindow);
    this.negotiate(seg, cfg.windowScaling, cfg.timestamps, cfg.sack);
    this.sndWnd = seg.window;
    this.maxSndWnd = seg.window;
    this.sndWl1 = this.irs;
    this.resetKeepalive(now);
    if (!ackOk) {
      // Simultaneous open (RFC 9293 §3.10.7.3): answer with SYN-ACK.
      this.st = S_SYN_RCVD;
      this.synPending = true;
      return;
    }
    if (this.tsOk && seg.tsEcr !== undefined && seg.tsEcr !== 0) this.rtt.sample(seqSub(this.tsNow(now), seg.tsEcr >>> 0));
    else if (this.rttTiming) this.rtt.sample(now - this.rttTime);
    this.rttTiming = false;
    this.sndUna = seg.ack >>> 0;
    this.sndWl2 = this.sndUna;
    this.synAcked = true;
    this.retries = 0;
    this.rtxAt = Infinity;
    this.st = S_ESTAB;
    this.ackNow = true; // data on a SYN-ACK is not taken; the guest resends it
    this.onEstablished();
  }

  private processAck(seg: TcpSegmentIn, seq: number, now: number, len: number, fin: number): boolean {
    const ack = seg.ack >>> 0;
    const stats = this.stats;
    if (seqGt(ack, this.sndMax)) {
      // RFC 9293 §3.10.7.4: acknowledges something not yet sent → ACK and drop.
      stats.dropBadAck++;
      this.ackNow = true;
      return false;
    }
    const floor = this.maxSndWnd > 65535 ? this.maxSndWnd : 65535;
    if (seqLt(ack, seqAdd(this.sndUna, -floor))) {
      // RFC 5961 §5.2: too old to be a real ACK.
      stats.dropBadAck++;
      stats.challengeAcks++;
      this.ackNow = true;
      return false;
    }
    const wnd = seg.window << this.sndWscale;
    if (seqGt(ack, this.sndUna)) {
      this.newAck(seg, ack, now);
      if (this.st === S_CLOSED) return false;
    } else if (ack === this.sndUna && len === 0 && fin === 0 && wnd === this.sndWnd && this.sndMax !== this.sndUna) {
      // Duplicate ACK per RFC 5681 §2.
      stats.dupAcks++;
      if (this.cc.onDupAck(seqSub(this.sndMax, this.sndUna), this.sndUna, this.sndMax)) {
        stats.fastRetransmits++;
        this.rtxFirst = true;
        this.rttTiming = false;
      }
    }
    // Window update (RFC 9293 §3.10.7.4: SND.WL1/WL2 guard against reordered old segments).
    if (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = wnd;
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (wnd > 0 && this.persistAt !== Infinity) {
        this.persistAt = Infinity;
        this.persistBackoff = 0;
      }
    }
    return true;
  }

  private newAck(seg: TcpSegmentIn, ack: number, now: number): void {
    const cfg = this.config;
    let acked = seqSub(ack, this.sndUna);
    const total = acked;
    // RTT sample: a timestamp echo names the transmission it answers (RFC 7323 §4.1); without
    // timestamps only the timed, never-retransmitted segment counts (Karn).
    if (this.tsOk && seg.tsEcr !== undefined && seg.tsEcr !== 0) {
      this.rtt.sample(seqSub(this.tsNow(now), seg.tsEcr >>> 0));
    } else if (this.rttTiming && seqGe(ack, this.rttSeq)) {
      this.rtt.sample(now - this.rttTime);
      this.rttTiming = false;
    }
    this.sndUna = ack;
    let established = false;
    if (!this.synAcked) {
      this.synAcked = true;
      acked--;
      if (this.st === S_SYN_RCVD) {
        this.st = S_ESTAB;
        established = true;
      }
    }
    const dataEnd = seqAdd(this.dataBase, this.sb.length);
    let finAcked = false;
    if (this.finQueued && seqGt(ack, dataEnd)) {
      finAcked = true;
      acked--;
    }
    if (acked > 0) {
      this.sb.ack(acked);
      this.dataBase = seqAdd(this.dataBase, acked);
    }
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.retries = 0;
    if (this.cc.onNewAck(ack, total, this.sndMax) === AckAction.RetransmitFirst) this.rtxFirst = true;
    // RFC 6298 §5.2/5.3: stop when all is acked, else restart.
    this.rtxAt = ack === this.sndMax ? Infinity : now + this.rtt.rto;
    if (this.sb.length === 0 && this.sb.storageBytes > 0 && this.trimAt === Infinity) this.trimAt = now + cfg.idleTrimMs;
    if (finAcked) {
      if (this.st === S_FIN_WAIT_1) this.st = S_FIN_WAIT_2;
      else if (this.st === S_CLOSING) this.enterTimeWait(now);
      else if (this.st === S_LAST_ACK) {
        this.closeNow('fin');
        return;
      }
    }
    if (established) {
      this.onEstablished();
      if (this.st === S_CLOSED) return;
    }
    if (this.writeBlocked && this.sb.free >= this.sb.capacity >> 2) {
      // Hysteresis: resume the host socket only once a quarter of the buffer is free.
      this.writeBlocked = false;
      if (!this.finQueued) this.onWritable();
    }
  }

  private processData(seg: TcpSegmentIn, seq: number, now: number, len: number, fin: number): void {
    const st = this.st;
    if (st !== S_ESTAB && st !== S_FIN_WAIT_1 && st !== S_FIN_WAIT_2) {
      // The guest's FIN is already in: this is a retransmission of it (or junk past it). Re-ACK;
      // in TIME-WAIT restart the timer (RFC 9293 §3.10.7.4, eighth step).
      this.ackNow = true;
      if (st === S_TIME_WAIT) this.timeWaitAt = now + this.config.timeWaitMs;
      return;
    }
    const rb = this.rb;
    const stats = this.stats;
    let cutAtWindow = false;
    if (len > 0) {
      const hadOoo = rb.rangeCount > 0;
      rb.accept(seq, seg.payload, this.rcvAdvRight);
      if (this.st === S_CLOSED) return;
      if (rb.inOrder > 0) {
        this.ackPendingBytes += rb.inOrder;
        this.lastPsh = (seg.flags & PSH) !== 0;
        if (len > this.rcvMssEst) this.rcvMssEst = len < this.rcvMss ? len : this.rcvMss;
        if (hadOoo) {
          this.ackNow = true; // RFC 5681 §4.2: a segment filling (part of) a hole is ACKed at once
          if (rb.rangeCount === 0 && rb.storageBytes > 0 && this.trimAt === Infinity) this.trimAt = now + this.config.idleTrimMs;
        }
      }
      if (rb.ooo > 0) {
        stats.oooSegments++;
        stats.oooBytes += rb.ooo;
        if (this.pureAcks < MAX_PURE_ACKS) this.pureAcks++; // RFC 5681 §4.2: immediate duplicate ACK
      }
      if (rb.dup > 0 && rb.inOrder === 0 && rb.ooo === 0 && rb.beyondWindow === 0) {
        stats.dropDuplicate++;
        this.ackNow = true;
      }
      if (rb.beyondWindow > 0) {
        stats.dropBeyondWindow++;
        stats.dropBeyondWindowBytes += rb.beyondWindow;
        this.ackNow = true;
        cutAtWindow = true;
      }
      if (rb.overflow > 0) {
        stats.dropOooOverflowBytes += rb.overflow;
        if (this.pureAcks < MAX_PURE_ACKS) this.pureAcks++;
      }
    }
    if (fin && !cutAtWindow) {
      this.peerFinPending = true;
      this.peerFinSeq = seqAdd(seq, len);
    }
    if (this.peerFinPending && rb.nxt === this.peerFinSeq) {
      this.peerFinPending = false;
      rb.nxt = seqAdd(rb.nxt, 1);
      // In ESTABLISHED our own FIN usually follows soon (the host closes too): let the ACK ride
      // on it, as Linux does when it enters CLOSE-WAIT. Otherwise ACK at once.
      if (this.st === S_ESTAB && this.config.finAckDelayMs > 0) this.finAckPending = true;
      else this.ackNow = true;
      if (this.st === S_ESTAB) this.st = S_CLOSE_WAIT;
      else if (this.st === S_FIN_WAIT_1) this.st = S_CLOSING;
      else this.enterTimeWait(now);
      this.onPeerFin();
    }
  }

  private deliver(c: Uint8Array): void {
    if (this.st === S_CLOSED) return;
    this.unconsumed += c.length;
    this.stats.bytesIn += c.length;
    this.onData(c);
  }

  /** Bytes we could accept now, capped by what the window field can express. */
  private recvAvail(): number {
    let a = this.config.recvBufferSize - this.unconsumed;
    if (a < 0) a = 0;
    const max = 65535 * 2 ** this.rcvWscale;
    return a > max ? max : a;
  }

  private checkWindowUpdate(): void {
    const st = this.st;
    if (st !== S_ESTAB && st !== S_FIN_WAIT_1 && st !== S_FIN_WAIT_2) return;
    const avail = this.recvAvail();
    let cur = seqSub(this.rcvAdvRight, this.rb.nxt);
    if (cur < 0) cur = 0;
    const half = this.recvBufferEff() >> 1;
    const step = half < this.rcvMss ? half : this.rcvMss;
    // Only worth a segment of its own when the guest may be blocked on it (less than two
    // segments left) and it can grow by a real step. A guest with more room left is still
    // sending, and the ACKs that draws carry the larger window anyway; forcing one here would,
    // on every new connection, send a bare ACK right after the first request (the SYN-ACK's
    // window is capped at 64 KiB unscaled) instead of letting it ride on the answer.
    if (cur < half && cur < 2 * this.rcvMss && avail - cur >= step) this.ackNow = true;
  }

  private recvBufferEff(): number {
    const max = 65535 * 2 ** this.rcvWscale;
    const b = this.config.recvBufferSize;
    return b < max ? b : max;
  }

  /** The window field for a non-SYN segment; advances rcvAdvRight (never backwards). */
  private windowField(): number {
    const nxt = this.rb.nxt;
    const avail = this.recvAvail();
    let cur = seqSub(this.rcvAdvRight, nxt);
    if (cur < 0) cur = 0;
    let wnd = cur;
    // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): grow only by min(buffer/2, MSS) or more.
    if (avail > cur) {
      const half = this.recvBufferEff() >> 1;
      const step = half < this.rcvMss ? half : this.rcvMss;
      if (avail - cur >= step) wnd = avail;
    }
    const ws = this.rcvWscale;
    // Round up so the advertised right edge never moves left (RFC 7323 §2.4).
    let raw = Math.ceil(wnd / 2 ** ws);
    if (raw > 65535) raw = 65535;
    const r = seqAdd(nxt, raw * 2 ** ws);
    if (seqGt(r, this.rcvAdvRight)) this.rcvAdvRight = r;
    return raw;
  }

  // ---------------------------------------------------------------- internals: sending

  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0;
  }

  private emitSyn(now: number): void {
    const cfg = this.config;
    const h = HDR;
    clearSegmentOut(h);
    const synAck = this.st === S_SYN_RCVD;
    h.seq = this.iss;
    h.flags = synAck ? SYN | ACK : SYN;
    // SYN windows are never scaled (RFC 7323 §2.2).
    let w = this.config.recvBufferSize - this.unconsumed;
    if (w > 65535) w = 65535;
    if (w < 0) w = 0;
    h.window = w;
    this.synWindow = w;
    h.mss = cfg.mss;
    if (synAck) {
      h.ack = this.rb.nxt;
      const r = seqAdd(this.rb.nxt, w);
      if (seqGt(r, this.rcvAdvRight) || this.rcvAdvRight === 0) this.rcvAdvRight = r;
      this.lastAckSent = this.rb.nxt;
      if (this.wsOk) h.wscale = this.rcvWscale; // RFC 7323 §2.2: only in reply to a SYN that had one
      h.sackPermitted = this.sackOk;
      if (this.tsOk) {
        h.hasTimestamp = true;
        h.tsVal = this.tsNow(now);
        h.tsEcr = this.tsRecent;
      }
    } else {
      if (cfg.windowScaling) h.wscale = cfg.rcvWscale;
      h.sackPermitted = cfg.sack;
      if (cfg.timestamps) {
        h.hasTimestamp = true;
        h.tsVal = this.tsNow(now);
        h.tsEcr = 0;
      }
    }
    if (this.retries > 0 || this.sndMax !== this.iss) this.stats.retransmits++;
    this.stats.segsOut++;
    this.out.emit(h, 0, this);
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    if (this.rtxAt === Infinity) this.rtxAt = now + this.rtt.rto;
    if (this.retries === 0 && !this.rttTiming) {
      this.rttTiming = true;
      this.rttSeq = this.sndNxt;
      this.rttTime = now;
    }
  }

  private sendData(now: number): void {
    const st = this.st;
    if (st !== S_ESTAB && st !== S_CLOSE_WAIT && st !== S_FIN_WAIT_1 && st !== S_CLOSING && st !== S_LAST_ACK) return;
    const sb = this.sb;
    const effMss = this.effMss;
    const maxSeg = this.maxSeg;
    for (;;) {
      const dataEnd = seqAdd(this.dataBase, sb.length);
      const sndNxt = this.sndNxt;
      const unsent = seqSub(dataEnd, sndNxt);
      if (unsent < 0) return; // FIN already sent
      const cwnd = this.cc.cwnd;
      const wnd = this.sndWnd < cwnd ? this.sndWnd : cwnd;
      const usable = seqSub(seqAdd(this.sndUna, wnd), sndNxt);
      let len = unsent < usable ? unsent : usable;
      if (len > maxSeg) len = maxSeg;
      if (len <= 0) {
        // A FIN with no data left goes out regardless of the window: it costs the receiver no buffer.
        if (!(unsent === 0 && this.finQueued)) return;
        len = 0;
      } else if (len < unsent && len < effMss && sndNxt !== this.sndUna) {
        return; // sender SWS avoidance: wait for the ACK instead of sending a runt
      }
      const fin = this.finQueued && len === unsent;
      let flags = ACK;
      if (fin) flags |= FIN;
      if (len > 0 && len === unsent) flags |= PSH;
      const retrans = seqLt(sndNxt, this.sndMax);
      if (retrans) this.stats.retransmits++;
      const fresh = seqSub(seqAdd(sndNxt, len), this.sndMax);
      if (fresh > 0) this.stats.bytesOut += fresh;
      this.emitSegment(now, sndNxt, flags, len);
      const next = seqAdd(sndNxt, fin ? len + 1 : len);
      this.sndNxt = next;
      if (seqGt(next, this.sndMax)) this.sndMax = next;
      if (this.rtxAt === Infinity) this.rtxAt = now + this.rtt.rto;
      if (!retrans && !this.tsOk && !this.rttTiming) {
        this.rttTiming = true;
        this.rttSeq = next;
        this.rttTime = now;
      }
      if (fin) {
        if (this.st === S_ESTAB) this.st = S_FIN_WAIT_1;
        else if (this.st === S_CLOSE_WAIT) this.st = S_LAST_ACK;
        return;
      }
    }
  }

  /** Fast retransmit / NewReno partial ACK: resend one segment at SND.UNA (sndNxt unchanged). */
  private retransmitFirst(now: number): void {
    const una = this.sndUna;
    if (una === this.sndMax) return;
    const dataEnd = seqAdd(this.dataBase, this.sb.length);
    let len = seqSub(dataEnd, una);
    if (len < 0) len = 0;
    if (len > this.effMss) len = this.effMss;
    let flags = ACK;
    if (this.finQueued && seqGt(this.sndMax, dataEnd) && seqAdd(una, len) === dataEnd) flags |= FIN;
    if (len === 0 && !(flags & FIN)) return;
    this.stats.retransmits++;
    this.emitSegment(now, una, flags, len);
    if (this.rtxAt === Infinity) this.rtxAt = now + this.rtt.rto;
  }

  private emitSegment(now: number, seq: number, flags: number, len: number): void {
    const h = HDR;
    h.seq = seq;
    h.flags = flags;
    const hasAck = (flags & ACK) !== 0;
    h.ack = hasAck ? this.rb.nxt : 0;
    h.window = this.windowField();
    h.mss = 0;
    h.wscale = -1;
    h.sackPermitted = false;
    if (this.tsOk) {
      h.hasTimestamp = true;
      h.tsVal = this.tsNow(now);
      h.tsEcr = this.tsRecent;
    } else {
      h.hasTimestamp = false;
      h.tsVal = 0;
      h.tsEcr = 0;
    }
    h.sackCount = 0;
    if (hasAck && this.sackOk && this.rb.rangeCount > 0) {
      // RFC 2018 §3: 3 blocks fit beside timestamps, 4 without; a data segment may only use the
      // room its payload leaves under the MSS (the option must not push the frame past the MTU).
      let k = this.tsOk ? 3 : 4;
      const room = ((this.effMss - len - 4) / 8) | 0;
      if (room < k) k = room;
      if (k > 0) h.sackCount = this.rb.sackBlocks(h.sackBlocks, k);
    }
    h.payloadSeqOffset = len > 0 ? seqSub(seq, this.dataBase) : 0;
    this.stats.segsOut++;
    this.out.emit(h, len, this);
    if (hasAck) {
      this.ackNow = false;
      this.ackPendingBytes = 0;
      this.lastPsh = false;
      this.finAckPending = false;
      this.delackAt = Infinity;
      this.lastAckSent = this.rb.nxt;
    }
  }

  private emitRst(seq: number, ack: number, flags: number): void {
    const h = HDR;
    clearSegmentOut(h);
    h.seq = seq >>> 0;
    h.ack = flags & ACK ? ack >>> 0 : 0;
    h.flags = flags;
    h.window = 0;
    this.stats.segsOut++;
    this.out.emit(h, 0, this);
  }

  // ---------------------------------------------------------------- internals: timers

  private onRtxTimeout(now: number): void {
    this.rtxAt = Infinity;
    if (this.sndUna === this.sndMax) return;
    const st = this.st;
    const synState = st === S_SYN_SENT || st === S_SYN_RCVD;
    const limit = synState ? this.config.maxSynRetransmits : this.config.maxRetransmits;
    if (this.retries >= limit) {
      if (st !== S_SYN_SENT) this.emitRst(this.sndMax, this.rb.nxt, RST | ACK);
      this.closeNow('timeout');
      return;
    }
    this.retries++;
    this.stats.timeouts++;
    this.rtt.backoff();
    this.rttTiming = false;
    this.rtxFirst = false;
    if (synState) {
      this.synPending = true;
    } else {
      this.cc.onRto(seqSub(this.sndMax, this.sndUna), this.sndMax, this.retries > 1);
      this.sndNxt = this.sndUna; // go-back-N (RFC 5681 §3.1, RFC 6298 §5.4)
    }
    this.rtxAt = now + this.rtt.rto;
  }

  private persistInterval(): number {
    const t = this.rtt.rto * 2 ** this.persistBackoff;
    return t < this.config.maxRtoMs ? t : this.config.maxRtoMs;
  }

  private onPersist(now: number): void {
    this.persistAt = Infinity;
    if (this.sndWnd !== 0 || this.sndUna !== this.sndMax) return;
    const st = this.st;
    if (st !== S_ESTAB && st !== S_CLOSE_WAIT) return;
    if (!seqLt(this.sndNxt, seqAdd(this.dataBase, this.sb.length))) return;
    this.stats.windowProbes++;
    this.emitSegment(now, seqAdd(this.sndUna, -1), ACK, 0);
    this.persistBackoff++;
    this.persistAt = now + this.persistInterval();
  }

  private resetKeepalive(now: number): void {
    const idle = this.config.keepaliveIdleMs;
    if (idle <= 0) return;
    this.keepaliveSent = 0;
    this.keepaliveAt = now + idle;
  }

  private onKeepalive(now: number): void {
    this.keepaliveAt = Infinity;
    const cfg = this.config;
    const st = this.st;
    if (cfg.keepaliveIdleMs <= 0 || !(st === S_ESTAB || st === S_CLOSE_WAIT || st === S_FIN_WAIT_2)) return;
    if (this.sndUna !== this.sndMax) {
      this.keepaliveAt = now + cfg.keepaliveIdleMs; // the retransmission timer watches liveness
      return;
    }
    if (this.keepaliveSent >= cfg.keepaliveProbes) {
      this.emitRst(this.sndMax, this.rb.nxt, RST | ACK);
      this.closeNow('timeout');
      return;
    }
    this.keepaliveSent++;
    this.emitSegment(now, seqAdd(this.sndUna, -1), ACK, 0); // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT-1
    this.keepaliveAt = now + cfg.keepaliveIntervalMs;
  }

  private enterTimeWait(now: number): void {
    this.st = S_TIME_WAIT;
    this.timeWaitAt = now + this.config.timeWaitMs;
    this.rtxAt = Infinity;
    this.persistAt = Infinity;
    this.keepaliveAt = Infinity;
    this.trimAt = Infinity;
    this.rtxFirst = false;
    this.sb.reset();
    this.rb.reset();
  }

  private closeNow(reason: TcpCloseReason): void {
    if (this.st === S_CLOSED) return;
    this.st = S_CLOSED;
    this.rtxAt = Infinity;
    this.persistAt = Infinity;
    this.delackAt = Infinity;
    this.timeWaitAt = Infinity;
    this.keepaliveAt = Infinity;
    this.trimAt = Infinity;
    this.ackNow = false;
    this.finAckPending = false;
    this.pureAcks = 0;
    this.rtxFirst = false;
    this.synPending = false;
    this.sb.reset();
    this.rb.reset();
    this.onClosed(reason);
  }
}
