/**
 * IPv6 Neighbor Discovery (RFC 4861): Router Solicitation, Router Advertisement, Neighbor
 * Solicitation and Neighbor Advertisement, with the options a router on a virtual link sends
 * and reads: source/target link-layer address (§4.6.1), prefix information (§4.6.2), MTU
 * (§4.6.4), recursive DNS servers and DNS search list (RFC 8106 §5.1, §5.2).
 *
 * Theory of operation: NDP messages are ICMPv6 messages, so they are read through an
 * `Icmpv6View` (ICMPv6 checksum included). `NdpOptionCursor` walks the option list without
 * allocating and stops on the first malformed option (length 0, or running past the message:
 * RFC 4861 §4.6 says such a packet must be discarded). `parseNdp` checks the per-message rules
 * this layer can see (§6.1, §7.1.1, §7.1.2: code 0, minimum length, valid options, target not
 * multicast) and returns a repr whose options keep their order, so real messages round-trip
 * byte for byte. A known option with a length its format does not allow is kept as `unknown`
 * rather than failing the whole message.
 *
 * The rules that need the IP header (hop limit 255, no SLLA from the unspecified address, S=0
 * to multicast) are for the caller, which has that header. Redirect (137), route information
 * (RFC 4191) and SEND options are not typed: Redirect parses to null, other options to `unknown`.
 */
import { EMPTY, readU16, readU32, writeU32 } from './addr.ts';
import { Icmpv6Type, icmpv6Checksum } from './icmpv6.ts';
import type { Icmpv6View } from './icmpv6.ts';
import { decodeDnsName, dnsNameWireLen, encodeDnsName } from './dns.ts';

/** Offsets inside an NDP message (from the ICMPv6 type octet). */
export const NdpField = {
  RA_CUR_HOP_LIMIT: 4,
  RA_FLAGS: 5,
  RA_ROUTER_LIFETIME: 6,
  RA_REACHABLE_TIME: 8,
  RA_RETRANS_TIMER: 12,
  NA_FLAGS: 4,
  TARGET: 8,
} as const;

/** Where the options start, per message type. */
export const NdpOptionsOffset = { RS: 8, RA: 16, NS: 24, NA: 24 } as const;

export const NdpRaFlag = { MANAGED: 0x80, OTHER: 0x40 } as const;
export const NdpNaFlag = { ROUTER: 0x80, SOLICITED: 0x40, OVERRIDE: 0x20 } as const;
export const NdpPrefixFlag = { ON_LINK: 0x80, AUTONOMOUS: 0x40 } as const;

export const NdpOptionType = {
  SOURCE_LINK_ADDR: 1,
  TARGET_LINK_ADDR: 2,
  PREFIX_INFO: 3,
  REDIRECTED_HEADER: 4,
  MTU: 5,
  ROUTE_INFO: 24,
  RDNSS: 25,
  DNSSL: 31,
} as const;

/** Lifetime meaning "forever" (RFC 4861 §4.6.2, RFC 8106 §5.1). */
export const NDP_INFINITE_LIFETIME = 0xffffffff;

/**
 * Allocation-free walk over NDP options in bytes[off, off+len). After `next()` returns true,
 * `type`, `optOff` (the option's first octet) and `optLen` (its whole length in octets) describe
 * one option. `next()` returns false at the end; `malformed` tells a clean end from a bad option.
 */
export class NdpOptionCursor {
  bytes: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  type = 0;
  optOff = 0;
  optLen = 0;
  malformed = false;

  reset(bytes: Uint8Array, off: number, len: number): this {
    this.bytes = bytes;
    this.pos = off;
    this.end = Math.min(off + len, bytes.length);
    this.malformed = false;
    return this;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    if (this.pos + 2 > this.end) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    const units = this.bytes[this.pos + 1]!;
    const n = units * 8;
    if (n === 0 || this.pos + n > this.end) {
      this.malformed = true;
      this.pos = this.end;
      return false;
    }
    this.type = this.bytes[this.pos]!;
    this.optOff = this.pos;
    this.optLen = n;
    this.pos += n;
    return true;
  }
}

export interface NdpPrefixInfo {
  kind: 'prefixInfo';
  prefixLen: number;
  onLink: boolean;
  autonomous: boolean;
  validLifetime: number;
  preferredLifetime: number;
  prefix: Uint8Array;
}

