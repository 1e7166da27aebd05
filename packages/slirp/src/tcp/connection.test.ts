// The engine driven by a scripted guest: each test plays the guest's side segment by segment,
// with injected time, and checks what the engine emits.
import { describe, expect, it } from 'vitest';
import { resolveTcpConfig, TcpConnection } from './connection.ts';
import type { TcpCloseReason, TcpConfig } from './connection.ts';
import { resetFor, TcpFlag, createSegmentOut } from '@guestnet/core';
import type { TcpOutput, TcpPayloadSource, TcpSegmentIn, TcpSegmentOut } from '@guestnet/core';

const { FIN, SYN, RST, PSH, ACK } = TcpFlag;

interface Emitted {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  ts: [number, number] | null;
  sack: number[];
  payload: Uint8Array;
}

class Capture implements TcpOutput {
  segs: Emitted[] = [];
  emit(h: TcpSegmentOut, len: number, conn: TcpPayloadSource): void {
    const payload = new Uint8Array(len);
    conn.copySendData(h.payloadSeqOffset, payload, 0, len);
    this.segs.push({
      seq: h.seq,
      ack: h.ack,
      flags: h.flags,
      window: h.window,
      mss: h.mss,
      wscale: h.wscale,
      sackPermitted: h.sackPermitted,
      ts: h.hasTimestamp ? [h.tsVal, h.tsEcr] : null,
      sack: Array.from(h.sackBlocks.subarray(0, h.sackCount * 2)),
      payload,
    });
  }
  take(): Emitted[] {
    const s = this.segs;
    this.segs = [];
    return s;
  }
}

function seg(p: Partial<TcpSegmentIn> & { seq: number; flags: number }): TcpSegmentIn {
  return { ack: 0, window: 65535, payload: new Uint8Array(0), ...p };
}

const bytes = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const u32 = (n: number): number => n >>> 0;

/**
 * A scripted guest with an established connection. `gSeq` is the guest's next sequence number,
 * `hSeq` the next sequence it expects from the engine.
 */
class Guest {
  readonly cap = new Capture();
  conn!: TcpConnection;
  gSeq: number;
  hSeq = 0;
  now = 0;
  data: Uint8Array[] = [];
  closed: TcpCloseReason | null = null;
  peerFin = 0;
  writable = 0;
  established = 0;
  ts: boolean;
  constructor(gIss = 1000, ts = false) {
    this.gSeq = gIss;
    this.ts = ts;
  }
  attach(c: TcpConnection): void {
    this.conn = c;
    c.onData = (chunk) => this.data.push(chunk.slice());
    c.onClosed = (r) => (this.closed = r);
    c.onPeerFin = () => this.peerFin++;
    c.onWritable = () => this.writable++;
    c.onEstablished = () => this.established++;
  }
  /** Full passive handshake; returns the SYN-ACK. */
  open(cfg: TcpConfig = {}, syn: Partial<TcpSegmentIn> = {}, iss = 5000, window = 65535): Emitted {
    const c = TcpConnection.acceptSyn(
      seg({ seq: this.gSeq, flags: SYN, window: 65535, ...syn }),
      this.now,
      iss,
      resolveTcpConfig(cfg),
      this.cap,
    );
    this.attach(c);
    this.gSeq = u32(this.gSeq + 1);
    c.hostConnected(this.now);
    const [synAck] = this.cap.take();
    this.hSeq = u32(synAck.seq + 1);
    this.now += 10;
    this.send({ window });
    return synAck;
  }
  /** Send a segment with ACK (unless flags override) at `now`; returns input's result. */
  send(p: Partial<TcpSegmentIn> = {}, data?: Uint8Array): boolean {
    const payload = data ?? new Uint8Array(0);
    const s = seg({ seq: this.gSeq, ack: this.hSeq, flags: ACK, payload, ...p });
    if (this.ts && s.tsVal === undefined) {
      s.tsVal = this.now;
      s.tsEcr = 0;
    }
    const r = this.conn.input(s, this.now);
    if (p.seq === undefined) this.gSeq = u32(this.gSeq + payload.length + (s.flags & FIN ? 1 : 0));
    return r;
  }
  flush(): Emitted[] {
    this.conn.flush(this.now);
    return this.cap.take();
  }
  /** Advance to the next deadline and poll. */
  tick(): Emitted[] {
    this.now = this.conn.nextDeadline();
    this.conn.poll(this.now);
    return this.cap.take();
  }
  received(): Uint8Array {
    const n = this.data.reduce((a, b) => a + b.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const d of this.data) {
      out.set(d, o);
      o += d.length;
    }
    return out;
  }
}

