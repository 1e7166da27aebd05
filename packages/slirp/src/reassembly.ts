/**
 * Theory of operation — IPv4 and IPv6 fragment reassembly (RFC 791 §3.2, RFC 815, RFC 8200 §4.5,
 * RFC 5722, RFC 6946, RFC 1858).
 *
 * Goal: turn the fragments a guest sends into whole datagrams for the NAT, holding a bounded
 * amount of guest-controlled memory, and refuse every shape of fragment that has hurt libslirp
 * (CVE-2019-14378 size miscalculation, CVE-2020-1983 use-after-free in ip_reass, CVE-2019-15890
 * and friends) or other stacks (Ping of Death, Teardrop, FragmentSmack, RFC 1858 tiny
 * fragments). Sans-IO: the caller passes `now` in, and schedules one timer at `nextDeadline()`
 * that calls `expire(now)`. One instance serves both families, so `maxBytes` bounds them
 * together. `add4`/`add6` borrow the frame (what they keep is copied); everything they return
 * belongs to the caller. IPv6 results come back as a rebuilt packet without the Fragment header,
 * ready for a second extension-header walk.
 *
 * Data structures. One `Entry` per datagram in progress, found through a `Map<number, Entry>`
 * keyed by a 32-bit hash of the reassembly key with collision chains (no string keys; every
 * lookup compares the full key). Keys: IPv4 (src, dst, protocol, identification) — RFC 791;
 * IPv6 (src, dst, identification) — RFC 8200 §4.5 deliberately leaves Next Header out of the
 * key (non-first fragments may carry a different one; only the offset-zero fragment's counts).
 * Each entry owns one contiguous buffer of the fragmentable part, grown by doubling (exactly to
 * the total once the last fragment has fixed it) up to the datagram limit, plus a bitmap with
 * one bit per 8-byte block saying which blocks arrived. Fragment offsets are multiples of 8 and
 * every non-final fragment's length is too, so block granularity is exact: only the final
 * fragment may end mid-block, and it owns that block. Entries also sit on one age list per
 * family (creation order = deadline order, as each family has a single timeout), which gives
 * O(1) "oldest" for expiry and eviction.
 *
 * Memory accounting: an entry is charged ENTRY_OVERHEAD + buffer bytes + bitmap bytes + the copy
 * of the first fragment's header, as allocated. Before allocating, older datagrams are evicted
 * (counted 'frag-memory'); if the limit cannot be met even then, the datagram in hand is dropped.
 * `stats().bytes` never exceeds `maxBytes`. A full table (`maxDatagrams`) evicts the oldest
 * datagram (counted 'frag-evicted').
 *
 * Policy on bad fragments (each counted through `drop(reason, n)`, where n is the number of
 * guest packets thrown away, never thrown as an error):
 * - overlap: any partial overlap discards the whole datagram, for both families (RFC 5722 for
 *   IPv6; Linux has done the same for IPv4 since FragmentSmack, 2018). A fragment wholly inside
 *   data already held and byte-identical to it is a network duplicate (RFC 8200 §4.5 allows
 *   dropping exact duplicates): only that fragment is dropped ('frag-duplicate'). Wholly inside
 *   but different bytes is an overlap attack: the datagram goes.
 * - size: header + offset + length beyond `maxDatagramLen` (IPv4 total length; IPv6 payload
 *   length = unfragmentable extension headers + fragmentable part) discards the datagram.
 * - a non-final fragment whose length is not a multiple of 8, or is empty: that fragment only
 *   (RFC 8200 §4.5 says discard it; the datagram may still complete).
 * - end conflicts: a second last fragment with a different end, a last fragment ending before
 *   data already held, data past a known end: the datagram goes ('frag-bad-end').
 * - tiny fragments (RFC 1858 §3–4): a first fragment too short for the transport header's
 *   fixed part (TCP 20, UDP/ICMP/ICMPv6 8) or any non-first fragment starting inside it (TCP
 *   offset 8 or 16): the datagram goes ('frag-tiny').
 * - timeout: IPv4 30 s (Linux ipfrag_time), IPv6 60 s (RFC 8200 §4.5), from the first fragment.
 *   `expire` returns, for datagrams whose offset-zero fragment arrived, the bytes an ICMP Time
 *   Exceeded / "fragment reassembly time exceeded" (code 1) must quote (RFC 792, RFC 4443 §3.3).
 *
 * Not here: header checksum validation and the IPv6 extension-header walk (the caller does them
 * before calling), sending ICMP errors (the caller does it from `expire`'s result), the RFC 7112
 * check that the first IPv6 fragment holds the whole header chain, and jumbograms (RFC 2675).
 * A packet that is not a fragment at all (offset 0, no MF; or an RFC 6946 atomic fragment) is
 * returned at once without touching any state, even when reassembly is disabled.
 */

