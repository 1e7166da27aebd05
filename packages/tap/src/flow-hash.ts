/**
 * Queue selection for multi-queue taps (IFF_MULTI_QUEUE): frames of one flow always go to the
 * same queue (so TCP segments are not reordered across queues), different flows spread out.
 *
 * The hash covers IPv4/IPv6 source and destination addresses and, for TCP/UDP/SCTP, the ports
 * (not for IPv4 fragments after the first: they have no ports). Anything else (ARP, …) hashes the
 * destination MAC. IPv6 extension headers are not walked: such packets hash on addresses only.
 * Reads bytes in place; no allocation.
 */

/** FNV-1a step over one byte. */
function mix(h: number, b: number): number {
  return Math.imul(h ^ b, 0x01000193);
}

/** A 32-bit flow hash of the Ethernet frame starting at `off` (after any vnet header). */
export function flowHash(f: Uint8Array, off: number): number {
  const n = f.length;
  let h = 0x811c9dc5;
  if (n < off + 14) return h >>> 0;
  const et = (f[off + 12]! << 8) | f[off + 13]!;
  const l3 = off + 14;
  let proto = -1;
  let l4 = -1;
  if (et === 0x0800 && n >= l3 + 20) {
    for (let i = l3 + 12; i < l3 + 20; i++) h = mix(h, f[i]!);
    proto = f[l3 + 9]!;
    const fragOff = ((f[l3 + 6]! & 0x1f) << 8) | f[l3 + 7]!;
    if (fragOff === 0) l4 = l3 + (f[l3]! & 0x0f) * 4;
  } else if (et === 0x86dd && n >= l3 + 40) {
    for (let i = l3 + 8; i < l3 + 40; i++) h = mix(h, f[i]!);
    proto = f[l3 + 6]!;
    l4 = l3 + 40;
  } else {
    for (let i = off; i < off + 6; i++) h = mix(h, f[i]!);
    return h >>> 0;
  }
  h = mix(h, proto);
  if ((proto === 6 || proto === 17 || proto === 132) && l4 >= 0 && n >= l4 + 4) {
    for (let i = l4; i < l4 + 4; i++) h = mix(h, f[i]!);
  }
  return h >>> 0;
}