describe('handshake', () => {
  it('answers a SYN only after hostConnected, negotiating MSS, window scale, SACK and timestamps', () => {
    const cap = new Capture();
    const cfg = resolveTcpConfig({ mss: 1460, recvBufferSize: 256 * 1024 });
    const syn = seg({ seq: 1000, flags: SYN, window: 64240, mss: 1400, wscale: 7, sackPermitted: true, tsVal: 777, tsEcr: 0 });
    const c = TcpConnection.acceptSyn(syn, 0, 5000, cfg, cap);
    expect(c.state).toBe('SYN-RECEIVED');
    expect(c.awaitingHost).toBe(true);
    expect(cap.take()).toHaveLength(0);
    // A retransmitted SYN while the host connect is pending is absorbed.
    c.input(syn, 1000);
    c.flush(1000);
    expect(cap.take()).toHaveLength(0);
    c.hostConnected(1200);
    const [sa] = cap.take();
    expect(sa.flags).toBe(SYN | ACK);
    expect(sa.seq).toBe(5000);
    expect(sa.ack).toBe(1001);
    expect(sa.mss).toBe(1460);
    expect(sa.wscale).toBe(3); // 65535·2^3 ≥ 256 KiB
    expect(sa.sackPermitted).toBe(true);
    expect(sa.ts).toEqual([1200, 777]);
    expect(sa.window).toBe(65535); // SYN windows are not scaled
    let est = 0;
    c.onEstablished = () => est++;
    c.input(seg({ seq: 1001, ack: 5001, flags: ACK, window: 1000, tsVal: 790, tsEcr: 1200 }), 1210);
    expect(c.state).toBe('ESTABLISHED');
    expect(est).toBe(1);
    expect(c.peerWindow).toBe(128_000); // 1000 << 7
    expect(c.sendMss).toBe(1400 - 12); // timestamps take 12 option bytes
    expect(c.timestampsEnabled).toBe(true);
    expect(c.sackEnabled).toBe(true);
    expect(c.srtt).toBe(10); // from the timestamp echo
  });

  it('offers no options the guest did not offer, and assumes MSS 536', () => {
    const g = new Guest();
    const sa = g.open({}, { mss: undefined });
    expect(sa.wscale).toBe(-1);
    expect(sa.sackPermitted).toBe(false);
    expect(sa.ts).toBeNull();
    expect(sa.mss).toBe(1460);
    expect(g.conn.sendMss).toBe(536);
    expect(g.conn.sndWindowScale).toBe(0);
    expect(g.conn.rcvWindowScale).toBe(0);
    expect(g.conn.state).toBe('ESTABLISHED');
  });

  it('answers at once when deferral is off', () => {
    const cap = new Capture();
    const c = TcpConnection.acceptSyn(seg({ seq: 1, flags: SYN }), 0, 9, resolveTcpConfig(), cap, { deferSynAck: false });
    expect(cap.take().map((s) => s.flags)).toEqual([SYN | ACK]);
    expect(c.awaitingHost).toBe(false);
  });

  it('sends RST|ACK and closes when the host refuses', () => {
    const cap = new Capture();
    const c = TcpConnection.acceptSyn(seg({ seq: 4242, flags: SYN }), 0, 9, resolveTcpConfig(), cap);
    let reason: TcpCloseReason | null = null;
    c.onClosed = (r) => (reason = r);
    c.hostRefused();
    const [rst] = cap.take();
    expect(rst.flags).toBe(RST | ACK);
    expect(rst.seq).toBe(0);
    expect(rst.ack).toBe(4243);
    expect(c.state).toBe('CLOSED');
    expect(reason).toBe('aborted');
  });

  it('retransmits the SYN-ACK when the guest repeats its SYN, and by RTO', () => {
    const cap = new Capture();
    const syn = seg({ seq: 10, flags: SYN });
    const c = TcpConnection.acceptSyn(syn, 0, 9, resolveTcpConfig(), cap);
    c.hostConnected(0);
    expect(cap.take()).toHaveLength(1);
    c.input(syn, 50);
    c.flush(50);
    expect(cap.take().map((s) => s.flags)).toEqual([SYN | ACK]);
    expect(c.nextDeadline()).toBe(1000); // initial RTO 1 s
    c.poll(1000);
    expect(cap.take().map((s) => s.flags)).toEqual([SYN | ACK]);
    expect(c.nextDeadline()).toBe(3000); // backed off to 2 s
  });

  it('opens actively (hostfwd): SYN with our options, ACK on SYN-ACK', () => {
    const cap = new Capture();
    const c = TcpConnection.connect(0, 0xfffffffe, resolveTcpConfig(), cap);
    const [s] = cap.take();
    expect(s.flags).toBe(SYN);
    expect(s.seq).toBe(0xfffffffe);
    expect(s.mss).toBe(1460);
    expect(s.wscale).toBe(3);
    expect(s.sackPermitted).toBe(true);
    expect(s.ts).toEqual([0, 0]);
    expect(c.state).toBe('SYN-SENT');
    c.input(seg({ seq: 300, ack: 0xffffffff, flags: SYN | ACK, window: 29200, mss: 1460, wscale: 7, tsVal: 55, tsEcr: 0 }), 5);
    expect(c.state).toBe('ESTABLISHED');
    c.flush(5);
    const [a] = cap.take();
    expect(a.flags).toBe(ACK);
    expect(a.seq).toBe(0xffffffff);
    expect(a.ack).toBe(301);
    expect(a.ts).toEqual([5, 55]);
    expect(c.sackEnabled).toBe(false); // the SYN-ACK did not carry SACK-permitted
    expect(c.sndWindowScale).toBe(7);
  });

  it('closes with reset when the guest refuses an active open', () => {
    const cap = new Capture();
    const c = TcpConnection.connect(0, 100, resolveTcpConfig(), cap);
    let reason: TcpCloseReason | null = null;
    c.onClosed = (r) => (reason = r);
    // An RST without an acceptable ACK is ignored…
    c.input(seg({ seq: 0, ack: 555, flags: RST | ACK }), 1);
    expect(c.state).toBe('SYN-SENT');
    c.input(seg({ seq: 0, ack: 101, flags: RST | ACK }), 1);
    expect(reason).toBe('reset');
  });

  it('gives up an unanswered active open after maxSynRetransmits', () => {
    const cap = new Capture();
    const c = TcpConnection.connect(0, 100, resolveTcpConfig({ maxSynRetransmits: 2 }), cap);
    let reason: TcpCloseReason | null = null;
    c.onClosed = (r) => (reason = r);
    const times: number[] = [];
    while (c.state !== 'CLOSED') {
      const t = c.nextDeadline();
      times.push(t);
      c.poll(t);
    }
    expect(times).toEqual([1000, 3000, 7000]);
    expect(cap.take().map((s) => s.flags)).toEqual([SYN, SYN, SYN]);
    expect(reason).toBe('timeout');
  });
});

