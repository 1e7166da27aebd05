/**
 * Ethernet II framing (IEEE 802.3 with an EtherType) and one IEEE 802.1Q VLAN tag.
 *
 * The view sees the frame without preamble or FCS, as TAP devices, QEMU streams and pcap files
 * carry it. A single 802.1Q tag (TPID 0x8100) is recognised: `vlanId` is its VID (or -1 when the
 * frame is untagged), `ethertype` is the inner EtherType and `payloadOffset` points past the tag,
 * so a stack can ignore tagging unless it cares. Not supported: stacked tags (802.1ad QinQ,
 * TPID 0x88a8, is reported as an EtherType like any other), 802.3 length/LLC frames (EtherType
 * < 0x0600 is reported as is), the DEI bit (read as part of the TCI, emitted as 0).
 * Minimum frame size (60 bytes) padding is the sender's business: `emitEthernet` writes headers only.
 */
import { EMPTY, readU16, writeU16 } from './addr.ts';

export const EthernetField = { DST: 0, SRC: 6, ETHERTYPE: 12, VLAN_TCI: 14, VLAN_ETHERTYPE: 16 } as const;

/** Untagged header length. */
export const ETHERNET_HEADER_LEN = 14;
/** Header length with one 802.1Q tag. */
export const ETHERNET_VLAN_HEADER_LEN = 18;
/** Minimum frame length without FCS; shorter frames are padded by senders (IEEE 802.3 §3.2.8). */
export const ETHERNET_MIN_FRAME_LEN = 60;

export const EtherType = { IPv4: 0x0800, ARP: 0x0806, IPv6: 0x86dd, VLAN: 0x8100 } as const;

/** ff:ff:ff:ff:ff:ff. Shared: never write to it. */
export const MAC_BROADCAST: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** Group bit (I/G, the least significant bit of the first octet): multicast, including broadcast. */
export function isMulticastMac(b: Uint8Array, off = 0): boolean {
  return (b[off]! & 1) !== 0;
}

export function isBroadcastMac(b: Uint8Array, off = 0): boolean {
  return (b[off]! & b[off + 1]! & b[off + 2]! & b[off + 3]! & b[off + 4]! & b[off + 5]!) === 0xff;
}

export class EthernetView {
  bytes: Uint8Array = EMPTY;
  off = 0;
  len = 0;
  /** Header length: 14, or 18 with a VLAN tag. */
  headerLen = ETHERNET_HEADER_LEN;

  /** Point the view at bytes[off, off+len). False when shorter than the (tagged) header. */
  reset(bytes: Uint8Array, off: number, len: number): boolean {
    if (off < 0 || len < ETHERNET_HEADER_LEN || off + len > bytes.length) return false;
    let hl = ETHERNET_HEADER_LEN;
    if (readU16(bytes, off + EthernetField.ETHERTYPE) === EtherType.VLAN) {
      if (len < ETHERNET_VLAN_HEADER_LEN) return false;
      hl = ETHERNET_VLAN_HEADER_LEN;
    }
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    this.headerLen = hl;
    return true;
  }

  /** Absolute offset of the destination MAC in `bytes`. */
  get dstOffset(): number {
    return this.off + EthernetField.DST;
  }
  /** Absolute offset of the source MAC in `bytes`. */
  get srcOffset(): number {
    return this.off + EthernetField.SRC;
  }
  get isBroadcast(): boolean {
    return isBroadcastMac(this.bytes, this.off);
  }
  get isMulticast(): boolean {
    return isMulticastMac(this.bytes, this.off);
  }
  setDst(mac: Uint8Array, macOff = 0): void {
    for (let i = 0; i < 6; i++) this.bytes[this.off + i] = mac[macOff + i]!;
  }
  setSrc(mac: Uint8Array, macOff = 0): void {
    for (let i = 0; i < 6; i++) this.bytes[this.off + 6 + i] = mac[macOff + i]!;
  }
  copyDst(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 6; i++) out[outOff + i] = this.bytes[this.off + i]!;
  }
  copySrc(out: Uint8Array, outOff = 0): void {
    for (let i = 0; i < 6; i++) out[outOff + i] = this.bytes[this.off + 6 + i]!;
  }

  /** The EtherType at offset 12 (0x8100 for a tagged frame). */
  get outerEthertype(): number {
    return readU16(this.bytes, this.off + EthernetField.ETHERTYPE);
  }
  /** The payload's EtherType: the inner one for a tagged frame. */
  get ethertype(): number {
    return readU16(this.bytes, this.off + this.headerLen - 2);
  }
  set ethertype(v: number) {
    writeU16(this.bytes, this.off + this.headerLen - 2, v);
  }
  /** VLAN ID (0–4095), or -1 when untagged. */
  get vlanId(): number {
    return this.headerLen === ETHERNET_VLAN_HEADER_LEN ? readU16(this.bytes, this.off + EthernetField.VLAN_TCI) & 0x0fff : -1;
  }
  /** 802.1p priority code point, 0 when untagged. */
  get vlanPcp(): number {
    return this.headerLen === ETHERNET_VLAN_HEADER_LEN ? this.bytes[this.off + EthernetField.VLAN_TCI]! >>> 5 : 0;
  }
  get payloadOffset(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.len - this.headerLen;
  }
}

export interface EthernetRepr {
  dst: Uint8Array;
  src: Uint8Array;
  /** The payload's EtherType (inner type when tagged). */
  ethertype: number;
  /** VLAN ID 0–4095, or -1 for an untagged frame. */
  vlanId: number;
  /** 802.1p priority (0–7); ignored when untagged. Parse reports 0 for untagged frames. */
  vlanPcp?: number;
}

export function parseEthernet(v: EthernetView): EthernetRepr {
  const dst = new Uint8Array(6);
  const src = new Uint8Array(6);
  v.copyDst(dst);
  v.copySrc(src);
  return { dst, src, ethertype: v.ethertype, vlanId: v.vlanId, vlanPcp: v.vlanPcp };
}

export function ethernetHeaderLen(r: EthernetRepr): number {
  return r.vlanId >= 0 ? ETHERNET_VLAN_HEADER_LEN : ETHERNET_HEADER_LEN;
}

/** Write the header at buf[off]; returns its length (14 or 18). */
export function emitEthernet(r: EthernetRepr, buf: Uint8Array, off: number): number {
  for (let i = 0; i < 6; i++) {
    buf[off + i] = r.dst[i]!;
    buf[off + 6 + i] = r.src[i]!;
  }
  if (r.vlanId >= 0) {
    writeU16(buf, off + EthernetField.ETHERTYPE, EtherType.VLAN);
    writeU16(buf, off + EthernetField.VLAN_TCI, (((r.vlanPcp ?? 0) & 7) << 13) | (r.vlanId & 0x0fff));
    writeU16(buf, off + EthernetField.VLAN_ETHERTYPE, r.ethertype);
    return ETHERNET_VLAN_HEADER_LEN;
  }
  writeU16(buf, off + EthernetField.ETHERTYPE, r.ethertype);
  return ETHERNET_HEADER_LEN;
}
