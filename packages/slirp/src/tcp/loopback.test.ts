// Two engines back to back (A: active open, B: passive open from A's SYN) through a simulated
// channel that loses, reorders and duplicates segments, driven by a seeded PRNG and injected time.
// Every byte is verified with SHA-256 in both directions.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { resolveTcpConfig, TcpConnection } from './connection.ts';
import type { TcpCloseReason, TcpConfig } from './connection.ts';
import { TcpFlag } from '@guestnet/core';
import type { TcpOutput, TcpPayloadSource, TcpSegmentIn, TcpSegmentOut } from '@guestnet/core';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Packet {
  at: number;
  order: number;
  toB: boolean;
  seg: TcpSegmentIn;
}

/** Binary min-heap on (at, order). */
class PacketQueue {
  private h: Packet[] = [];
  get size(): number {
    return this.h.length;
  }
  peek(): Packet | undefined {
    return this.h[0];
  }
  private less(a: Packet, b: Packet): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }
  push(p: Packet): void {
    const h = this.h;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const par = (i - 1) >> 1;
      if (!this.less(h[i], h[par])) break;
      [h[i], h[par]] = [h[par], h[i]];
      i = par;
    }
  }
  pop(): Packet {
    const h = this.h;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

interface ChannelOpts {
  loss: number;
  dup: number;
  reorder: number;
  delayMs: number;
  jitterMs: number;
}

class Channel {
  readonly q = new PacketQueue();
  now = 0;
  private order = 0;
  private readonly rnd: () => number;
  private readonly o: ChannelOpts;
  sent = 0;
  lost = 0;
  constructor(seed: number, o: ChannelOpts) {
    this.rnd = mulberry32(seed);
    this.o = o;
  }
  output(toB: boolean): TcpOutput {
    return {
      emit: (h: TcpSegmentOut, len: number, conn: TcpPayloadSource) => {
        const payload = new Uint8Array(len);
        conn.copySendData(h.payloadSeqOffset, payload, 0, len);
        const sack: number[] = [];
        for (let i = 0; i < h.sackCount * 2; i++) sack.push(h.sackBlocks[i]);
        const seg: TcpSegmentIn = {
          seq: h.seq,
          ack: h.ack,
          flags: h.flags,
          window: h.window,
          payload,
          mss: h.mss > 0 ? h.mss : undefined,
          wscale: h.wscale >= 0 ? h.wscale : undefined,
          sackPermitted: h.sackPermitted || undefined,
          tsVal: h.hasTimestamp ? h.tsVal : undefined,
          tsEcr: h.hasTimestamp ? h.tsEcr : undefined,
          sackBlocks: sack.length > 0 ? sack : undefined,
        };
        this.sent++;
        const r = this.rnd;
        if (r() < this.o.loss) {
          this.lost++;
          return;
        }
        const copies = r() < this.o.dup ? 2 : 1;
        for (let i = 0; i < copies; i++) {
          let d = this.o.delayMs + r() * this.o.jitterMs;
          if (r() < this.o.reorder) d += r() * 5;
          this.q.push({ at: this.now + d, order: this.order++, toB, seg });
        }
      },
    };
  }
}

function makeData(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface Side {
  conn: TcpConnection | null;
  data: Uint8Array;
  written: number;
  finSent: boolean;
  hash: ReturnType<typeof createHash>;
  received: number;
  backlog: number;
  peerFin: boolean;
  closed: TcpCloseReason | null;
  established: boolean;
}

interface RunOpts {
  seed: number;
  bytesAtoB: number;
  bytesBtoA: number;
  channel: ChannelOpts;
  cfg?: TcpConfig;
  issA?: number;
  issB?: number;
  /** A drains its host backlog only every 5 ms, 96 KiB at a time (a slow host socket). */
  slowReaderA?: boolean;
  maxSimMs?: number;
}

function run(o: RunOpts) {
  const cfg = resolveTcpConfig({ timeWaitMs: 500, ...o.cfg });
  const ch = new Channel(o.seed, o.channel);
  const mkSide = (seed: number, n: number): Side => ({
    conn: null,
    data: makeData(seed, n),
    written: 0,
    finSent: false,
    hash: createHash('sha256'),
    received: 0,
    backlog: 0,
    peerFin: false,
    closed: null,
    established: false,
  });
  const A = mkSide(o.seed * 7 + 1, o.bytesAtoB);
  const B = mkSide(o.seed * 13 + 5, o.bytesBtoA);
  const wire = (s: Side, c: TcpConnection, slow: boolean) => {
    s.conn = c;
    c.onData = (chunk) => {
      s.hash.update(chunk);
      s.received += chunk.length;
      if (slow) s.backlog += chunk.length;
      else c.consumed(chunk.length);
    };
    c.onPeerFin = () => {
      s.peerFin = true;
    };
    c.onClosed = (r) => {
      s.closed = r;
    };
    c.onEstablished = () => {
      s.established = true;
    };
  };
  const pump = (s: Side) => {
    const c = s.conn;
    if (c === null || !s.established) return;
    while (s.written < s.data.length) {
      const n = c.write(s.data, s.written, Math.min(64 * 1024, s.data.length - s.written));
      if (n === 0) break;
      s.written += n;
    }
    if (s.written === s.data.length && !s.finSent) {
      c.shutdownWrite();
      s.finSent = true;
    }
  };
  const outA = ch.output(true);
  const outB = ch.output(false);
  wire(A, TcpConnection.connect(0, o.issA ?? 0x12345678, cfg, outA), o.slowReaderA ?? false);
  let nextDrain = 5;
  let iterations = 0;
  const limit = o.maxSimMs ?? 3_600_000;
  for (;;) {
    iterations++;
    if (iterations > 5_000_000) throw new Error('simulation did not converge');
    const a = A.conn!;
    const b = B.conn;
    if (A.closed && B.closed) break;
    let t = Infinity;
    const top = ch.q.peek();
    if (top) t = top.at;
    t = Math.min(t, a.nextDeadline());
    if (b) t = Math.min(t, b.nextDeadline());
    if (o.slowReaderA && A.backlog > 0) t = Math.min(t, nextDrain);
    if (t === Infinity) break;
    if (t > limit) throw new Error(`simulated time limit; A ${a.state} B ${b?.state}`);
    ch.now = t;
    const now = t;
    // One batch: every packet due now, then one flush per receiver.
    while (ch.q.size > 0 && ch.q.peek()!.at <= now) {
      const p = ch.q.pop();
      if (p.toB) {
        if (B.conn === null) {
          if (p.seg.flags & TcpFlag.SYN && !(p.seg.flags & TcpFlag.ACK)) {
            wire(B, TcpConnection.acceptSyn(p.seg, now, o.issB ?? 0xcafe0000, cfg, outB, { deferSynAck: false }), false);
          }
          continue;
        }
        B.conn.input(p.seg, now);
      } else {
        a.input(p.seg, now);
      }
    }
    if (o.slowReaderA && now >= nextDrain) {
      const n = Math.min(A.backlog, 96 * 1024);
      A.backlog -= n;
      a.consumed(n);
      nextDrain = now + 5;
    }
    for (const s of [A, B]) {
      const c = s.conn;
      if (c === null) continue;
      if (c.nextDeadline() <= now) c.poll(now);
      pump(s);
      c.flush(now);
    }
  }
  return { A, B, ch, simMs: ch.now, iterations };
}

describe('two engines back to back', () => {
  it('moves 10 MB each way intact through 5% loss, reordering and duplication', () => {
    const size = 10 * 1024 * 1024;
    const r = run({
      seed: 42,
      bytesAtoB: size,
      bytesBtoA: size,
      channel: { loss: 0.05, dup: 0.02, reorder: 0.05, delayMs: 1, jitterMs: 0.5 },
    });
    expect(r.B.received).toBe(size);
    expect(r.A.received).toBe(size);
    expect(r.B.hash.digest('hex')).toBe(sha(r.A.data));
    expect(r.A.hash.digest('hex')).toBe(sha(r.B.data));
    expect(r.A.peerFin && r.B.peerFin).toBe(true);
    expect(r.A.closed).toBe('fin');
    expect(r.B.closed).toBe('fin');
    const sa = r.A.conn!.stats;
    const sb = r.B.conn!.stats;
    expect(sa.retransmits + sb.retransmits).toBeGreaterThan(0);
    expect(sa.fastRetransmits + sb.fastRetransmits).toBeGreaterThan(0);
    expect(sa.oooSegments + sb.oooSegments).toBeGreaterThan(0);
    expect(r.ch.lost).toBeGreaterThan(0);
  });

  it('survives heavy reordering without timestamps or SACK, with a slow host reader on one side', () => {
    const size = 2 * 1024 * 1024;
    const r = run({
      seed: 7,
      bytesAtoB: size,
      bytesBtoA: size,
      channel: { loss: 0.03, dup: 0.05, reorder: 0.3, delayMs: 2, jitterMs: 2 },
      cfg: { timestamps: false, sack: false, recvBufferSize: 128 * 1024 },
      slowReaderA: true,
    });
    expect(r.A.hash.digest('hex')).toBe(sha(r.B.data));
    expect(r.B.hash.digest('hex')).toBe(sha(r.A.data));
    expect(r.A.closed).toBe('fin');
    expect(r.B.closed).toBe('fin');
  });

  it('transfers across sequence-number wrap-around (both ISNs just below 2^32)', () => {
    const size = 1024 * 1024;
    const r = run({
      seed: 99,
      bytesAtoB: size,
      bytesBtoA: size,
      issA: 0xffffff00,
      issB: 0xfffff000,
      channel: { loss: 0.02, dup: 0.01, reorder: 0.05, delayMs: 1, jitterMs: 1 },
    });
    expect(r.B.hash.digest('hex')).toBe(sha(r.A.data));
    expect(r.A.hash.digest('hex')).toBe(sha(r.B.data));
    expect(r.A.closed).toBe('fin');
  });

  it('with GSO-sized segments (64 KiB payloads) on a clean link', () => {
    const size = 8 * 1024 * 1024;
    const r = run({
      seed: 3,
      bytesAtoB: size,
      bytesBtoA: 1000,
      channel: { loss: 0, dup: 0, reorder: 0, delayMs: 0.1, jitterMs: 0 },
      cfg: { maxSegmentPayload: 65000, recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 },
    });
    expect(r.B.hash.digest('hex')).toBe(sha(r.A.data));
    expect(r.A.hash.digest('hex')).toBe(sha(r.B.data));
    expect(r.A.conn!.stats.retransmits).toBe(0);
    // 8 MiB in ≈ 65000-byte segments, not 1448-byte ones.
    expect(r.A.conn!.stats.segsOut).toBeLessThan(1000);
  });

  it('is deterministic for a given seed', () => {
    const o: RunOpts = {
      seed: 5,
      bytesAtoB: 300_000,
      bytesBtoA: 300_000,
      channel: { loss: 0.05, dup: 0.02, reorder: 0.1, delayMs: 1, jitterMs: 1 },
    };
    const r1 = run(o);
    const r2 = run(o);
    expect(r1.simMs).toBe(r2.simMs);
    expect(r1.A.conn!.stats).toEqual(r2.A.conn!.stats);
  });
});