/** Why a fragment was dropped. Stable strings, for drop counters. */
export const FragDrop = {
  /** `maxBytes` is 0: the stack does not reassemble. */
  DISABLED: 'frag-disabled',
  /** Truncated or inconsistent IP header handed in (the caller should have caught it). */
  MALFORMED: 'frag-malformed',
  /** A non-final fragment whose length is not a multiple of 8. */
  MISALIGNED: 'frag-misaligned',
  /** Offset + length (plus the header) beyond the largest datagram (Ping of Death). */
  TOO_BIG: 'frag-too-big',
  /** RFC 1858 tiny fragment: the transport header is split or overwritten. */
  TINY: 'frag-tiny',
  /** Conflicting last fragments, or data past the datagram's end. */
  BAD_END: 'frag-bad-end',
  /** Overlapping fragments (RFC 5722): the whole datagram is discarded. */
  OVERLAP: 'frag-overlap',
  /** A byte-identical copy of data already held; only the copy is dropped. */
  DUPLICATE: 'frag-duplicate',
  /** The table was full: the oldest datagram made room. */
  EVICTED: 'frag-evicted',
  /** Memory limit: the oldest datagrams were discarded, or this one could not be held. */
  MEMORY: 'frag-memory',
  /** Not completed in time. */
  TIMEOUT: 'frag-timeout',
} as const;
export type FragDropReason = (typeof FragDrop)[keyof typeof FragDrop];

/** Linux `net.ipv4.ipfrag_time`. */
export const IPV4_REASSEMBLY_TIMEOUT_MS = 30_000;
/** RFC 8200 §4.5. */
export const IPV6_REASSEMBLY_TIMEOUT_MS = 60_000;
/** Estimated cost of an entry beyond its buffers (object, map slot), charged against maxBytes so
 * that a flood of empty datagrams is bounded too. */
export const ENTRY_OVERHEAD = 256;
/** RFC 4443 §2.4(c): an ICMPv6 error quotes as much of the invoking packet as fits in 1280. */
const ICMP6_QUOTE_MAX = 1280 - 40 - 8;
/** RFC 792: an ICMPv4 error quotes the header and the first 64 bits of data. */
const ICMP4_QUOTE_DATA = 8;

export interface ReassemblerOptions {
  /** Total bytes all partial datagrams may hold (cfg.maxReassembly); 0 disables reassembly. */
  maxBytes: number;
  /** Datagrams in progress at once; a new one beyond this evicts the oldest. */
  maxDatagrams: number;
  /** IPv4 timeout; default `timeoutMs`, else {@link IPV4_REASSEMBLY_TIMEOUT_MS}. */
  timeoutMs4?: number;
  /** IPv6 timeout; default `timeoutMs`, else {@link IPV6_REASSEMBLY_TIMEOUT_MS}. */
  timeoutMs6?: number;
  /** Both families' timeout, when the per-family ones are not given. */
  timeoutMs?: number;
  /** Largest IPv4 total length / IPv6 payload length after reassembly; default 65535. */
  maxDatagramLen?: number;
  /** Count dropped guest packets (StackContext.drop fits). */
  drop(reason: FragDropReason, n: number): void;
}