export type NdpOption =
  /** `addr` is the option body: 6 octets on Ethernet. */
  | { kind: 'sourceLinkAddr'; addr: Uint8Array }
  | { kind: 'targetLinkAddr'; addr: Uint8Array }
  | NdpPrefixInfo
  | { kind: 'mtu'; mtu: number }
  | { kind: 'rdnss'; lifetime: number; servers: Uint8Array[] }
  | { kind: 'dnssl'; lifetime: number; domains: string[] }
  /** Anything else; `data` is the option after its type and length octets. */
  | { kind: 'unknown'; type: number; data: Uint8Array };

export type NdpRepr =
  | { kind: 'routerSolicit'; options: NdpOption[] }
  | {
      kind: 'routerAdvert';
      curHopLimit: number;
      managed: boolean;
      other: boolean;
      /** Default router preference bits (RFC 4191 §2.2): 0 medium, 1 high, 3 low. */
      preference: number;
      routerLifetime: number;
      reachableTime: number;
      retransTimer: number;
      options: NdpOption[];
    }
  | { kind: 'neighborSolicit'; target: Uint8Array; options: NdpOption[] }
  | {
      kind: 'neighborAdvert';
      router: boolean;
      solicited: boolean;
      override: boolean;
      target: Uint8Array;
      options: NdpOption[];
    };

function decodeOption(b: Uint8Array, o: number, n: number): NdpOption {
  const type = b[o]!;
  const unknown = (): NdpOption => ({ kind: 'unknown', type, data: b.slice(o + 2, o + n) });
  switch (type) {
    case NdpOptionType.SOURCE_LINK_ADDR:
      return { kind: 'sourceLinkAddr', addr: b.slice(o + 2, o + n) };
    case NdpOptionType.TARGET_LINK_ADDR:
      return { kind: 'targetLinkAddr', addr: b.slice(o + 2, o + n) };
    case NdpOptionType.PREFIX_INFO: {
      if (n !== 32) return unknown();
      const flags = b[o + 3]!;
      return {
        kind: 'prefixInfo',
        prefixLen: b[o + 2]!,
        onLink: (flags & NdpPrefixFlag.ON_LINK) !== 0,
        autonomous: (flags & NdpPrefixFlag.AUTONOMOUS) !== 0,
        validLifetime: readU32(b, o + 4),
        preferredLifetime: readU32(b, o + 8),
        prefix: b.slice(o + 16, o + 32),
      };
    }
    case NdpOptionType.MTU:
      if (n !== 8) return unknown();
      return { kind: 'mtu', mtu: readU32(b, o + 4) };
    case NdpOptionType.RDNSS: {
      // RFC 8106 §5.1: length 3 + 2k, at least one address.
      if (n < 24 || (n / 8) % 2 === 0) return unknown();
      const servers: Uint8Array[] = [];
      for (let p = o + 8; p < o + n; p += 16) servers.push(b.slice(p, p + 16));
      return { kind: 'rdnss', lifetime: readU32(b, o + 4), servers };
    }
    case NdpOptionType.DNSSL: {
      if (n < 16) return unknown();
      const domains: string[] = [];
      let p = o + 8;
      const end = o + n;
      // Names back to back, then zero padding to the 8-octet boundary (RFC 8106 §5.2).
      while (p < end && b[p] !== 0) {
        const d = decodeDnsName(b, o, p, end, false);
        if (d === null) return unknown();
        domains.push(d.name);
        p = d.next;
      }
      return { kind: 'dnssl', lifetime: readU32(b, o + 4), domains };
    }
    default:
      return unknown();
  }
}

/** Decode the options in bytes[off, off+len). Null when one is malformed. */
export function parseNdpOptions(bytes: Uint8Array, off: number, len: number): NdpOption[] | null {
  const c = new NdpOptionCursor().reset(bytes, off, len);
  const out: NdpOption[] = [];
  while (c.next()) out.push(decodeOption(bytes, c.optOff, c.optLen));
  return c.malformed ? null : out;
}

/**
 * Decode the NDP message an `Icmpv6View` points at (checksum not checked here: call
 * `verifyChecksum` first). Null for other ICMPv6 types and for invalid messages.
 */