describe('guest → host data and ACKs', () => {
  it('coalesces a batch of 10 segments into one ACK after flush', () => {
    const g = new Guest(1000, true);
    g.open({}, { mss: 1460, tsVal: 1, wscale: 7, sackPermitted: true });
    g.cap.take();
    for (let i = 0; i < 10; i++) g.send({}, bytes(1448, i * 1448));
    expect(g.cap.segs).toHaveLength(0); // nothing emitted during input
    const acks = g.flush();
    expect(acks).toHaveLength(1);
    expect(acks[0].ack).toBe(u32(g.gSeq));
    expect(g.received()).toEqual(bytes(14480));
  });

  it('delays the ACK of a lone segment by 40 ms, but ACKs a PSH segment at once', () => {
    const g = new Guest();
    g.open();
    g.send({}, bytes(100));
    expect(g.flush()).toHaveLength(0);
    expect(g.conn.nextDeadline()).toBe(g.now + 40);
    const t0 = g.now;
    const late = g.tick();
    expect(g.now).toBe(t0 + 40);
    expect(late).toHaveLength(1);
    expect(late[0].ack).toBe(g.gSeq);
    g.send({ flags: ACK | PSH }, bytes(10));
    expect(g.flush().map((s) => s.ack)).toEqual([g.gSeq]);
  });

  it('piggybacks the ACK on host data instead of a separate segment', () => {
    const g = new Guest();
    g.open();
    g.send({ flags: ACK | PSH }, bytes(50));
    g.conn.write(bytes(20));
    const out = g.flush();
    expect(out).toHaveLength(1);
    expect(out[0].payload).toHaveLength(20);
    expect(out[0].ack).toBe(g.gSeq);
  });

  it('with pshAckDelayMs the ACK of a PSH segment waits for host data to ride on, or for its timer', () => {
    const g = new Guest();
    g.open({ pshAckDelayMs: 1 });
    g.send({ flags: ACK | PSH }, bytes(10));
    expect(g.flush()).toHaveLength(0);
    expect(g.conn.nextDeadline()).toBe(g.now + 1);
    g.conn.write(bytes(3));
    const out = g.flush();
    expect(out.map((s) => [s.ack, s.payload.length])).toEqual([[g.gSeq, 3]]);
    // No answer within the delay: a bare ACK when the timer expires.
    g.send({ flags: ACK | PSH, ack: u32(g.hSeq + 3) }, bytes(10));
    g.hSeq = u32(g.hSeq + 3);
    expect(g.flush()).toHaveLength(0);
    const t0 = g.now;
    const late = g.tick();
    expect(g.now).toBe(t0 + 1);
    expect(late.map((s) => [s.flags, s.ack])).toEqual([[ACK, g.gSeq]]);
  });

  it('forces no bare window update while the guest has two segments of window left', () => {
    const g = new Guest();
    g.open({ recvBufferSize: 256 * 1024 }, { wscale: 7 });
    // The SYN-ACK advertised 64 KiB (unscaled); the host taking the first bytes could open it to
    // 256 KiB, but the guest is far from blocked: nothing is sent for that alone.
    g.send({}, bytes(100));
    g.conn.setHostBacklog(0);
    expect(g.flush()).toHaveLength(0);
    // The ACK that does go out (here: the delayed-ACK timer) carries the larger window.
    const late = g.tick();
    expect(late).toHaveLength(1);
    expect(late[0].window * 2 ** g.conn.rcvWindowScale).toBeGreaterThan(65535);
  });

  it('buffers out-of-order data, SACKs it, and delivers it in order once the hole fills', () => {
    const g = new Guest(1000, true);
    g.open({}, { mss: 1460, tsVal: 1, sackPermitted: true });
    g.cap.take();
    const base = g.gSeq;
    const d = bytes(3000);
    g.send({ seq: u32(base + 1000) }, d.subarray(1000, 2000));
    let out = g.flush();
    expect(out).toHaveLength(1);
    expect(out[0].ack).toBe(base);
    expect(out[0].sack).toEqual([base + 1000, base + 2000]);
    g.send({ seq: u32(base + 2000) }, d.subarray(2000, 3000));
    out = g.flush();
    expect(out[0].sack).toEqual([base + 1000, base + 3000]);
    expect(g.data).toHaveLength(0);
    g.send({ seq: base }, d.subarray(0, 1000));
    out = g.flush();
    expect(out).toHaveLength(1);
    expect(out[0].ack).toBe(base + 3000);
    expect(out[0].sack).toEqual([]);
    expect(g.received()).toEqual(d);
    expect(g.conn.stats.oooSegments).toBe(2);
    expect(g.conn.stats.oooBytes).toBe(2000);
  });

  it('ACKs and drops a duplicate segment without delivering it twice', () => {
    const g = new Guest();
    g.open();
    const base = g.gSeq;
    g.send({ flags: ACK | PSH }, bytes(100));
    g.flush();
    g.send({ seq: base, flags: ACK | PSH }, bytes(100));
    const out = g.flush();
    expect(out).toHaveLength(1);
    expect(out[0].ack).toBe(base + 100);
    expect(g.received()).toHaveLength(100);
    expect(g.conn.stats.dropDuplicate).toBe(1);
  });

  it('drops and counts bytes beyond the advertised window, and reopens when the host consumes', () => {
    const g = new Guest();
    g.open({ recvBufferSize: 4096 });
    g.cap.take();
    expect(g.conn.rcvWindow).toBe(4096);
    // The guest ignores the window: 5 × 1000 bytes into a 4096-byte window.
    for (let i = 0; i < 5; i++) g.send({}, bytes(1000, i * 1000));
    const out = g.flush();
    expect(g.received()).toEqual(bytes(4096));
    expect(g.conn.stats.dropBeyondWindowBytes).toBe(904);
    expect(g.conn.stats.dropBeyondWindow).toBe(1);
    expect(out.at(-1)!.window).toBe(0);
    expect(out.at(-1)!.ack).toBe(u32(g.gSeq - 5000 + 4096));
    // The host drains: a window update goes out at the next flush.
    g.conn.consumed(4096);
    const upd = g.flush();
    expect(upd).toHaveLength(1);
    expect(upd[0].window).toBe(4096);
  });

  it('with setHostBacklog the window is the buffer minus the backlog', () => {
    const g = new Guest();
    g.open({ recvBufferSize: 8192 }, { mss: 1460 });
    for (let i = 0; i < 4; i++) g.send({ flags: ACK | PSH }, bytes(1500));
    g.conn.setHostBacklog(6000);
    expect(g.flush()[0].window).toBe(8192 - 6000);
    // Draining by less than one MSS is not worth a window update (receiver SWS avoidance)…
    g.conn.setHostBacklog(5000);
    expect(g.flush()).toHaveLength(0);
    // …draining it all is.
    g.conn.setHostBacklog(0);
    expect(g.flush()[0].window).toBe(8192);
  });

  it('scales large windows (4 MiB buffer → shift 7)', () => {
    const g = new Guest();
    const sa = g.open({ recvBufferSize: 4 * 1024 * 1024 }, { wscale: 9 }, 5000, 100);
    expect(sa.wscale).toBe(7);
    expect(g.conn.peerWindow).toBe(100 * 512);
    g.send({ flags: ACK | PSH }, bytes(128));
    const [a] = g.flush();
    // 4 MiB − 128 unconsumed bytes, in units of 128.
    expect(a.window).toBe((4 * 1024 * 1024 - 128) / 128);
    g.conn.consumed(128);
  });
});