/** A reassembled IPv4 datagram. Everything here belongs to the caller. */
export interface Reassembled4 {
  readonly family: 4;
  readonly src: number;
  readonly dst: number;
  readonly protocol: number;
  readonly id: number;
  /** TTL and TOS of the offset-zero fragment. */
  readonly ttl: number;
  readonly tos: number;
  /** Copy of the offset-zero fragment's IP header, options included (its length and fragment
   * fields describe that fragment, not the whole datagram). */
  readonly header: Uint8Array;
  /** The whole transport-layer payload (`protocol`'s header first). */
  readonly payload: Uint8Array;
}

/** A reassembled IPv6 packet. Everything here belongs to the caller. */
export interface Reassembled6 {
  readonly family: 6;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly id: number;
  /** The offset-zero fragment's Fragment-header Next Header: the first header of `payload`. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  /** Copy of the offset-zero fragment's headers: fixed header, unfragmentable extension headers
   * and the Fragment header. */
  readonly header: Uint8Array;
  /** The reassembled packet as if never fragmented (RFC 8200 §4.5): the offset-zero fragment's
   * fixed header and unfragmentable extension headers, without the Fragment header, with Payload
   * Length and the last Next Header fixed up, then the fragmentable part. Walk its extension
   * headers again to find the upper layer (and drop it if it holds another Fragment header). */
  readonly datagram: Uint8Array;
  /** The fragmentable part alone (a view into `datagram`): the headers after the Fragment header,
   * then the upper-layer data; its first header is `nextHeader`. */
  readonly payload: Uint8Array;
}

export type ReassembledDatagram = Reassembled4 | Reassembled6;

/** A datagram that timed out after its offset-zero fragment arrived: the caller should send an
 * ICMP Time Exceeded, code 1, to `src` quoting `quote` (RFC 792; RFC 4443 §3.3, RFC 8200 §4.5). */
export type ExpiredDatagram =
  | { readonly family: 4; readonly src: number; readonly dst: number; readonly quote: Uint8Array }
  | { readonly family: 6; readonly src: Uint8Array; readonly dst: Uint8Array; readonly quote: Uint8Array };

export interface ReassemblyStats {
  /** Bytes charged for partial datagrams (never above maxBytes). */
  bytes: number;
  /** Datagrams in progress. */
  datagrams: number;
  /** Datagrams completed since construction. */
  reassembled: number;
}

const EMPTY8 = new Uint8Array(0);
const EMPTY32 = new Uint32Array(0);
const NO_EXPIRED: ExpiredDatagram[] = [];

class Entry {
  family: 4 | 6 = 4;
  hash = 0;
  s0 = 0;
  s1 = 0;
  s2 = 0;
  s3 = 0;
  d0 = 0;
  d1 = 0;
  d2 = 0;
  d3 = 0;
  /** IPv4: protocol (part of the key). IPv6: Next Header of the offset-zero fragment, or -1. */
  proto = -1;
  id = 0;
  /** Next entry with the same hash. */
  chain: Entry | null = null;
  /** Age list (per family). */
  prev: Entry | null = null;
  next: Entry | null = null;
  created = 0;
  deadline = 0;
  buf: Uint8Array = EMPTY8;
  bits: Uint32Array = EMPTY32;
  /** Payload bytes held (fragments never overlap, so holes are gone when this equals total). */
  received = 0;
  /** Fragmentable-part length once the last fragment fixed it, else -1. */
  total = -1;
  maxEnd = 0;
  /** Largest header length seen (IPv4 IHL / IPv6 unfragmentable part) for the size limit. */
  maxHdr = 0;
  /** Guest packets held (for drop counts). */
  frags = 0;
  /** Offset-zero fragment's header copy, and its data length. */
  hdr: Uint8Array | null = null;
  firstLen = 0;
  charged = 0;
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  return h ^ (h >>> 15);
}

/** Fixed transport-header bytes that must all sit in the first fragment (RFC 1858). */
function minTransportHeader(proto: number): number {
  if (proto === 6) return 20; // TCP: ports, sequence numbers, flags
  if (proto === 17 || proto === 1 || proto === 58) return 8; // UDP, ICMP, ICMPv6
  return 0;
}

