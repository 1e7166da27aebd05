/**
 * Neighbour caches: which guest MAC an IPv4 or IPv6 address lives at, for the link-layer
 * destination of every frame the stack sends (FrameOut's `macFor4` / `macFor6`) and for ARP.
 *
 * Theory of operation
 * - Sources: DHCP leases, ARP requests/replies, NDP NS/NA link-layer options, and the source
 *   addresses of IP packets from the guest all call `learn4` / `learn6`. There is no resolution
 *   protocol of our own (we never send ARP requests or NS): slirp has one guest on the link, so
 *   when an address is unknown the most recently seen guest MAC is the right answer
 *   (`macFor4` / `macFor6` fall back to it; `lookup4` / `lookup6` do not).
 * - IPv4: a Map keyed by the u32 address. IPv6: a Map keyed by a 32-bit hash of the 16 octets,
 *   with collisions chained through the entries, so neither lookup allocates (no string keys on
 *   the per-packet path). Entries keep their own 6-byte MAC, updated in place on re-learning.
 * - Bounded: at most `max4` / `max6` entries (a guest can invent source addresses freely). When
 *   full, the least recently learned entry is evicted ("LRU-ish": recency is refreshed by learning,
 *   not by lookups, which keeps lookups write-free). Finding the victim is a linear scan, paid
 *   only when inserting into a full table; the evicted entry object is reused, so a table at its
 *   bound does not allocate either.
 * - Not learned: multicast / broadcast / all-zero MACs, IPv4 0.0.0.0, 255.255.255.255 and
 *   224.0.0.0/4, IPv6 :: and ff00::/8. Entries do not expire (no NUD): a guest that moves to a
 *   new MAC re-announces itself (gratuitous ARP, unsolicited NA, DHCP), which overwrites them.
 *
 * Ownership: the arrays returned by lookups are the table's own and are valid until the next
 * `learn*` / `clear` call; FrameOut copies them into the frame at once.
 */

class Entry4 {
  ip = 0;
  readonly mac = new Uint8Array(6);
  seen = 0;
}

class Entry6 {
  readonly ip = new Uint8Array(16);
  readonly mac = new Uint8Array(6);
  seen = 0;
  hash = 0;
  /** Next entry with the same hash. */
  next: Entry6 | null = null;
}

export interface NeighborTableOptions {
  /** Most IPv4 entries kept (default 256). */
  max4?: number;
  /** Most IPv6 entries kept (default 256). */
  max6?: number;
}

/** A MAC we can send to: unicast and not all zeros. */
function usableMac(mac: Uint8Array, off: number): boolean {
  if (mac.length < off + 6) return false;
  if ((mac[off]! & 1) !== 0) return false;
  return (mac[off]! | mac[off + 1]! | mac[off + 2]! | mac[off + 3]! | mac[off + 4]! | mac[off + 5]!) !== 0;
}

/** FNV-1a style mix of the four 32-bit words of an IPv6 address. */
function hash6(ip: Uint8Array, off: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    const w = (ip[off + i]! << 24) | (ip[off + i + 1]! << 16) | (ip[off + i + 2]! << 8) | ip[off + i + 3]!;
    h = Math.imul(h ^ w, 0x01000193);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

function same16(a: Uint8Array, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bOff + i]) return false;
  return true;
}

export class NeighborTable {
  readonly max4: number;
  readonly max6: number;
  private readonly v4 = new Map<number, Entry4>();
  private readonly v6 = new Map<number, Entry6>();
  private count6 = 0;
  /** Monotonic learning counter: the recency order for eviction. */
  private tick = 0;
  private readonly last = new Uint8Array(6);
  private hasLast = false;
  /** Entries pushed out by a full table (a guest inventing addresses), both families. */
  evictions = 0;

  constructor(opts: NeighborTableOptions = {}) {
    this.max4 = Math.max(1, Math.floor(opts.max4 ?? 256));
    this.max6 = Math.max(1, Math.floor(opts.max6 ?? 256));
  }

  get size4(): number {
    return this.v4.size;
  }

  get size6(): number {
    return this.count6;
  }

  /** The most recently seen guest MAC, or null before the guest has sent anything usable. */
  get lastMac(): Uint8Array | null {
    return this.hasLast ? this.last : null;
  }

  /** Remember the guest's MAC without an address (any frame from the guest). */
  noteMac(mac: Uint8Array, macOff = 0): void {
    if (!usableMac(mac, macOff)) return;
    for (let i = 0; i < 6; i++) this.last[i] = mac[macOff + i]!;
    this.hasLast = true;
  }