describe('host → guest data', () => {
  it('sends within the guest window and the MSS, holding back a runt', () => {
    const g = new Guest();
    g.open({}, { mss: 1000 }, 5000, 2500);
    g.cap.take();
    expect(g.conn.write(bytes(10_000))).toBe(10_000);
    const out = g.flush();
    expect(out.map((s) => s.payload.length)).toEqual([1000, 1000]); // 500 left in the window: SWS
    expect(out[0].payload).toEqual(bytes(1000));
    expect(out[1].seq).toBe(u32(out[0].seq + 1000));
    // The guest ACKs 2000 and opens to 4000.
    g.send({ ack: u32(g.hSeq + 2000), window: 4000 });
    const more = g.flush();
    expect(more.map((s) => s.payload.length)).toEqual([1000, 1000, 1000, 1000]);
    expect(more[0].payload).toEqual(bytes(1000, 2000));
  });

  it('bounds the send buffer: write takes only what fits, onWritable fires when it drains', () => {
    const g = new Guest();
    g.open({ sendBufferSize: 4096 }, { mss: 1460 });
    expect(g.conn.write(bytes(10_000))).toBe(4096);
    expect(g.conn.sendFree).toBe(0);
    expect(g.conn.write(bytes(10))).toBe(0);
    const out = g.flush();
    const sent = out.reduce((a, s) => a + s.payload.length, 0);
    expect(sent).toBe(4096);
    expect(g.writable).toBe(0);
    g.send({ ack: u32(g.hSeq + 4096) });
    expect(g.writable).toBe(1);
    expect(g.conn.sendFree).toBe(4096);
  });

  it('retransmits after the RTO with exponential backoff (200, 400, 800 ms) and keeps it per Karn', () => {
    const g = new Guest();
    g.open(); // handshake RTT sample 10 ms → RTO = 200 ms floor
    expect(g.conn.rto).toBe(200);
    g.now = 100;
    g.conn.write(bytes(100));
    const [first] = g.flush();
    expect(first.payload).toHaveLength(100);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const out = g.tick();
      times.push(g.now);
      expect(out).toHaveLength(1);
      expect(out[0].seq).toBe(first.seq);
      expect(out[0].payload).toEqual(first.payload);
    }
    expect(times).toEqual([300, 700, 1500]);
    expect(g.conn.nextDeadline()).toBe(1500 + 1600);
    expect(g.conn.stats.timeouts).toBe(3);
    expect(g.conn.stats.retransmits).toBe(3);
    // The ACK of a retransmitted segment gives no RTT sample: the backoff stays (Karn).
    g.now = 1510;
    g.send({ ack: u32(first.seq + 100) });
    expect(g.conn.rto).toBe(1600);
    expect(g.conn.nextDeadline()).toBe(1510 + 1000); // no retransmission left: only the idle-trim timer
    // A fresh segment, acked without retransmission, resets it.
    g.conn.write(bytes(10));
    g.flush();
    g.now = 1520;
    g.send({ ack: u32(first.seq + 110) });
    expect(g.conn.rto).toBe(200);
  });

  it('gives up after maxRetransmits with RST and onClosed(timeout)', () => {
    const g = new Guest();
    g.open({ maxRetransmits: 2 });
    g.conn.write(bytes(10));
    g.flush();
    g.tick();
    g.tick();
    const last = g.tick();
    expect(last.map((s) => s.flags)).toEqual([RST | ACK]);
    expect(g.closed).toBe('timeout');
  });

  it('fast-retransmits on the third duplicate ACK and deflates cwnd on recovery', () => {
    const g = new Guest();
    g.open({}, { mss: 1000 }, 5000, 60000);
    g.conn.write(bytes(5000));
    const out = g.flush();
    expect(out).toHaveLength(5);
    const s0 = out[0].seq;
    g.send({ ack: u32(s0 + 1000), window: 60000 });
    expect(g.flush()).toHaveLength(0);
    for (let i = 0; i < 2; i++) g.send({ ack: u32(s0 + 1000), window: 60000 });
    expect(g.flush()).toHaveLength(0);
    g.send({ ack: u32(s0 + 1000), window: 60000 });
    const rtx = g.flush();
    expect(rtx).toHaveLength(1);
    expect(rtx[0].seq).toBe(u32(s0 + 1000));
    expect(rtx[0].payload).toEqual(bytes(1000, 1000));
    expect(g.conn.stats.dupAcks).toBe(3);
    expect(g.conn.stats.fastRetransmits).toBe(1);
    // ssthresh = max(flight/2, 2·MSS) = 2000; cwnd = ssthresh + 3·MSS.
    expect(g.conn.ssthresh).toBe(2000);
    expect(g.conn.cwnd).toBe(5000);
    // A partial ACK retransmits the next hole at once (RFC 6582).
    g.send({ ack: u32(s0 + 2000), window: 60000 });
    const part = g.flush();
    expect(part[0].seq).toBe(u32(s0 + 2000));
    // The full ACK ends recovery.
    g.send({ ack: u32(s0 + 5000), window: 60000 });
    expect(g.conn.cwnd).toBeLessThanOrEqual(2000);
    expect(g.conn.sendQueued).toBe(0);
  });

  it('probes a zero window with backoff and resumes when it opens', () => {
    const g = new Guest();
    g.open({}, { mss: 1000 }, 5000, 0);
    g.cap.take();
    expect(g.conn.peerWindow).toBe(0);
    g.conn.write(bytes(300));
    expect(g.flush()).toHaveLength(0);
    const t0 = g.now;
    expect(g.conn.nextDeadline()).toBe(t0 + 200);
    let p = g.tick();
    expect(p).toHaveLength(1);
    expect(p[0].seq).toBe(u32(g.hSeq - 1)); // SND.UNA − 1, no data: forces an ACK from the guest
    expect(p[0].payload).toHaveLength(0);
    expect(g.conn.nextDeadline()).toBe(g.now + 400);
    g.send({ window: 0 });
    expect(g.flush()).toHaveLength(0);
    p = g.tick();
    expect(p).toHaveLength(1);
    expect(g.conn.nextDeadline()).toBe(g.now + 800);
    expect(g.conn.stats.windowProbes).toBe(2);
    g.send({ window: 1000 });
    const data = g.flush();
    expect(data).toHaveLength(1);
    expect(data[0].payload).toEqual(bytes(300));
    expect(g.conn.stats.retransmits).toBe(0);
  });
});