/** Sized bitmap: one bit per 8-byte block of a buffer of `cap` bytes. */
function bitWords(cap: number): number {
  return (((cap + 7) >>> 3) + 31) >>> 5;
}

export class Reassembler {
  private readonly maxBytes: number;
  private readonly maxDatagrams: number;
  private readonly timeout4: number;
  private readonly timeout6: number;
  private readonly maxLen: number;
  private readonly dropFn: (reason: FragDropReason, n: number) => void;

  private readonly table = new Map<number, Entry>();
  private head4: Entry | null = null;
  private tail4: Entry | null = null;
  private head6: Entry | null = null;
  private tail6: Entry | null = null;
  private bytes = 0;
  private count = 0;
  private done = 0;

  // The key of the fragment in hand, set by add4/add6 so the shared path allocates nothing.
  private kFamily: 4 | 6 = 4;
  private kS0 = 0;
  private kS1 = 0;
  private kS2 = 0;
  private kS3 = 0;
  private kD0 = 0;
  private kD1 = 0;
  private kD2 = 0;
  private kD3 = 0;
  private kProto = 0;
  private kId = 0;
  private kHash = 0;

  constructor(opts: ReassemblerOptions) {
    this.maxBytes = Math.max(0, opts.maxBytes);
    this.maxDatagrams = Math.max(1, opts.maxDatagrams);
    this.timeout4 = opts.timeoutMs4 ?? opts.timeoutMs ?? IPV4_REASSEMBLY_TIMEOUT_MS;
    this.timeout6 = opts.timeoutMs6 ?? opts.timeoutMs ?? IPV6_REASSEMBLY_TIMEOUT_MS;
    this.maxLen = opts.maxDatagramLen ?? 65535;
    this.dropFn = opts.drop;
  }

  /**
   * One IPv4 packet whose header starts at `frame[ipOff]` (header checksum already checked by the
   * caller). `frame` is borrowed: the bytes needed are copied before returning. Returns the whole
   * datagram when this fragment completed it (or when the packet was not a fragment), else null.
   */
  add4(frame: Uint8Array, ipOff: number, now: number): Reassembled4 | null {
    const n = frame.length;
    if (!(ipOff >= 0) || ipOff + 20 > n || frame[ipOff]! >>> 4 !== 4) return this.reject(FragDrop.MALFORMED);
    const ihl = (frame[ipOff]! & 15) << 2;
    const totalLen = (frame[ipOff + 2]! << 8) | frame[ipOff + 3]!;
    if (ihl < 20 || totalLen < ihl || ipOff + totalLen > n) return this.reject(FragDrop.MALFORMED);
    const ff = (frame[ipOff + 6]! << 8) | frame[ipOff + 7]!;
    const more = (ff & 0x2000) !== 0;
    const off = (ff & 0x1fff) << 3;
    if (off === 0 && !more) {
      // Not a fragment: nothing to hold.
      return this.result4(frame.slice(ipOff, ipOff + ihl), frame.slice(ipOff + ihl, ipOff + totalLen));
    }
    if (this.maxBytes === 0) return this.reject(FragDrop.DISABLED);
    this.kFamily = 4;
    this.kS0 = u32(frame, ipOff + 12);
    this.kD0 = u32(frame, ipOff + 16);
    this.kS1 = this.kS2 = this.kS3 = this.kD1 = this.kD2 = this.kD3 = 0;
    this.kProto = frame[ipOff + 9]!;
    this.kId = (frame[ipOff + 4]! << 8) | frame[ipOff + 5]!;
    this.kHash = mix(mix(mix(4, this.kS0), this.kD0), (this.kId << 8) | this.kProto);
    const e = this.insert(now, ihl, off, more, this.kProto, frame, ipOff + ihl, totalLen - ihl, ipOff, ihl);
    if (e === null) return null;
    const r = this.result4(e.hdr!, e.buf.length === e.total ? e.buf : e.buf.subarray(0, e.total));
    this.remove(e);
    this.done++;
    return r;
  }

