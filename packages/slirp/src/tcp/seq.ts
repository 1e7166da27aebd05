/**
 * 32-bit TCP sequence-number arithmetic (RFC 9293 §3.4).
 *
 * Sequence numbers are unsigned 32-bit values that wrap; two of them compare by the sign of their
 * difference taken modulo 2^32 (serial-number arithmetic, RFC 1982), which is only meaningful
 * while they are less than 2^31 apart — always true inside a TCP window (max 2^30, RFC 7323 §2.3).
 * Values are plain JS numbers in [0, 2^32); `>>> 0` brings a sum back into range and `| 0` turns a
 * difference into its signed 32-bit form. The same helpers serve for RFC 7323 timestamps.
 */

/** `a + n` modulo 2^32 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance `a - b` in (-2^31, 2^31]: positive when `a` is after `b`. */
export function seqSub(a: number, b: number): number {
  return (a - b) | 0;
}

/** `a` strictly before `b`. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** `a` before or equal to `b`. */
export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** `a` strictly after `b`. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** `a` after or equal to `b`. */
export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return ((a - b) | 0) >= 0 ? a : b;
}

/** The earlier of two sequence numbers. */
export function seqMin(a: number, b: number): number {
  return ((a - b) | 0) <= 0 ? a : b;
}