describe('closing', () => {
  it('half-close by the guest: onPeerFin, host data still flows, then FIN and LAST-ACK', () => {
    const g = new Guest();
    g.open();
    g.send({ flags: ACK | FIN });
    expect(g.peerFin).toBe(1);
    expect(g.conn.state).toBe('CLOSE-WAIT');
    expect(g.flush().map((s) => [s.flags, s.ack])).toEqual([[ACK, g.gSeq]]);
    g.conn.write(bytes(500));
    const d = g.flush();
    expect(d[0].payload).toEqual(bytes(500));
    g.send({ ack: u32(g.hSeq + 500) });
    g.hSeq = u32(g.hSeq + 500);
    g.conn.shutdownWrite();
    const f = g.flush();
    expect(f.map((s) => s.flags)).toEqual([ACK | FIN]);
    expect(g.conn.state).toBe('LAST-ACK');
    g.send({ ack: u32(g.hSeq + 1) });
    expect(g.closed).toBe('fin');
    expect(g.conn.state).toBe('CLOSED');
  });

  it('with finAckDelayMs the ACK of the guest FIN rides on our FIN when the host closes in time', () => {
    const g = new Guest();
    g.open({ finAckDelayMs: 2 });
    g.send({ flags: ACK | FIN });
    expect(g.peerFin).toBe(1);
    expect(g.flush()).toHaveLength(0);
    expect(g.conn.nextDeadline()).toBe(g.now + 2);
    g.now += 1;
    g.conn.shutdownWrite();
    expect(g.flush().map((s) => [s.flags, s.ack])).toEqual([[ACK | FIN, g.gSeq]]);
    expect(g.conn.state).toBe('LAST-ACK');
    g.send({ ack: u32(g.hSeq + 1) });
    expect(g.closed).toBe('fin');
  });

  it('with finAckDelayMs the guest FIN is ACKed by the timer while the host keeps its side open', () => {
    const g = new Guest();
    g.open({ finAckDelayMs: 2 });
    g.send({ flags: ACK | FIN });
    expect(g.flush()).toHaveLength(0);
    const t0 = g.now;
    expect(g.tick().map((s) => [s.flags, s.ack])).toEqual([[ACK, g.gSeq]]);
    expect(g.now).toBe(t0 + 2);
    expect(g.conn.state).toBe('CLOSE-WAIT');
  });

  it('half-close by the host: FIN after queued data, guest data still delivered, TIME-WAIT then closed', () => {
    const g = new Guest();
    g.open({ timeWaitMs: 1500 }, { mss: 1460 });
    g.conn.write(bytes(700));
    g.conn.shutdownWrite();
    expect(g.conn.write(bytes(1))).toBe(0);
    const out = g.flush();
    expect(out).toHaveLength(1);
    expect(out[0].flags).toBe(ACK | PSH | FIN);
    expect(out[0].payload).toHaveLength(700);
    expect(g.conn.state).toBe('FIN-WAIT-1');
    g.send({ ack: u32(g.hSeq + 701) });
    expect(g.conn.state).toBe('FIN-WAIT-2');
    g.hSeq = u32(g.hSeq + 701);
    g.send({ flags: ACK | PSH }, bytes(300));
    expect(g.received()).toEqual(bytes(300));
    g.send({ flags: ACK | FIN });
    expect(g.conn.state).toBe('TIME-WAIT');
    expect(g.flush().map((s) => s.ack)).toEqual([g.gSeq]);
    expect(g.conn.nextDeadline()).toBe(g.now + 1500);
    // A retransmitted FIN is re-acknowledged and restarts the timer.
    g.now += 100;
    g.send({ seq: u32(g.gSeq - 1), flags: ACK | FIN });
    expect(g.flush()).toHaveLength(1);
    expect(g.conn.nextDeadline()).toBe(g.now + 1500);
    g.tick();
    expect(g.closed).toBe('fin');
  });

  it('simultaneous close goes through CLOSING', () => {
    const g = new Guest();
    g.open();
    g.conn.shutdownWrite();
    g.flush();
    g.send({ flags: ACK | FIN }); // the guest's FIN crosses ours (acks nothing new)
    expect(g.conn.state).toBe('CLOSING');
    g.send({ ack: u32(g.hSeq + 1) });
    expect(g.conn.state).toBe('TIME-WAIT');
  });

  it('lets a new SYN take over a 4-tuple in TIME-WAIT', () => {
    const g = new Guest();
    g.open();
    g.conn.shutdownWrite();
    g.flush();
    g.send({ ack: u32(g.hSeq + 1), flags: ACK | FIN });
    expect(g.conn.state).toBe('TIME-WAIT');
    expect(g.conn.input(seg({ seq: u32(g.gSeq + 100000), flags: SYN }), g.now)).toBe(false);
    expect(g.closed).toBe('fin');
  });
});