  /**
   * One IPv6 packet whose fixed header starts at `frame[ipOff]` and whose Fragment header starts
   * at `frame[fragHdrOff]` (from the caller's extension-header walk). `frame` is borrowed.
   * Returns the whole packet when this fragment completed it (or for an atomic fragment, RFC
   * 6946, which is never mixed with other fragments), else null.
   */
  add6(frame: Uint8Array, ipOff: number, fragHdrOff: number, now: number): Reassembled6 | null {
    const n = frame.length;
    if (!(ipOff >= 0) || ipOff + 40 > n || frame[ipOff]! >>> 4 !== 6) return this.reject(FragDrop.MALFORMED);
    const end = ipOff + 40 + ((frame[ipOff + 4]! << 8) | frame[ipOff + 5]!);
    if (end > n || !(fragHdrOff >= ipOff + 40) || fragHdrOff + 8 > end) return this.reject(FragDrop.MALFORMED);
    const fo = (frame[fragHdrOff + 2]! << 8) | frame[fragHdrOff + 3]!;
    const more = (fo & 1) !== 0;
    const off = fo & 0xfff8;
    const nh = frame[fragHdrOff]!;
    const dataOff = fragHdrOff + 8;
    if (off === 0 && !more) {
      return this.result6(frame.slice(ipOff, dataOff), nh, u32(frame, fragHdrOff + 4), frame, dataOff, end - dataOff);
    }
    if (this.maxBytes === 0) return this.reject(FragDrop.DISABLED);
    this.kFamily = 6;
    this.kS0 = u32(frame, ipOff + 8);
    this.kS1 = u32(frame, ipOff + 12);
    this.kS2 = u32(frame, ipOff + 16);
    this.kS3 = u32(frame, ipOff + 20);
    this.kD0 = u32(frame, ipOff + 24);
    this.kD1 = u32(frame, ipOff + 28);
    this.kD2 = u32(frame, ipOff + 32);
    this.kD3 = u32(frame, ipOff + 36);
    this.kProto = 0;
    this.kId = u32(frame, fragHdrOff + 4);
    let h = mix(6, this.kId);
    h = mix(mix(mix(mix(h, this.kS0), this.kS1), this.kS2), this.kS3);
    this.kHash = mix(mix(mix(mix(h, this.kD0), this.kD1), this.kD2), this.kD3);
    const unfragLen = fragHdrOff - (ipOff + 40);
    const e = this.insert(now, unfragLen, off, more, nh, frame, dataOff, end - dataOff, ipOff, dataOff - ipOff);
    if (e === null) return null;
    const r = this.result6(e.hdr!, e.proto, e.id, e.buf, 0, e.total);
    this.remove(e);
    this.done++;
    return r;
  }

  /** Earliest time at which `expire` has work, or Infinity when nothing is held. */
  nextDeadline(): number {
    const a = this.head4 ? this.head4.deadline : Infinity;
    const b = this.head6 ? this.head6.deadline : Infinity;
    return a < b ? a : b;
  }

  /**
   * Discard every datagram whose deadline is at or before `now` (counted 'frag-timeout'). Returns
   * the ones whose offset-zero fragment had arrived, for ICMP Time Exceeded code 1; the array is
   * the caller's (a shared empty array when there are none: do not push to it).
   */
  expire(now: number): ExpiredDatagram[] {
    let out = NO_EXPIRED;
    for (;;) {
      const a = this.head4;
      const b = this.head6;
      const e = a && a.deadline <= now && (!b || a.deadline <= b.deadline) ? a : b && b.deadline <= now ? b : null;
      if (e === null) return out;
      if (e.hdr !== null) {
        if (out === NO_EXPIRED) out = [];
        out.push(this.expired(e));
      }
      this.discard(e, FragDrop.TIMEOUT, 0);
    }
  }

  /** Free everything without counting (stack shutdown). */
  clear(): void {
    this.table.clear();
    this.head4 = this.tail4 = this.head6 = this.tail6 = null;
    this.bytes = 0;
    this.count = 0;
  }

  stats(): ReassemblyStats {
    return { bytes: this.bytes, datagrams: this.count, reassembled: this.done };
  }

  // ---- shared path -------------------------------------------------------------------------

  private reject(reason: FragDropReason): null {
    this.dropFn(reason, 1);
    return null;
  }

