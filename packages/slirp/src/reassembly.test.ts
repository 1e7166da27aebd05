/**
 * Tests for reassembly.ts: IPv4/IPv6 fragment reassembly, its limits, and the attack shapes it
 * must drop and count (overlap, oversize, misaligned, conflicting ends, tiny fragments, floods,
 * timeouts). Fragments are built with the wire emitters and fed at an Ethernet offset of 14.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { emitIpv4, emitIpv6, Ipv6View, Ipv6ExtInfo, walkIpv6Headers } from '@guestnet/wire';
import { ENTRY_OVERHEAD, FragDrop, Reassembler } from './reassembly.ts';
import type { ReassemblerOptions } from './reassembly.ts';

const ETH = 14;
const SRC4 = 0x0a00020f; // 10.0.2.15
const DST4 = 0x5db8d822; // 93.184.216.34
const SRC6 = Uint8Array.of(0xfe, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x15);
const DST6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const UDP = 17;
const TCP = 6;

interface Frag4 {
  off: number;
  more: boolean;
  data: Uint8Array;
  id?: number;
  proto?: number;
  ttl?: number;
  src?: number;
  options?: Uint8Array;
}

/** An Ethernet-framed IPv4 fragment (the Ethernet header is left zero: only its length matters). */
function frag4(f: Frag4): Uint8Array {
  const hl = 20 + (f.options ? (f.options.length + 3) & ~3 : 0);
  const frame = new Uint8Array(ETH + hl + f.data.length);
  emitIpv4(
    {
      src: f.src ?? SRC4,
      dst: DST4,
      protocol: f.proto ?? UDP,
      payloadLen: f.data.length,
      ttl: f.ttl ?? 64,
      ident: f.id ?? 0x1234,
      moreFragments: f.more,
      fragmentOffset: f.off,
      options: f.options,
    },
    frame,
    ETH,
  );
  frame.set(f.data, ETH + hl);
  return frame;
}

interface Frag6 {
  off: number;
  more: boolean;
  data: Uint8Array;
  id?: number;
  nh?: number;
  hopLimit?: number;
  /** Unfragmentable extension headers (each a multiple of 8 bytes, Next Header byte first). */
  unfrag?: Uint8Array;
}

/** An Ethernet-framed IPv6 fragment; returns the frame and the Fragment header's offset. */
function frag6(f: Frag6): { frame: Uint8Array; fragOff: number } {
  const unfrag = f.unfrag ?? new Uint8Array(0);
  const frame = new Uint8Array(ETH + 40 + unfrag.length + 8 + f.data.length);
  emitIpv6(
    {
      src: SRC6,
      dst: DST6,
      nextHeader: unfrag.length ? 0 : 44,
      payloadLen: unfrag.length + 8 + f.data.length,
      hopLimit: f.hopLimit ?? 64,
    },
    frame,
    ETH,
  );
  frame.set(unfrag, ETH + 40);
  const fh = ETH + 40 + unfrag.length;
  const id = f.id ?? 0xdeadbeef;
  frame[fh] = f.nh ?? UDP;
  frame[fh + 1] = 0;
  frame[fh + 2] = f.off >>> 8;
  frame[fh + 3] = (f.off & 0xf8) | (f.more ? 1 : 0);
  frame[fh + 4] = id >>> 24;
  frame[fh + 5] = id >>> 16;
  frame[fh + 6] = id >>> 8;
  frame[fh + 7] = id;
  frame.set(f.data, fh + 8);
  return { frame, fragOff: fh };
}

/** A Hop-by-Hop header (8 bytes, PadN) whose Next Header is the Fragment header. */
const HBH = Uint8Array.of(44, 0, 1, 4, 0, 0, 0, 0);

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x >>> 24;
  }
  return b;
}

/** Split `data` into fragments carrying `size` bytes each (size a multiple of 8). */
function split(data: Uint8Array, size: number): { off: number; more: boolean; data: Uint8Array }[] {
  const out = [];
  for (let off = 0; off < data.length; off += size) {
    const end = Math.min(off + size, data.length);
    out.push({ off, more: end < data.length, data: data.slice(off, end) });
  }
  return out;
}