describe('resets', () => {
  it('closes on an RST at exactly RCV.NXT', () => {
    const g = new Guest();
    g.open();
    g.send({ flags: RST });
    expect(g.closed).toBe('reset');
    expect(g.flush()).toHaveLength(0);
  });

  it('answers an in-window but inexact RST with a challenge ACK (RFC 5961) and stays up', () => {
    const g = new Guest();
    g.open();
    g.send({ seq: u32(g.gSeq + 10), flags: RST });
    expect(g.conn.state).toBe('ESTABLISHED');
    const out = g.flush();
    expect(out.map((s) => [s.flags, s.ack])).toEqual([[ACK, g.gSeq]]);
    expect(g.conn.stats.challengeAcks).toBe(1);
    // Out of the window: silently dropped.
    g.send({ seq: u32(g.gSeq + 10_000_000), flags: RST });
    expect(g.flush()).toHaveLength(0);
    expect(g.conn.state).toBe('ESTABLISHED');
  });

  it('answers a SYN on an established connection with a challenge ACK', () => {
    const g = new Guest();
    g.open();
    g.send({ seq: 77, flags: SYN });
    expect(g.conn.state).toBe('ESTABLISHED');
    expect(g.flush().map((s) => s.flags)).toEqual([ACK]);
  });

  it('abort() sends RST|ACK and reports aborted', () => {
    const g = new Guest();
    g.open();
    g.conn.abort();
    const [r] = g.cap.take();
    expect(r.flags).toBe(RST | ACK);
    expect(r.seq).toBe(g.hSeq);
    expect(r.ack).toBe(g.gSeq);
    expect(g.closed).toBe('aborted');
  });

  it('drops ACKs for data never sent and answers with an ACK', () => {
    const g = new Guest();
    g.open();
    g.send({ ack: u32(g.hSeq + 5000), flags: ACK | PSH }, bytes(10));
    expect(g.data).toHaveLength(0);
    expect(g.conn.stats.dropBadAck).toBe(1);
    expect(g.flush()).toHaveLength(1);
  });

  it('resetFor builds the RFC 9293 reply for segments with no connection', () => {
    const h = createSegmentOut();
    expect(resetFor(seg({ seq: 10, flags: SYN }), h)).toBe(true);
    expect([h.seq, h.ack, h.flags]).toEqual([0, 11, RST | ACK]);
    expect(resetFor(seg({ seq: 10, ack: 99, flags: ACK, payload: bytes(5) }), h)).toBe(true);
    expect([h.seq, h.flags]).toEqual([99, RST]);
    expect(resetFor(seg({ seq: 10, flags: RST }), h)).toBe(false);
  });
});