  /**
   * Add fragment data `src[pOff, pOff + len)` at fragment offset `off` to the datagram named by
   * the k* key. `hdrLen` counts toward the size limit; `src[hOff, hOff + hLen)` is the header
   * kept from the offset-zero fragment. Returns the entry when it is complete (still in the
   * table: the caller builds its result, then removes it), else null.
   */
  private insert(
    now: number,
    hdrLen: number,
    off: number,
    more: boolean,
    proto: number,
    src: Uint8Array,
    pOff: number,
    len: number,
    hOff: number,
    hLen: number,
  ): Entry | null {
    const end = off + len;
    // RFC 8200 §4.5 / RFC 791: every fragment but the last carries a multiple of 8 bytes; an
    // empty non-final fragment says nothing and would only cost an entry.
    if (more && (len & 7) !== 0) return this.reject(FragDrop.MISALIGNED);
    if (more && len === 0) return this.reject(FragDrop.MALFORMED);

    let e = this.lookup();
    if (e !== null && e.family === 6 && e.proto >= 0) proto = e.proto;

    // The reassembled datagram is the largest header seen plus the farthest end seen; checking it
    // on every fragment keeps a later fragment with a longer header from pushing it past the
    // limit (CVE-2019-14378 was a size computed from the wrong fragment).
    const hdr = e === null || hdrLen > e.maxHdr ? hdrLen : e.maxHdr;
    const far = e !== null && e.maxEnd > end ? e.maxEnd : end;
    if (hdr + far > this.maxLen) return this.kill(e, FragDrop.TOO_BIG);

    const minHdr = minTransportHeader(proto);
    if ((off === 0 && len < minHdr) || (off > 0 && off < minHdr)) return this.kill(e, FragDrop.TINY);

    if (e !== null) {
      if (!more) {
        if ((e.total >= 0 && e.total !== end) || e.maxEnd > end) return this.kill(e, FragDrop.BAD_END);
      } else if (e.total >= 0 && end > e.total) {
        return this.kill(e, FragDrop.BAD_END);
      }
      const b0 = off >>> 3;
      const b1 = (end + 7) >>> 3;
      const bits = e.bits;
      let set = 0;
      for (let b = b0; b < b1; b++) {
        const w = b >>> 5;
        if (w < bits.length && ((bits[w]! >>> (b & 31)) & 1) !== 0) set++;
      }
      if (set !== 0 && set !== b1 - b0) return this.kill(e, FragDrop.OVERLAP);
      if (set !== 0 || (len === 0 && e.total === end)) {
        // Wholly inside data already held: a network duplicate only if byte-identical.
        const buf = e.buf;
        for (let i = 0; i < len; i++) {
          if (buf[off + i] !== src[pOff + i]) return this.kill(e, FragDrop.OVERLAP);
        }
        return this.reject(FragDrop.DUPLICATE);
      }
    } else {
      if (this.count >= this.maxDatagrams) {
        const victim = this.oldest(null);
        if (victim !== null) this.discard(victim, FragDrop.EVICTED, 0);
      }
      if (!this.reserve(ENTRY_OVERHEAD, null)) return this.reject(FragDrop.MEMORY);
      e = this.create(now);
    }

    // Grow the buffer to hold [off, end): exactly to the total once it is known, else by doubling
    // (amortised copying) within the size limit.
    const cap = e.buf.length;
    const storeHdr = off === 0 && e.hdr === null;
    let newCap = cap;
    if (end > cap) {
      const total = more ? e.total : end;
      if (total >= 0) newCap = total;
      else {
        const limit = this.maxLen - hdr;
        newCap = Math.max(end, cap * 2, 1024);
        if (newCap > limit) newCap = limit;
      }
    }
    const newWords = newCap > cap ? bitWords(newCap) : e.bits.length;
    const extra = newCap - cap + (newWords - e.bits.length) * 4 + (storeHdr ? hLen : 0);
    if (extra > 0 && !this.reserve(extra, e)) return this.kill(e, FragDrop.MEMORY);
    if (newCap > cap) {
      const nb = new Uint8Array(newCap);
      if (e.received > 0) nb.set(e.buf.subarray(0, e.maxEnd));
      e.buf = nb;
    }
    if (newWords > e.bits.length) {
      const nw = new Uint32Array(newWords);
      nw.set(e.bits);
      e.bits = nw;
    }
    if (storeHdr) {
      e.hdr = src.slice(hOff, hOff + hLen);
      e.firstLen = len;
      if (e.family === 6) e.proto = proto;
    }
    e.charged += extra;
    this.bytes += extra;

    e.buf.set(src.subarray(pOff, pOff + len), off);
    const bits = e.bits;
    for (let b = off >>> 3, b1 = (end + 7) >>> 3; b < b1; b++) bits[b >>> 5] |= 1 << (b & 31);
    e.received += len;
    e.frags++;
    if (end > e.maxEnd) e.maxEnd = end;
    if (hdrLen > e.maxHdr) e.maxHdr = hdrLen;
    if (!more) e.total = end;
    return e.total >= 0 && e.received === e.total ? e : null;
  }

