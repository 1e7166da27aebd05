/**
 * The internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * `sum16` returns the 32-bit one's-complement accumulator over a byte range, not yet folded, so
 * pseudo-headers, headers and payloads can be summed separately and combined with `foldSum`.
 * The bulk loop reads 32-bit words through a Uint32Array when the range is 4-byte aligned in its
 * ArrayBuffer (four accumulators, ~10 GB/s on Node 20), else 16-bit words by hand.
 *
 * Byte order: the internet checksum is byte-order independent when summed in 16-bit units, so the
 * aligned path sums native (little-endian) 32-bit words and swaps the folded result once.
 */

/** Sum of big-endian 16-bit words of bytes[off, off+len), plus `initial`. Not folded. */
export function sum16(bytes: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = off;
  const end = off + len;
  // Fast path: long aligned runs through a Uint32Array over the same memory.
  if (len >= 64) {
    const abs = bytes.byteOffset + i;
    const mis = (4 - (abs & 3)) & 3;
    // Bring the pointer to 4-byte alignment with whole 16-bit words where possible.
    if (mis === 0 || mis === 2) {
      if (mis === 2) {
        sum += (bytes[i]! << 8) | bytes[i + 1]!;
        i += 2;
      }
      const words = (end - i) >>> 2;
      const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
      let a = 0, b = 0, c = 0, d = 0;
      let w = 0;
      const w4 = words & ~3;
      // Each accumulator adds at most 2^16 words of 32 bits split into halves, so no overflow
      // of 2^53 for any frame size we handle; split halves to keep it in the safe integer range.
      for (; w < w4; w += 4) {
        const x0 = u32[w]!, x1 = u32[w + 1]!, x2 = u32[w + 2]!, x3 = u32[w + 3]!;
        a += (x0 & 0xffff) + (x0 >>> 16);
        b += (x1 & 0xffff) + (x1 >>> 16);
        c += (x2 & 0xffff) + (x2 >>> 16);
        d += (x3 & 0xffff) + (x3 >>> 16);
      }
      for (; w < words; w++) {
        const x = u32[w]!;
        a += (x & 0xffff) + (x >>> 16);
      }
      // The words were read little-endian: fold, then swap bytes to get the big-endian sum.
      let le = a + b + c + d;
      while (le > 0xffff) le = (le & 0xffff) + Math.floor(le / 65536);
      sum += ((le & 0xff) << 8) | (le >>> 8);
      i += words << 2;
    }
  }
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  return sum;
}

/** Fold a 32-bit (or larger) accumulator to 16 bits, without complementing. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

/** The internet checksum of bytes[off, off+len) with an optional initial sum (e.g. pseudo-header). */
export function checksum(bytes: Uint8Array, off: number, len: number, initial = 0): number {
  return ~foldSum(sum16(bytes, off, len, initial)) & 0xffff;
}

/** Pseudo-header sum for IPv4 (RFC 793 §3.1 / RFC 768): src, dst, zero+proto, length. */
export function pseudoSumV4(bytes: Uint8Array, srcOff: number, dstOff: number, proto: number, l4len: number): number {
  return (
    ((bytes[srcOff]! << 8) | bytes[srcOff + 1]!) +
    ((bytes[srcOff + 2]! << 8) | bytes[srcOff + 3]!) +
    ((bytes[dstOff]! << 8) | bytes[dstOff + 1]!) +
    ((bytes[dstOff + 2]! << 8) | bytes[dstOff + 3]!) +
    proto +
    l4len
  );
}

/** Pseudo-header sum for IPv6 (RFC 8200 §8.1): src, dst, upper-layer length, next header. */
export function pseudoSumV6(bytes: Uint8Array, srcOff: number, dstOff: number, nextHeader: number, l4len: number): number {
  let s = 0;
  for (let k = 0; k < 16; k += 2) {
    s += ((bytes[srcOff + k]! << 8) | bytes[srcOff + k + 1]!) + ((bytes[dstOff + k]! << 8) | bytes[dstOff + k + 1]!);
  }
  return s + (l4len >>> 16) + (l4len & 0xffff) + nextHeader;
}

/**
 * Incremental update (RFC 1624 eqn. 3): HC' = ~(~HC + ~m + m'), for one 16-bit field changing
 * from `oldWord` to `newWord`. Use it for NAT rewrites and TTL decrements.
 */
export function updateChecksum16(hc: number, oldWord: number, newWord: number): number {
  const s = (~hc & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~foldSum(s) & 0xffff;
}

/** Incremental update for a 32-bit field (an IPv4 address) changing from `oldV` to `newV`. */
export function updateChecksum32(hc: number, oldV: number, newV: number): number {
  const s =
    (~hc & 0xffff) +
    (~(oldV >>> 16) & 0xffff) +
    (~oldV & 0xffff) +
    ((newV >>> 16) & 0xffff) +
    (newV & 0xffff);
  return ~foldSum(s) & 0xffff;
}