describe('timestamps', () => {
  it('drops an old duplicate by PAWS', () => {
    const g = new Guest(1000, true);
    g.open({}, { tsVal: 1 });
    g.send({ flags: ACK | PSH, tsVal: 500 }, bytes(10));
    g.flush();
    g.send({ flags: ACK | PSH, tsVal: 400 }, bytes(10));
    expect(g.conn.stats.dropPaws).toBe(1);
    expect(g.received()).toHaveLength(10);
  });
});

describe('sequence wrap-around', () => {
  it('exchanges data across 2^32 in both directions', () => {
    const g = new Guest(0xfffffff0);
    g.open({}, { mss: 1000 }, 0xffffff00);
    const up = bytes(3000, 7);
    for (let i = 0; i < 3; i++) g.send({}, up.subarray(i * 1000, i * 1000 + 1000));
    const acks = g.flush();
    expect(acks.at(-1)!.ack).toBe(u32(0xfffffff1 + 3000));
    expect(g.received()).toEqual(up);
    g.conn.write(bytes(3000, 9));
    const out = g.flush();
    const got = new Uint8Array(3000);
    let o = 0;
    for (const s of out) {
      expect(s.seq).toBe(u32(0xffffff01 + o));
      got.set(s.payload, o);
      o += s.payload.length;
    }
    expect(got).toEqual(bytes(3000, 9));
    g.send({ ack: u32(0xffffff01 + 3000) });
    expect(g.conn.sendQueued).toBe(0);
    expect(g.conn.nextDeadline()).not.toBe(g.now + 200);
  });
});