export function parseNdp(v: Icmpv6View): NdpRepr | null {
  if (v.code !== 0) return null;
  const b = v.bytes;
  const o = v.off;
  const optsAt = (rel: number): NdpOption[] | null => (v.len < rel ? null : parseNdpOptions(b, o + rel, v.len - rel));
  switch (v.type) {
    case Icmpv6Type.ROUTER_SOLICIT: {
      const options = optsAt(NdpOptionsOffset.RS);
      return options === null ? null : { kind: 'routerSolicit', options };
    }
    case Icmpv6Type.ROUTER_ADVERT: {
      const options = optsAt(NdpOptionsOffset.RA);
      if (options === null) return null;
      const flags = b[o + NdpField.RA_FLAGS]!;
      return {
        kind: 'routerAdvert',
        curHopLimit: b[o + NdpField.RA_CUR_HOP_LIMIT]!,
        managed: (flags & NdpRaFlag.MANAGED) !== 0,
        other: (flags & NdpRaFlag.OTHER) !== 0,
        preference: (flags >>> 3) & 3,
        routerLifetime: readU16(b, o + NdpField.RA_ROUTER_LIFETIME),
        reachableTime: readU32(b, o + NdpField.RA_REACHABLE_TIME),
        retransTimer: readU32(b, o + NdpField.RA_RETRANS_TIMER),
        options,
      };
    }
    case Icmpv6Type.NEIGHBOR_SOLICIT:
    case Icmpv6Type.NEIGHBOR_ADVERT: {
      const options = optsAt(NdpOptionsOffset.NS);
      if (options === null) return null;
      if (b[o + NdpField.TARGET] === 0xff) return null; // target must not be multicast
      const target = b.slice(o + NdpField.TARGET, o + NdpField.TARGET + 16);
      if (v.type === Icmpv6Type.NEIGHBOR_SOLICIT) return { kind: 'neighborSolicit', target, options };
      const flags = b[o + NdpField.NA_FLAGS]!;
      return {
        kind: 'neighborAdvert',
        router: (flags & NdpNaFlag.ROUTER) !== 0,
        solicited: (flags & NdpNaFlag.SOLICITED) !== 0,
        override: (flags & NdpNaFlag.OVERRIDE) !== 0,
        target,
        options,
      };
    }
    default:
      return null;
  }
}

function dnsslBodyLen(domains: readonly string[]): number {
  let n = 0;
  for (const d of domains) {
    if (d === '' || d === '.') continue;
    const w = dnsNameWireLen(d);
    if (w > 0) n += w;
  }
  return n;
}

/** Length in octets of an option as `emitNdpOption` writes it (a multiple of 8). */
export function ndpOptionLen(opt: NdpOption): number {
  switch (opt.kind) {
    case 'sourceLinkAddr':
    case 'targetLinkAddr':
      return (2 + opt.addr.length + 7) & ~7;
    case 'prefixInfo':
      return 32;
    case 'mtu':
      return 8;
    case 'rdnss':
      return 8 + 16 * opt.servers.length;
    case 'dnssl':
      return (8 + dnsslBodyLen(opt.domains) + 7) & ~7;
    case 'unknown':
      return (2 + opt.data.length + 7) & ~7;
  }
}

/**
 * Write one option at buf[off], zero-padded to its 8-octet length. Returns the bytes written.
 * DNSSL skips names that are empty (the root) or invalid.
 */
export function emitNdpOption(opt: NdpOption, buf: Uint8Array, off: number): number {
  const n = ndpOptionLen(opt);
  buf.fill(0, off, off + n);
  buf[off + 1] = n >>> 3;
  switch (opt.kind) {
    case 'sourceLinkAddr':
    case 'targetLinkAddr':
      buf[off] = opt.kind === 'sourceLinkAddr' ? NdpOptionType.SOURCE_LINK_ADDR : NdpOptionType.TARGET_LINK_ADDR;
      buf.set(opt.addr, off + 2);
      break;
    case 'prefixInfo':
      buf[off] = NdpOptionType.PREFIX_INFO;
      buf[off + 2] = opt.prefixLen;
      buf[off + 3] = (opt.onLink ? NdpPrefixFlag.ON_LINK : 0) | (opt.autonomous ? NdpPrefixFlag.AUTONOMOUS : 0);
      writeU32(buf, off + 4, opt.validLifetime);
      writeU32(buf, off + 8, opt.preferredLifetime);
      buf.set(opt.prefix.subarray(0, 16), off + 16);
      break;
    case 'mtu':
      buf[off] = NdpOptionType.MTU;
      writeU32(buf, off + 4, opt.mtu);
      break;
    case 'rdnss':
      buf[off] = NdpOptionType.RDNSS;
      writeU32(buf, off + 4, opt.lifetime);
      for (let i = 0; i < opt.servers.length; i++) buf.set(opt.servers[i]!.subarray(0, 16), off + 8 + 16 * i);
      break;
    case 'dnssl': {
      buf[off] = NdpOptionType.DNSSL;
      writeU32(buf, off + 4, opt.lifetime);
      let p = off + 8;
      for (const d of opt.domains) {
        if (d === '' || d === '.') continue;
        const e = encodeDnsName(d, buf, p, 0, undefined, off + n);
        if (e > 0) p = e;
      }
      break;
    }
    case 'unknown':
      buf[off] = opt.type;
      buf.set(opt.data, off + 2);
      break;
  }
  return n;
}

