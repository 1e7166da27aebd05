/**
 * ARP for IPv4 over Ethernet (RFC 826), the only combination a virtual NIC needs.
 *
 * `reset` accepts only htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, so after it succeeds
 * every field has a fixed offset. Other hardware/protocol pairs are rejected, not parsed.
 * Opcodes other than request/reply (RARP 3/4, InARP 8/9) pass validation and are reported as is;
 * the stack decides what to ignore. Trailing Ethernet padding after the 28 bytes is allowed.
 */
import { EMPTY, readU16, readU32, writeU16, writeU32 } from './addr.ts';

export const ArpField = { HTYPE: 0, PTYPE: 2, HLEN: 4, PLEN: 5, OPER: 6, SHA: 8, SPA: 14, THA: 18, TPA: 24 } as const;

/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_LEN = 28;

export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;

const HTYPE_ETHERNET = 1;
const PTYPE_IPV4 = 0x0800;

export class ArpView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** False unless this is a complete Ethernet/IPv4 ARP packet. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < ARP_LEN || off + len > bytes.length) return false;
    if (
      readU16(bytes, off + ArpField.HTYPE) !== HTYPE_ETHERNET ||
      readU16(bytes, off + ArpField.PTYPE) !== PTYPE_IPV4 ||
      bytes[off + ArpField.HLEN] !== 6 ||
      bytes[off + ArpField.PLEN] !== 4
    ) {
      return false;
    }
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return true;
  }

  get op(): number {
    return readU16(this.bytes, this.off + ArpField.OPER);
  }
  set op(v: number) {
    writeU16(this.bytes, this.off + ArpField.OPER, v);
  }
  /** Absolute offset of the sender hardware address. */
  get senderMacOffset(): number {
    return this.off + ArpField.SHA;
  }
  /** Absolute offset of the target hardware address. */
  get targetMacOffset(): number {
    return this.off + ArpField.THA;
  }
  get senderIp(): number {
    return readU32(this.bytes, this.off + ArpField.SPA);
  }
  set senderIp(v: number) {
    writeU32(this.bytes, this.off + ArpField.SPA, v);
  }
  get targetIp(): number {
    return readU32(this.bytes, this.off + ArpField.TPA);
  }
  set targetIp(v: number) {
    writeU32(this.bytes, this.off + ArpField.TPA, v);
  }
  copySenderMac(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 6; i++) out[outOff + i] = this.bytes[this.off + ArpField.SHA + i]!;
  }
  copyTargetMac(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 6; i++) out[outOff + i] = this.bytes[this.off + ArpField.THA + i]!;
  }
  setSenderMac(mac: Uint8Array, macOff = 0): void {
    for (let i = 0; i < 6; i++) this.bytes[this.off + ArpField.SHA + i] = mac[macOff + i]!;
  }
  setTargetMac(mac: Uint8Array, macOff = 0): void {
    for (let i = 0; i < 6; i++) this.bytes[this.off + ArpField.THA + i] = mac[macOff + i]!;
  }
  /** Gratuitous ARP (RFC 5227 §3): sender and target protocol addresses are equal. */
  get isGratuitous(): boolean {
    return this.senderIp === this.targetIp;
  }
}

export interface ArpRepr {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

export function parseArp(v: ArpView): ArpRepr {
  const senderMac = new Uint8Array(6);
  const targetMac = new Uint8Array(6);
  v.copySenderMac(senderMac);
  v.copyTargetMac(targetMac);
  return { op: v.op, senderMac, senderIp: v.senderIp, targetMac, targetIp: v.targetIp };
}

/** Write the 28-byte packet at buf[off]; returns 28. */
export function emitArp(r: ArpRepr, buf: Uint8Array, off: number): number {
  writeU16(buf, off + ArpField.HTYPE, HTYPE_ETHERNET);
  writeU16(buf, off + ArpField.PTYPE, PTYPE_IPV4);
  buf[off + ArpField.HLEN] = 6;
  buf[off + ArpField.PLEN] = 4;
  writeU16(buf, off + ArpField.OPER, r.op);
  for (let i = 0; i < 6; i++) {
    buf[off + ArpField.SHA + i] = r.senderMac[i]!;
    buf[off + ArpField.THA + i] = r.targetMac[i]!;
  }
  writeU32(buf, off + ArpField.SPA, r.senderIp);
  writeU32(buf, off + ArpField.TPA, r.targetIp);
  return ARP_LEN;
}