describe('memory', () => {
  it('1000 idle connections hold no buffer storage once their data is acked', () => {
    const gs: Guest[] = [];
    for (let i = 0; i < 1000; i++) {
      const g = new Guest(i * 100000);
      g.open({ idleTrimMs: 1000 });
      expect(g.conn.bufferBytes).toBe(0);
      g.conn.write(bytes(3000));
      g.flush();
      g.send({ ack: u32(g.hSeq + 3000), flags: ACK | PSH }, bytes(10));
      g.flush();
      gs.push(g);
    }
    expect(gs[0].conn.bufferBytes).toBeGreaterThan(0);
    let total = 0;
    for (const g of gs) {
      while (g.conn.nextDeadline() !== Infinity) g.tick();
      total += g.conn.bufferBytes;
      expect(g.conn.state).toBe('ESTABLISHED');
    }
    expect(total).toBe(0);
  });
});

describe('keepalive', () => {
  it('probes an idle guest and times out when unanswered', () => {
    const g = new Guest();
    g.open({ keepaliveIdleMs: 10_000, keepaliveIntervalMs: 1000, keepaliveProbes: 2 });
    const t0 = g.now;
    let p = g.tick();
    expect(g.now).toBe(t0 + 10_000);
    expect(p.map((s) => [s.seq, s.flags])).toEqual([[u32(g.hSeq - 1), ACK]]);
    p = g.tick();
    expect(p).toHaveLength(1);
    p = g.tick();
    expect(p.map((s) => s.flags)).toEqual([RST | ACK]);
    expect(g.closed).toBe('timeout');
  });
});