  /** `ip` (u32) is at `mac`. False when either is not something we would send to. */
  learn4(ip: number, mac: Uint8Array, macOff = 0): boolean {
    ip >>>= 0;
    if (!usableMac(mac, macOff)) return false;
    this.noteMac(mac, macOff);
    if (ip === 0 || ip === 0xffffffff || ip >>> 28 === 0xe) return false;
    let e = this.v4.get(ip);
    if (e === undefined) {
      if (this.v4.size >= this.max4) {
        e = this.oldest4();
        this.v4.delete(e.ip);
        this.evictions++;
      } else {
        e = new Entry4();
      }
      e.ip = ip;
      this.v4.set(ip, e);
    }
    for (let i = 0; i < 6; i++) e.mac[i] = mac[macOff + i]!;
    e.seen = ++this.tick;
    return true;
  }

  /** `ip[ipOff..+16)` is at `mac`. False when either is not something we would send to. */
  learn6(ip: Uint8Array, mac: Uint8Array, ipOff = 0, macOff = 0): boolean {
    if (!usableMac(mac, macOff) || ip.length < ipOff + 16) return false;
    this.noteMac(mac, macOff);
    if (ip[ipOff] === 0xff) return false;
    let zero = true;
    for (let i = 0; i < 16; i++) if (ip[ipOff + i] !== 0) zero = false;
    if (zero) return false;
    const h = hash6(ip, ipOff);
    let e = this.find6(ip, ipOff, h);
    if (e === null) {
      if (this.count6 >= this.max6) {
        e = this.oldest6();
        this.unlink6(e);
        this.evictions++;
      } else {
        e = new Entry6();
      }
      for (let i = 0; i < 16; i++) e.ip[i] = ip[ipOff + i]!;
      e.hash = h;
      e.next = this.v6.get(h) ?? null;
      this.v6.set(h, e);
      this.count6++;
    }
    for (let i = 0; i < 6; i++) e.mac[i] = mac[macOff + i]!;
    e.seen = ++this.tick;
    return true;
  }

  /** The MAC learned for `ip`, or null. No fallback. */
  lookup4(ip: number): Uint8Array | null {
    const e = this.v4.get(ip >>> 0);
    return e === undefined ? null : e.mac;
  }

  /** The MAC learned for `ip[off..+16)`, or null. No fallback. */
  lookup6(ip: Uint8Array, off = 0): Uint8Array | null {
    if (ip.length < off + 16) return null;
    const e = this.find6(ip, off, hash6(ip, off));
    return e === null ? null : e.mac;
  }

  /** Link-layer destination for `ip`: the learned MAC, else the last seen guest MAC, else null. */
  macFor4(ip: number): Uint8Array | null {
    const e = this.v4.get(ip >>> 0);
    if (e !== undefined) return e.mac;
    return this.hasLast ? this.last : null;
  }

  /** Link-layer destination for `ip[off..+16)`: learned, else last seen guest MAC, else null. */
  macFor6(ip: Uint8Array, off = 0): Uint8Array | null {
    const m = this.lookup6(ip, off);
    if (m !== null) return m;
    return this.hasLast ? this.last : null;
  }

  forget4(ip: number): void {
    this.v4.delete(ip >>> 0);
  }

  forget6(ip: Uint8Array, off = 0): void {
    if (ip.length < off + 16) return;
    const e = this.find6(ip, off, hash6(ip, off));
    if (e !== null) this.unlink6(e);
  }

  /** Forget everything, including the fallback MAC. */
  clear(): void {
    this.v4.clear();
    this.v6.clear();
    this.count6 = 0;
    this.hasLast = false;
    this.last.fill(0);
  }

  private find6(ip: Uint8Array, off: number, h: number): Entry6 | null {
    for (let e = this.v6.get(h) ?? null; e !== null; e = e.next) if (same16(e.ip, ip, off)) return e;
    return null;
  }

  private unlink6(e: Entry6): void {
    const head = this.v6.get(e.hash);
    if (head === e) {
      if (e.next === null) this.v6.delete(e.hash);
      else this.v6.set(e.hash, e.next);
    } else {
      for (let p = head ?? null; p !== null; p = p.next) {
        if (p.next === e) {
          p.next = e.next;
          break;
        }
      }
    }
    e.next = null;
    this.count6--;
  }

  private oldest4(): Entry4 {
    let best: Entry4 | null = null;
    for (const e of this.v4.values()) if (best === null || e.seen < best.seen) best = e;
    return best!;
  }

  private oldest6(): Entry6 {
    let best: Entry6 | null = null;
    for (const head of this.v6.values()) {
      for (let e: Entry6 | null = head; e !== null; e = e.next) if (best === null || e.seen < best.seen) best = e;
    }
    return best!;
  }
}
