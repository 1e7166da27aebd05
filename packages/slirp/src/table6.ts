/**
 * A flow table keyed by IPv6 addresses and ports that is looked up straight from packet bytes,
 * without allocating: the TCP and UDP NAT find the flow of every IPv6 segment here.
 *
 * Entries carry their key (`a6`/`aPort`, and for 4-tuples `b6`/`bPort`). The table hashes the key
 * bytes to a 32-bit number (FNV-1a over the address octets, mixed with the ports) and keeps a small
 * array per hash; a lookup compares the candidates' addresses with the packet's octets in place.
 * Arrays are allocated when a flow is added (control path), never on lookup. Collisions only cost
 * a comparison; a guest cannot make a bucket grow beyond the flow limit.
 */

export interface Keyed6 {
  /** Guest-side address and port. */
  readonly a6: Uint8Array;
  readonly aPort: number;
  /** Remote address and port for 4-tuple keys; null / 0 for 2-tuple keys. */
  readonly b6: Uint8Array | null;
  readonly bPort: number;
}

function mix(h: number, bytes: Uint8Array, off: number): number {
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ bytes[off + i]!, 0x01000193);
  return h;
}

function same(a: Uint8Array, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bOff + i]) return false;
  return true;
}

export class Table6<T extends Keyed6> {
  private readonly buckets = new Map<number, T[]>();
  private n = 0;

  get size(): number {
    return this.n;
  }

  /** Hash of (a, aPort[, b, bPort]); `b` null for 2-tuple keys. */
  static hash(a: Uint8Array, aOff: number, aPort: number, b: Uint8Array | null, bOff: number, bPort: number): number {
    let h = mix(0x811c9dc5, a, aOff);
    h = Math.imul(h ^ aPort, 0x01000193);
    if (b) {
      h = mix(h, b, bOff);
      h = Math.imul(h ^ bPort, 0x01000193);
    }
    return h >>> 0;
  }

  /** The entry for the key found in packet bytes (a at a[aOff..+16), b at b[bOff..+16) or null). */
  get(a: Uint8Array, aOff: number, aPort: number, b: Uint8Array | null, bOff: number, bPort: number): T | undefined {
    const list = this.buckets.get(Table6.hash(a, aOff, aPort, b, bOff, bPort));
    if (!list) return undefined;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.aPort !== aPort || e.bPort !== (b ? bPort : 0) || !same(e.a6, a, aOff)) continue;
      if (b ? e.b6 !== null && same(e.b6, b, bOff) : e.b6 === null) return e;
    }
    return undefined;
  }

  has(a: Uint8Array, aPort: number, b: Uint8Array | null, bPort: number): boolean {
    return this.get(a, 0, aPort, b, 0, bPort) !== undefined;
  }

  /** Add `e` (its key must not be present). */
  add(e: T): void {
    const h = Table6.hash(e.a6, 0, e.aPort, e.b6, 0, e.bPort);
    const list = this.buckets.get(h);
    if (list) list.push(e);
    else this.buckets.set(h, [e]);
    this.n++;
  }

  /** Remove exactly `e`; false when it is not in the table. */
  delete(e: T): boolean {
    const h = Table6.hash(e.a6, 0, e.aPort, e.b6, 0, e.bPort);
    const list = this.buckets.get(h);
    const i = list ? list.indexOf(e) : -1;
    if (i < 0) return false;
    if (list!.length === 1) this.buckets.delete(h);
    else list!.splice(i, 1);
    this.n--;
    return true;
  }

  forEach(fn: (e: T) => void): void {
    for (const list of this.buckets.values()) for (const e of list) fn(e);
  }

  /** A snapshot of the entries (control path). */
  toArray(): T[] {
    const out: T[] = [];
    this.forEach((e) => out.push(e));
    return out;
  }

  clear(): void {
    this.buckets.clear();
    this.n = 0;
  }
}