  private lookup(): Entry | null {
    for (let e = this.table.get(this.kHash) ?? null; e !== null; e = e.chain) {
      if (
        e.family === this.kFamily &&
        e.id === this.kId &&
        e.s0 === this.kS0 &&
        e.d0 === this.kD0 &&
        (this.kFamily === 4
          ? e.proto === this.kProto
          : e.s1 === this.kS1 &&
            e.s2 === this.kS2 &&
            e.s3 === this.kS3 &&
            e.d1 === this.kD1 &&
            e.d2 === this.kD2 &&
            e.d3 === this.kD3)
      ) {
        return e;
      }
    }
    return null;
  }

  private create(now: number): Entry {
    const e = new Entry();
    e.family = this.kFamily;
    e.hash = this.kHash;
    e.s0 = this.kS0;
    e.s1 = this.kS1;
    e.s2 = this.kS2;
    e.s3 = this.kS3;
    e.d0 = this.kD0;
    e.d1 = this.kD1;
    e.d2 = this.kD2;
    e.d3 = this.kD3;
    e.proto = this.kFamily === 4 ? this.kProto : -1;
    e.id = this.kId;
    e.created = now;
    e.deadline = now + (this.kFamily === 4 ? this.timeout4 : this.timeout6);
    e.charged = ENTRY_OVERHEAD;
    this.bytes += ENTRY_OVERHEAD;
    this.count++;
    e.chain = this.table.get(e.hash) ?? null;
    this.table.set(e.hash, e);
    if (e.family === 4) {
      e.prev = this.tail4;
      if (this.tail4) this.tail4.next = e;
      else this.head4 = e;
      this.tail4 = e;
    } else {
      e.prev = this.tail6;
      if (this.tail6) this.tail6.next = e;
      else this.head6 = e;
      this.tail6 = e;
    }
    return e;
  }

  private remove(e: Entry): void {
    const first = this.table.get(e.hash);
    if (first === e) {
      if (e.chain) this.table.set(e.hash, e.chain);
      else this.table.delete(e.hash);
    } else {
      for (let p = first ?? null; p !== null; p = p.chain) {
        if (p.chain === e) {
          p.chain = e.chain;
          break;
        }
      }
    }
    if (e.prev) e.prev.next = e.next;
    else if (e.family === 4) this.head4 = e.next;
    else this.head6 = e.next;
    if (e.next) e.next.prev = e.prev;
    else if (e.family === 4) this.tail4 = e.prev;
    else this.tail6 = e.prev;
    e.prev = e.next = e.chain = null;
    this.bytes -= e.charged;
    this.count--;
    // Release the buffers now: a stale reference to the entry must not pin them.
    e.buf = EMPTY8;
    e.bits = EMPTY32;
    e.charged = 0;
  }

  /** Drop the datagram and the fragment in hand (`extra` = 1) or just the datagram (0). */
  private discard(e: Entry, reason: FragDropReason, extra: number): void {
    const n = e.frags + extra;
    this.remove(e);
    if (n > 0) this.dropFn(reason, n);
  }