function fixedLen(r: NdpRepr): number {
  switch (r.kind) {
    case 'routerSolicit':
      return NdpOptionsOffset.RS;
    case 'routerAdvert':
      return NdpOptionsOffset.RA;
    default:
      return NdpOptionsOffset.NS;
  }
}

/** Bytes `emitNdp` writes for `r` (the IPv6 payload length). */
export function ndpLen(r: NdpRepr): number {
  let n = fixedLen(r);
  for (const o of r.options) n += ndpOptionLen(o);
  return n;
}

/**
 * Write `r` at buf[off] and fill the ICMPv6 checksum from the IPv6 header at ip[ipOff] (source
 * and destination already set; `ip` may be `buf`). Returns the bytes written.
 */
export function emitNdp(r: NdpRepr, buf: Uint8Array, off: number, ip: Uint8Array, ipOff: number): number {
  const fixed = fixedLen(r);
  buf.fill(0, off, off + fixed);
  switch (r.kind) {
    case 'routerSolicit':
      buf[off] = Icmpv6Type.ROUTER_SOLICIT;
      break;
    case 'routerAdvert':
      buf[off] = Icmpv6Type.ROUTER_ADVERT;
      buf[off + NdpField.RA_CUR_HOP_LIMIT] = r.curHopLimit;
      buf[off + NdpField.RA_FLAGS] =
        (r.managed ? NdpRaFlag.MANAGED : 0) | (r.other ? NdpRaFlag.OTHER : 0) | ((r.preference & 3) << 3);
      buf[off + NdpField.RA_ROUTER_LIFETIME] = r.routerLifetime >>> 8;
      buf[off + NdpField.RA_ROUTER_LIFETIME + 1] = r.routerLifetime;
      writeU32(buf, off + NdpField.RA_REACHABLE_TIME, r.reachableTime);
      writeU32(buf, off + NdpField.RA_RETRANS_TIMER, r.retransTimer);
      break;
    case 'neighborSolicit':
      buf[off] = Icmpv6Type.NEIGHBOR_SOLICIT;
      buf.set(r.target.subarray(0, 16), off + NdpField.TARGET);
      break;
    case 'neighborAdvert':
      buf[off] = Icmpv6Type.NEIGHBOR_ADVERT;
      buf[off + NdpField.NA_FLAGS] =
        (r.router ? NdpNaFlag.ROUTER : 0) | (r.solicited ? NdpNaFlag.SOLICITED : 0) | (r.override ? NdpNaFlag.OVERRIDE : 0);
      buf.set(r.target.subarray(0, 16), off + NdpField.TARGET);
      break;
  }
  let p = off + fixed;
  for (const o of r.options) p += emitNdpOption(o, buf, p);
  const len = p - off;
  const c = icmpv6Checksum(buf, off, len, ip, ipOff);
  buf[off + 2] = c >>> 8;
  buf[off + 3] = c;
  return len;
}

/** Convenience: the first option of a kind, e.g. `ndpFindOption(ra.options, 'sourceLinkAddr')`. */
export function ndpFindOption<K extends NdpOption['kind']>(
  options: readonly NdpOption[],
  kind: K,
): Extract<NdpOption, { kind: K }> | undefined {
  for (const o of options) if (o.kind === kind) return o as Extract<NdpOption, { kind: K }>;
  return undefined;
}
