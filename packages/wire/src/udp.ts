/**
 * UDP header (RFC 768) and its pseudo-header checksum for IPv4 (RFC 768) and IPv6 (RFC 8200 §8.1).
 *
 * `reset` takes the IP payload and checks 8 <= length field <= available; bytes past the length
 * field are excluded from the payload (RFC 768 leaves that case open; Linux trims likewise).
 * Checksum rules: over IPv4 a zero field means "no checksum" and verifies; over IPv6 a zero field
 * is invalid (RFC 8200 §8.1; the RFC 6935/6936 tunnel exception is not supported). A computed sum of
 * 0 is sent as 0xffff. The checksum helpers take the IP header's location (`ip`, `ipOff`) to read
 * the addresses, or a precomputed pseudo-header sum (`ipv4PseudoSum` / `ipv6PseudoSum`).
 */
import { EMPTY, readU16, writeU16 } from './addr.ts';
import { checksum, pseudoSumV4, pseudoSumV6 } from './checksum.ts';

export const UdpField = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6 } as const;

export const UDP_HEADER_LEN = 8;

const PROTO_UDP = 17;

export class UdpView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** Point the view at the IP payload bytes[off, off+len). False when the length field lies. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < UDP_HEADER_LEN || off + len > bytes.length) return false;
    const l = readU16(bytes, off + UdpField.LENGTH);
    if (l < UDP_HEADER_LEN || l > len) return false;
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get srcPort(): number {
    return readU16(this.bytes, this.off + UdpField.SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.bytes, this.off + UdpField.SRC_PORT, v);
  }
  get dstPort(): number {
    return readU16(this.bytes, this.off + UdpField.DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.bytes, this.off + UdpField.DST_PORT, v);
  }
  /** The length field: header + payload. */
  get length(): number {
    return readU16(this.bytes, this.off + UdpField.LENGTH);
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + UdpField.CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + UdpField.CHECKSUM, v);
  }
  get payloadOffset(): number {
    return this.off + UDP_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.length - UDP_HEADER_LEN;
  }

  /** Verify against a pseudo-header sum; a zero field passes only when `zeroMeansNone` (IPv4). */
  verifyChecksumPseudo(pseudoSum: number, zeroMeansNone: boolean): boolean {
    if (this.checksum === 0) return zeroMeansNone;
    return checksum(this.bytes, this.off, this.length, pseudoSum) === 0;
  }
  /** Fill the checksum from a pseudo-header sum (0 is sent as 0xffff). */
  fillChecksumPseudo(pseudoSum: number): void {
    const p = this.off + UdpField.CHECKSUM;
    this.bytes[p] = 0;
    this.bytes[p + 1] = 0;
    writeU16(this.bytes, p, checksum(this.bytes, this.off, this.length, pseudoSum) || 0xffff);
  }
  /** `ip[ipOff]` is the IPv4 header carrying this datagram. */
  verifyChecksumV4(ip: Uint8Array, ipOff: number): boolean {
    return this.verifyChecksumPseudo(pseudoSumV4(ip, ipOff + 12, ipOff + 16, PROTO_UDP, this.length), true);
  }
  fillChecksumV4(ip: Uint8Array, ipOff: number): void {
    this.fillChecksumPseudo(pseudoSumV4(ip, ipOff + 12, ipOff + 16, PROTO_UDP, this.length));
  }
  /** `ip[ipOff]` is the IPv6 fixed header carrying this datagram. */
  verifyChecksumV6(ip: Uint8Array, ipOff: number): boolean {
    return this.verifyChecksumPseudo(pseudoSumV6(ip, ipOff + 8, ipOff + 24, PROTO_UDP, this.length), false);
  }
  fillChecksumV6(ip: Uint8Array, ipOff: number): void {
    this.fillChecksumPseudo(pseudoSumV6(ip, ipOff + 8, ipOff + 24, PROTO_UDP, this.length));
  }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadLen: number;
}

export function parseUdp(v: UdpView): UdpRepr {
  return { srcPort: v.srcPort, dstPort: v.dstPort, payloadLen: v.payloadLen };
}

/**
 * Write the 8-byte header at buf[off]; returns 8. With `pseudoSum` >= 0 the payload must already
 * be at buf[off+8, off+8+payloadLen) and the checksum is filled; otherwise it is left 0 (which
 * over IPv4 means "no checksum").
 */
export function emitUdp(r: UdpRepr, buf: Uint8Array, off: number, pseudoSum = -1): number {
  const len = UDP_HEADER_LEN + r.payloadLen;
  writeU16(buf, off + UdpField.SRC_PORT, r.srcPort);
  writeU16(buf, off + UdpField.DST_PORT, r.dstPort);
  writeU16(buf, off + UdpField.LENGTH, len);
  buf[off + UdpField.CHECKSUM] = 0;
  buf[off + UdpField.CHECKSUM + 1] = 0;
  if (pseudoSum >= 0) writeU16(buf, off + UdpField.CHECKSUM, checksum(buf, off, len, pseudoSum) || 0xffff);
  return UDP_HEADER_LEN;
}