  /** Drop the fragment in hand and the datagram it belongs to, if any. */
  private kill(e: Entry | null, reason: FragDropReason): null {
    if (e === null) return this.reject(reason);
    this.discard(e, reason, 1);
    return null;
  }

  /** Oldest datagram of either family other than `keep`. */
  private oldest(keep: Entry | null): Entry | null {
    let a = this.head4;
    if (a !== null && a === keep) a = a.next;
    let b = this.head6;
    if (b !== null && b === keep) b = b.next;
    if (a === null) return b;
    if (b === null) return a;
    return a.created <= b.created ? a : b;
  }

  /** Make room for `extra` more bytes by evicting older datagrams (never `keep`). */
  private reserve(extra: number, keep: Entry | null): boolean {
    // Evicting others is pointless when this datagram cannot fit even alone.
    if (extra + (keep !== null ? keep.charged : 0) > this.maxBytes) return false;
    while (this.bytes + extra > this.maxBytes) {
      const victim = this.oldest(keep);
      if (victim === null) return false;
      this.discard(victim, FragDrop.MEMORY, 0);
    }
    return true;
  }

  private result4(header: Uint8Array, payload: Uint8Array): Reassembled4 {
    return {
      family: 4,
      src: u32(header, 12),
      dst: u32(header, 16),
      protocol: header[9]!,
      id: (header[4]! << 8) | header[5]!,
      ttl: header[8]!,
      tos: header[1]!,
      header,
      payload,
    };
  }

  /** `header` runs from the fixed header through the Fragment header (its last 8 bytes). */
  private result6(header: Uint8Array, nextHeader: number, id: number, src: Uint8Array, off: number, len: number): Reassembled6 {
    const unfrag = header.length - 8;
    const datagram = new Uint8Array(unfrag + len);
    datagram.set(header.subarray(0, unfrag));
    datagram.set(src.subarray(off, off + len), unfrag);
    // Payload Length covers the unfragmentable extension headers too; the size limit checked on
    // every fragment keeps it within 16 bits.
    const plen = unfrag - 40 + len;
    datagram[4] = plen >>> 8;
    datagram[5] = plen;
    // The Next Header that named the Fragment header now names what followed it. Find that field
    // by walking the unfragmentable headers; if they do not lead exactly to the Fragment header
    // (the caller's walk disagrees with ours), keep only the fixed header.
    let field = 6;
    let p = 40;
    while (p < unfrag && p + 2 <= unfrag) {
      field = p;
      p += (datagram[p + 1]! + 1) << 3;
    }
    let out = datagram;
    let body = unfrag;
    if (p === unfrag) {
      datagram[field] = nextHeader;
    } else {
      out = new Uint8Array(40 + len);
      out.set(datagram.subarray(0, 40));
      out.set(datagram.subarray(unfrag), 40);
      out[4] = len >>> 8;
      out[5] = len;
      out[6] = nextHeader;
      body = 40;
    }
    return {
      family: 6,
      src: header.slice(8, 24),
      dst: header.slice(24, 40),
      id,
      nextHeader,
      hopLimit: header[7]!,
      header,
      datagram: out,
      payload: out.subarray(body),
    };
  }

  private expired(e: Entry): ExpiredDatagram {
    const hdr = e.hdr!;
    if (e.family === 4) {
      const n = Math.min(e.firstLen, ICMP4_QUOTE_DATA);
      const quote = new Uint8Array(hdr.length + n);
      quote.set(hdr);
      quote.set(e.buf.subarray(0, n), hdr.length);
      return { family: 4, src: u32(hdr, 12), dst: u32(hdr, 16), quote };
    }
    const h = Math.min(hdr.length, ICMP6_QUOTE_MAX);
    const n = Math.max(0, Math.min(e.firstLen, ICMP6_QUOTE_MAX - h));
    const quote = new Uint8Array(h + n);
    quote.set(hdr.subarray(0, h));
    quote.set(e.buf.subarray(0, n), h);
    return { family: 6, src: hdr.slice(8, 24), dst: hdr.slice(24, 40), quote };
  }
}