function shuffle<T>(a: T[], seed: number): T[] {
  const r = a.slice();
  let x = seed;
  for (let i = r.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % (i + 1);
    [r[i], r[j]] = [r[j]!, r[i]!];
  }
  return r;
}

function setup(o: Partial<ReassemblerOptions> = {}) {
  const drops = new Map<string, number>();
  const r = new Reassembler({
    maxBytes: 1 << 20,
    maxDatagrams: 64,
    drop: (reason, n) => drops.set(reason, (drops.get(reason) ?? 0) + n),
    ...o,
  });
  return { r, drops };
}

describe('reassembly.ts › IPv4', () => {
  const data = pattern(60_000);
  const frags = split(data, 1480);
  const orders: [string, typeof frags][] = [
    ['in order', frags],
    ['in reverse order', frags.slice().reverse()],
    ['shuffled', shuffle(frags, 7)],
  ];
  for (const [name, list] of orders) {
    it(`reassembles a 60 KB datagram from 1480-byte fragments ${name}, byte-exact`, () => {
      const { r, drops } = setup();
      let done = null;
      for (let i = 0; i < list.length; i++) {
        const f = list[i]!;
        const out = r.add4(frag4({ ...f, ttl: f.off === 0 ? 17 : 99 }), ETH, 1000 + i);
        if (i < list.length - 1) expect(out).toBeNull();
        else done = out;
      }
      expect(done).not.toBeNull();
      expect(done!.payload).toEqual(data);
      expect(done!.family).toBe(4);
      expect(done!.src).toBe(SRC4);
      expect(done!.dst).toBe(DST4);
      expect(done!.protocol).toBe(UDP);
      expect(done!.id).toBe(0x1234);
      expect(done!.ttl).toBe(17); // from the offset-zero fragment
      expect(done!.header.length).toBe(20);
      expect(drops.size).toBe(0);
      expect(r.stats()).toEqual({ bytes: 0, datagrams: 0, reassembled: 1 });
      expect(r.nextDeadline()).toBe(Infinity);
    });
  }

  it('passes an unfragmented packet straight through without holding anything', () => {
    const { r, drops } = setup({ maxBytes: 0 });
    const out = r.add4(frag4({ off: 0, more: false, data: pattern(100) }), ETH, 0);
    expect(out!.payload).toEqual(pattern(100));
    expect(r.stats().datagrams).toBe(0);
    expect(drops.size).toBe(0);
  });

  it('drops every fragment as frag-disabled when maxBytes is 0', () => {
    const { r, drops } = setup({ maxBytes: 0 });
    expect(r.add4(frag4({ off: 0, more: true, data: pattern(64) }), ETH, 0)).toBeNull();
    expect(r.add4(frag4({ off: 64, more: false, data: pattern(8) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.DISABLED)).toBe(2);
    expect(r.stats().bytes).toBe(0);
  });

  it('keeps datagrams apart by id, protocol and source', () => {
    const { r } = setup();
    const a = pattern(24, 1);
    const b = pattern(24, 2);
    expect(r.add4(frag4({ off: 0, more: true, data: a.slice(0, 16), id: 1 }), ETH, 0)).toBeNull();
    expect(r.add4(frag4({ off: 0, more: true, data: b.slice(0, 16), id: 1, src: SRC4 + 1 }), ETH, 0)).toBeNull();
    expect(r.add4(frag4({ off: 16, more: false, data: a.slice(16), id: 1, proto: 1 }), ETH, 0)).toBeNull();
    expect(r.stats().datagrams).toBe(3);
    expect(r.add4(frag4({ off: 16, more: false, data: b.slice(16), id: 1, src: SRC4 + 1 }), ETH, 0)!.payload).toEqual(b);
    expect(r.add4(frag4({ off: 16, more: false, data: a.slice(16), id: 1 }), ETH, 0)!.payload).toEqual(a);
  });

  it('drops a partially overlapping fragment and the whole datagram (RFC 5722 policy)', () => {
    const { r, drops } = setup();
    r.add4(frag4({ off: 0, more: true, data: pattern(32) }), ETH, 0);
    r.add4(frag4({ off: 48, more: true, data: pattern(16) }), ETH, 0);
    expect(r.add4(frag4({ off: 24, more: true, data: pattern(16) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.OVERLAP)).toBe(3);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
  });

  it('drops a same-range fragment with different bytes (Teardrop-style rewrite) and the datagram', () => {
    const { r, drops } = setup();
    r.add4(frag4({ off: 0, more: true, data: pattern(32, 1) }), ETH, 0);
    const evil = pattern(32, 1);
    evil[3] ^= 0xff;
    expect(r.add4(frag4({ off: 0, more: true, data: evil }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.OVERLAP)).toBe(2);
    expect(r.stats().bytes).toBe(0);
  });

  it('drops a byte-identical duplicate alone and still completes the datagram', () => {
    const { r, drops } = setup();
    const d = pattern(40);
    r.add4(frag4({ off: 0, more: true, data: d.slice(0, 32) }), ETH, 0);
    expect(r.add4(frag4({ off: 8, more: true, data: d.slice(8, 16) }), ETH, 0)).toBeNull(); // inside, identical
    expect(r.add4(frag4({ off: 0, more: true, data: d.slice(0, 32) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.DUPLICATE)).toBe(2);
    expect(r.add4(frag4({ off: 32, more: false, data: d.slice(32) }), ETH, 0)!.payload).toEqual(d);
    expect(r.add4(frag4({ off: 32, more: false, data: d.slice(32) }), ETH, 0)).toBeNull(); // late copy starts afresh
    expect(r.stats().datagrams).toBe(1);
  });

  it('drops a Ping of Death fragment reaching past 65535 and the datagram it joins', () => {
    const { r, drops } = setup();
    // 65528 + 16 bytes of data: beyond any datagram.
    expect(r.add4(frag4({ off: 65528, more: false, data: pattern(16) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.TOO_BIG)).toBe(1);
    // Header counts: 20 + 65512 + 8 = 65540.
    r.add4(frag4({ off: 0, more: true, data: pattern(64) }), ETH, 0);
    expect(r.add4(frag4({ off: 65512, more: false, data: pattern(8) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.TOO_BIG)).toBe(3);
    // 20 + 65512 + 3 = 65535 exactly is allowed.
    r.add4(frag4({ off: 65512, more: false, data: pattern(3) }), ETH, 0);
    expect(r.stats().datagrams).toBe(1);
    expect(drops.get(FragDrop.TOO_BIG)).toBe(3);
    r.clear();
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
  });

  it('counts a longer first-fragment header against the limit even when it arrives last', () => {
    const { r, drops } = setup();
    expect(r.add4(frag4({ off: 65512, more: false, data: pattern(3) }), ETH, 0)).toBeNull(); // 20 + 65515
    // IHL 24 with offset 0: the reassembled datagram would be 24 + 65515 > 65535.
    expect(r.add4(frag4({ off: 0, more: true, data: pattern(64), options: Uint8Array.of(1, 1, 1, 1) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.TOO_BIG)).toBe(2);
    expect(r.stats().bytes).toBe(0);
  });

  it('drops a non-final fragment whose length is not a multiple of 8, keeping the datagram', () => {
    const { r, drops } = setup();
    const d = pattern(48);
    r.add4(frag4({ off: 0, more: true, data: d.slice(0, 16) }), ETH, 0);
    expect(r.add4(frag4({ off: 16, more: true, data: d.slice(16, 29) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.MISALIGNED)).toBe(1);
    expect(r.stats().datagrams).toBe(1);
    r.add4(frag4({ off: 16, more: true, data: d.slice(16, 32) }), ETH, 0);
    expect(r.add4(frag4({ off: 32, more: false, data: d.slice(32) }), ETH, 0)!.payload).toEqual(d);
  });

  it('drops duplicate last fragments with different ends, and data past the end', () => {
    const { r, drops } = setup();
    r.add4(frag4({ off: 0, more: true, data: pattern(16) }), ETH, 0);
    r.add4(frag4({ off: 32, more: false, data: pattern(10) }), ETH, 0);
    expect(r.add4(frag4({ off: 32, more: false, data: pattern(12) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.BAD_END)).toBe(3);
    expect(r.stats().bytes).toBe(0);

    r.add4(frag4({ off: 32, more: false, data: pattern(10), id: 2 }), ETH, 0);
    expect(r.add4(frag4({ off: 48, more: true, data: pattern(8), id: 2 }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.BAD_END)).toBe(5);

    r.add4(frag4({ off: 64, more: true, data: pattern(8), id: 3 }), ETH, 0);
    expect(r.add4(frag4({ off: 32, more: false, data: pattern(10), id: 3 }), ETH, 0)).toBeNull(); // ends before held data
    expect(drops.get(FragDrop.BAD_END)).toBe(7);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
  });

  it('drops an RFC 1858 tiny TCP first fragment and a TCP fragment at offset 8', () => {
    const { r, drops } = setup();
    expect(r.add4(frag4({ off: 0, more: true, data: pattern(16), proto: TCP }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.TINY)).toBe(1);
    r.add4(frag4({ off: 0, more: true, data: pattern(24), proto: TCP, id: 9 }), ETH, 0);
    expect(r.add4(frag4({ off: 8, more: false, data: pattern(40), proto: TCP, id: 9 }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.TINY)).toBe(3);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
    // A UDP first fragment of 8 bytes holds the whole UDP header: fine.
    r.add4(frag4({ off: 0, more: true, data: pattern(8) }), ETH, 0);
    expect(r.add4(frag4({ off: 8, more: false, data: pattern(8) }), ETH, 0)!.payload.length).toBe(16);
  });

  it('evicts the oldest datagram when the table is full', () => {
    const { r, drops } = setup({ maxDatagrams: 4 });
    for (let id = 1; id <= 5; id++) r.add4(frag4({ off: 0, more: true, data: pattern(16, id), id }), ETH, id);
    expect(drops.get(FragDrop.EVICTED)).toBe(1);
    expect(r.stats().datagrams).toBe(4);
    // id 2 still completes; id 1 is gone, so its tail only starts a new datagram.
    expect(r.add4(frag4({ off: 16, more: false, data: pattern(8), id: 2 }), ETH, 9)).not.toBeNull();
    expect(r.add4(frag4({ off: 16, more: false, data: pattern(8), id: 1 }), ETH, 9)).toBeNull();
    expect(r.stats().datagrams).toBe(4);
  });

  it('never holds more than maxBytes under a flood of 10,000 distinct incomplete datagrams', () => {
    const maxBytes = 256 * 1024;
    const { r, drops } = setup({ maxBytes, maxDatagrams: 100_000 });
    let peak = 0;
    for (let i = 0; i < 10_000; i++) {
      r.add4(frag4({ off: (i % 40) * 1480, more: true, data: pattern(1480, i), id: i & 0xffff, src: SRC4 + (i >>> 16) }), ETH, i);
      const s = r.stats();
      if (s.bytes > peak) peak = s.bytes;
      expect(s.bytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(peak).toBeGreaterThan(maxBytes / 2);
    expect(drops.get(FragDrop.MEMORY)).toBeGreaterThan(9000);
    // A legitimate datagram still gets through afterwards: the flood is evicted for it.
    const d = pattern(3000, 5);
    let out = null;
    for (const f of split(d, 1480)) out = r.add4(frag4({ ...f, id: 0xffff, src: 1 }), ETH, 20_000);
    expect(out!.payload).toEqual(d);
    r.expire(Infinity);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
  });

  it('refuses a datagram that cannot fit even alone', () => {
    const { r, drops } = setup({ maxBytes: ENTRY_OVERHEAD + 100 });
    expect(r.add4(frag4({ off: 0, more: true, data: pattern(1480) }), ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.MEMORY)).toBe(1);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
  });

  it('times out after 30 s, frees the memory and returns the ICMP quote when the first fragment came', () => {
    const { r, drops } = setup();
    r.add4(frag4({ off: 0, more: true, data: pattern(64, 3), id: 1 }), ETH, 1000);
    r.add4(frag4({ off: 64, more: false, data: pattern(8), id: 2 }), ETH, 2000); // no first fragment
    expect(r.nextDeadline()).toBe(31_000);
    expect(r.expire(30_999)).toEqual([]);
    expect(r.stats().datagrams).toBe(2);
    const exp = r.expire(31_000);
    expect(exp.length).toBe(1);
    const e = exp[0]!;
    expect(e.family).toBe(4);
    expect(e.src).toBe(SRC4);
    expect(e.dst).toBe(DST4);
    // RFC 792: the first fragment's IP header and its first 8 data bytes.
    const first = frag4({ off: 0, more: true, data: pattern(64, 3), id: 1 });
    expect(e.quote).toEqual(first.slice(ETH, ETH + 28));
    expect(drops.get(FragDrop.TIMEOUT)).toBe(1);
    expect(r.nextDeadline()).toBe(32_000);
    expect(r.expire(40_000)).toEqual([]); // id 2 had no first fragment: no ICMP
    expect(drops.get(FragDrop.TIMEOUT)).toBe(2);
    expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
    expect(r.nextDeadline()).toBe(Infinity);
  });

  it('drops truncated or inconsistent headers as frag-malformed without reading past the frame', () => {
    const { r, drops } = setup();
    const f = frag4({ off: 0, more: true, data: pattern(64) });
    expect(r.add4(f.subarray(0, ETH + 19), ETH, 0)).toBeNull();
    expect(r.add4(f.subarray(0, ETH + 50), ETH, 0)).toBeNull(); // total length beyond the frame
    expect(r.add4(f, -1, 0)).toBeNull();
    const bad = f.slice();
    bad[ETH] = 0x44; // IHL 16
    expect(r.add4(bad, ETH, 0)).toBeNull();
    expect(drops.get(FragDrop.MALFORMED)).toBe(4);
    expect(r.stats().datagrams).toBe(0);
  });
});

describe('reassembly.ts › IPv6', () => {
  const data = pattern(60_000, 9);
  const frags = split(data, 1448);
  for (const [name, list] of [
    ['in order', frags],
    ['in reverse order', frags.slice().reverse()],
    ['shuffled', shuffle(frags, 3)],
  ] as const) {
    it(`reassembles a 60 KB packet ${name} and rebuilds it without the Fragment header`, () => {
      const { r, drops } = setup();
      let done = null;
      for (const f of list) {
        const { frame, fragOff } = frag6({ ...f, hopLimit: f.off === 0 ? 5 : 60 });
        done = r.add6(frame, ETH, fragOff, 0);
      }
      expect(done!.payload).toEqual(data);
      expect(done!.nextHeader).toBe(UDP);
      expect(done!.hopLimit).toBe(5);
      expect(done!.id).toBe(0xdeadbeef);
      expect(done!.src).toEqual(SRC6);
      expect(done!.dst).toEqual(DST6);
      const v = new Ipv6View();
      expect(v.reset(done!.datagram, 0, done!.datagram.length)).toBe(true);
      expect(v.payloadLen).toBe(60_000);
      expect(v.nextHeader).toBe(UDP);
      expect(drops.size).toBe(0);
      expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
    });
  }

  it('keeps the unfragmentable part and points its last Next Header at the upper layer', () => {
    const { r } = setup();
    const d = pattern(100, 4);
    let done = null;
    for (const f of split(d, 48)) {
      const { frame, fragOff } = frag6({ ...f, unfrag: HBH });
      done = r.add6(frame, ETH, fragOff, 0);
    }
    const dg = done!.datagram;
    expect(dg.length).toBe(40 + 8 + 100);
    expect(dg[6]).toBe(0); // fixed header → Hop-by-Hop
    expect(dg[40]).toBe(UDP); // Hop-by-Hop → UDP (was 44)
    const v = new Ipv6View();
    expect(v.reset(dg, 0, dg.length)).toBe(true);
    const ext = new Ipv6ExtInfo();
    expect(walkIpv6Headers(v, ext)).toBe(true);
    expect(ext.isFragment).toBe(false);
    expect(ext.proto).toBe(UDP);
    expect(ext.offset).toBe(48);
    expect(dg.subarray(48)).toEqual(d);
  });

  it('returns an atomic fragment (RFC 6946) at once without touching the table', () => {
    const { r } = setup();
    const { frame, fragOff } = frag6({ off: 0, more: false, data: pattern(30) });
    const out = r.add6(frame, ETH, fragOff, 0)!;
    expect(out.payload).toEqual(pattern(30));
    expect(out.datagram.length).toBe(70);
    expect(out.datagram[6]).toBe(UDP);
    expect(r.stats().datagrams).toBe(0);
  });

  it('leaves Next Header out of the key: the offset-zero fragment decides it (RFC 8200 §4.5)', () => {
    const { r } = setup();
    const a = frag6({ off: 16, more: false, data: pattern(8), nh: 59 });
    expect(r.add6(a.frame, ETH, a.fragOff, 0)).toBeNull();
    const b = frag6({ off: 0, more: true, data: pattern(16), nh: UDP });
    const out = r.add6(b.frame, ETH, b.fragOff, 0)!;
    expect(out.nextHeader).toBe(UDP);
  });

  it('discards the whole packet on any overlap (RFC 5722)', () => {
    const { r, drops } = setup();
    const a = frag6({ off: 0, more: true, data: pattern(32) });
    const b = frag6({ off: 16, more: false, data: pattern(40) });
    r.add6(a.frame, ETH, a.fragOff, 0);
    expect(r.add6(b.frame, ETH, b.fragOff, 0)).toBeNull();
    expect(drops.get(FragDrop.OVERLAP)).toBe(2);
    expect(r.stats().bytes).toBe(0);
  });

  it('counts the unfragmentable headers against the 65535-byte payload length', () => {
    const { r, drops } = setup();
    // 8 (Hop-by-Hop) + 65528 ≤ 65535 but the last byte would be 65536.
    const f = frag6({ off: 65520, more: false, data: pattern(8), unfrag: HBH });
    expect(r.add6(f.frame, ETH, f.fragOff, 0)).toBeNull();
    expect(drops.get(FragDrop.TOO_BIG)).toBe(1);
    const g = frag6({ off: 65520, more: false, data: pattern(7), unfrag: HBH });
    expect(r.add6(g.frame, ETH, g.fragOff, 0)).toBeNull();
    expect(r.stats().datagrams).toBe(1);
  });

  it('times out after 60 s (v4 after 30 s) and quotes the first fragment for ICMPv6', () => {
    const { r, drops } = setup();
    const f = frag6({ off: 0, more: true, data: pattern(2000, 8) });
    r.add6(f.frame, ETH, f.fragOff, 0);
    r.add4(frag4({ off: 0, more: true, data: pattern(16) }), ETH, 10_000);
    expect(r.nextDeadline()).toBe(40_000);
    expect(r.expire(40_000).map((e) => e.family)).toEqual([4]);
    expect(r.nextDeadline()).toBe(60_000);
    const [e] = r.expire(60_000);
    expect(e!.family).toBe(6);
    expect(e!.src).toEqual(SRC6);
    // RFC 4443: as much of the invoking packet as fits in the minimum MTU (1280 - 40 - 8).
    expect(e!.quote.length).toBe(1232);
    expect(e!.quote).toEqual(f.frame.slice(ETH, ETH + 1232));
    expect(drops.get(FragDrop.TIMEOUT)).toBe(2);
    expect(r.stats().bytes).toBe(0);
  });

  it('drops a Fragment header offset outside the packet as frag-malformed', () => {
    const { r, drops } = setup();
    const f = frag6({ off: 0, more: true, data: pattern(16) });
    expect(r.add6(f.frame, ETH, ETH + 10, 0)).toBeNull(); // inside the fixed header
    expect(r.add6(f.frame, ETH, f.frame.length - 4, 0)).toBeNull();
    expect(r.add6(f.frame.subarray(0, f.frame.length - 1), ETH, f.fragOff, 0)).toBeNull();
    expect(drops.get(FragDrop.MALFORMED)).toBe(3);
  });
});

describe('reassembly.ts › properties', () => {
  it('reassembles any permutation (with duplicates) of a random datagram to the original', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 1, max: 200 }),
        fc.boolean(),
        fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
        fc.integer(),
        (len, blocks, v6, picks, seed) => {
          const data = pattern(len, seed);
          const fr = split(data, blocks * 8);
          if (fr.length === 1) return; // not fragmented
          // Every fragment once, in a random order, plus duplicates sprinkled in.
          const order = shuffle(
            fr.map((_, i) => i),
            seed >>> 0,
          );
          for (const p of picks.slice(0, fr.length)) order.splice(p % (order.length + 1), 0, p % fr.length);
          const { r, drops } = setup({ maxBytes: 1 << 20 });
          let done: Uint8Array | null = null;
          let completions = 0;
          for (const i of order) {
            if (done) break; // a duplicate after completion would start a new datagram
            const f = fr[i]!;
            let out;
            if (v6) {
              const g = frag6(f);
              out = r.add6(g.frame, ETH, g.fragOff, 0)?.payload;
            } else {
              out = r.add4(frag4(f), ETH, 0)?.payload;
            }
            if (out) {
              done = out;
              completions++;
            }
          }
          expect(completions).toBe(1);
          expect(done).toEqual(data);
          for (const k of drops.keys()) expect(k).toBe(FragDrop.DUPLICATE);
          expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
        },
      ),
      { numRuns: 300 },
    );
  });

  const fragArb = fc.record({
    v6: fc.boolean(),
    id: fc.integer({ min: 0, max: 3 }),
    proto: fc.constantFrom(UDP, TCP, 1, 58, 59),
    off: fc.oneof(fc.integer({ min: 0, max: 8191 }).map((b) => b * 8), fc.integer({ min: 0, max: 8 }).map((b) => b * 8)),
    more: fc.boolean(),
    len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 3000 })),
    fill: fc.integer({ min: 0, max: 2 }),
    unfrag: fc.boolean(),
    dt: fc.integer({ min: 0, max: 20_000 }),
  });

  const maxBytesArb = fc.oneof(fc.integer({ min: 0, max: 40_000 }), fc.integer({ min: 0, max: 400_000 }));

  it('never throws and never exceeds its limits on arbitrary fragment soup', () => {
    let completed = 0;
    fc.assert(
      fc.property(fc.array(fragArb, { maxLength: 120 }), maxBytesArb, (soup, maxBytes) => {
        const { r } = setup({ maxBytes, maxDatagrams: 5 });
        let now = 0;
        for (const s of soup) {
          now += s.dt;
          const data = new Uint8Array(s.len).fill(s.fill);
          if (s.v6) {
            const g = frag6({ off: s.off, more: s.more, data, id: s.id, nh: s.proto, unfrag: s.unfrag ? HBH : undefined });
            const out = r.add6(g.frame, ETH, g.fragOff, now);
            if (out) {
              completed++;
              expect(out.datagram.length).toBeLessThanOrEqual(40 + 65535);
            }
          } else {
            const out = r.add4(frag4({ off: s.off, more: s.more, data, id: s.id, proto: s.proto }), ETH, now);
            if (out) {
              completed++;
              expect(out.payload.length).toBeLessThanOrEqual(65535 - 20);
            }
          }
          if (s.dt > 15_000) r.expire(now);
          const st = r.stats();
          expect(st.bytes).toBeLessThanOrEqual(maxBytes);
          expect(st.datagrams).toBeLessThanOrEqual(5);
          expect(st.bytes >= st.datagrams * ENTRY_OVERHEAD).toBe(true);
        }
        r.expire(Infinity);
        expect(r.stats()).toMatchObject({ bytes: 0, datagrams: 0 });
      }),
      { numRuns: 300 },
    );
    // The soup is not all noise: some of it does reassemble.
    expect(completed).toBeGreaterThan(0);
  });

  const offArb = fc.integer({ min: -2, max: 220 });

  it('never throws or over-reads on arbitrary bytes and offsets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), offArb, offArb, (bytes, a, b) => {
        const { r } = setup({ maxDatagrams: 2 });
        r.add4(bytes, a, 0);
        r.add6(bytes, a, b, 0);
        if (bytes.length > 0) bytes[0] = 0x45;
        r.add4(bytes, 0, 0);
        expect(r.stats().bytes).toBeLessThanOrEqual(1 << 20);
      }),
      { numRuns: 1000 },
    );
  });
});
