/**
 * withTracer(): one log line per frame, like smoltcp's Tracer device or `tcpdump -nn` reduced to
 * what a backend author needs when a guest will not talk:
 *
 *   tx 74 ipv4 10.0.2.15:40000 > 10.0.2.2:80 tcp [S] seq 1000 win 64240 len=0
 *   rx 60 ipv4 10.0.2.2:80 > 10.0.2.15:40000 tcp [S.] seq 5000 ack 1001 win 65535 len=0
 *   tx 42 arp request who-has 10.0.2.2 tell 10.0.2.15
 *   rx 42 arp reply 10.0.2.2 is-at 52:55:0a:00:02:02
 *   tx 98 ipv4 10.0.2.15 > 10.0.2.2 icmp echo-request id=1 seq=1
 *   tx 90 ipv6 fe80::1 > ff02::1:ff00:2 icmpv6 neighbor-solicitation
 *   tx 86 ipv6 [fe80::1]:546 > [ff02::1:2]:547 udp len=24
 *
 * Format: `[label ]dir len [src-mac > dst-mac ]decode`, where dir is `tx` (guest → backend) or
 * `rx` (backend → guest) and len is the Ethernet frame length (virtio-net header excluded).
 * TCP flags are tcpdump's letters in tcpdump's order (F S R P . U E W, `.` = ACK); `len` after
 * TCP/UDP is the payload length. 802.1Q/802.1ad tags print as `vlan N` before the payload.
 *
 * The decoder reads bytes by hand (no dependency on the wire package) and never throws: a
 * header cut short prints `<proto> truncated`. It does not verify checksums, follow IPv4 options
 * beyond skipping them, or decode above L4. IPv6 extension headers (hop-by-hop, routing,
 * fragment, destination options) are skipped to reach the upper-layer protocol.
 */
import type { NetBackend, Verdict } from '../backend.ts';
import { WrappedBackend } from './wrap.ts';

export interface TracerOptions {
  /** Printed first on every line (e.g. the NIC name). */
  label?: string;
  /** Print source and destination MAC addresses. Default false. */
  macs?: boolean;
}

export function withTracer(backend: NetBackend, log: (line: string) => void, opts: TracerOptions = {}): NetBackend {
  return new TracerMiddleware(backend, log, opts);
}

class TracerMiddleware extends WrappedBackend {
  private readonly log: (line: string) => void;
  private readonly prefix: string;
  private readonly macs: boolean;

  constructor(inner: NetBackend, log: (line: string) => void, opts: TracerOptions) {
    super(inner);
    this.log = log;
    this.prefix = opts.label ? `${opts.label} ` : '';
    this.macs = opts.macs ?? false;
  }

  override send(frame: Uint8Array): Verdict {
    this.trace('tx', frame);
    return this.inner.send(frame);
  }

  protected override onRx(frame: Uint8Array): void {
    this.trace('rx', frame);
    this.deliverRx(frame);
  }

  private trace(dir: 'tx' | 'rx', frame: Uint8Array): void {
    try {
      const start = this.vnetHdrLen;
      this.log(`${this.prefix}${dir} ${Math.max(frame.length - start, 0)} ${describeFrame(frame, start, this.macs)}`);
    } catch {
      // A failing logger must not break the data path.
      this.countDrop('tracer-log-error');
    }
  }
}

const ETH_IPV4 = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = 0x8100;
const ETH_QINQ = 0x88a8;

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

const hex2 = (n: number): string => (n < 16 ? '0' : '') + n.toString(16);

export function formatMac(b: Uint8Array, o: number): string {
  return `${hex2(b[o]!)}:${hex2(b[o + 1]!)}:${hex2(b[o + 2]!)}:${hex2(b[o + 3]!)}:${hex2(b[o + 4]!)}:${hex2(b[o + 5]!)}`;
}

export function formatIpv4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** RFC 5952 text form: lower case, longest run (≥ 2) of zero groups compressed, first on ties. */
export function formatIpv6(b: Uint8Array, o: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(u16(b, o + 2 * i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hexs = g.map((x) => x.toString(16));
  if (bestStart < 0) return hexs.join(':');
  return `${hexs.slice(0, bestStart).join(':')}::${hexs.slice(bestStart + bestLen).join(':')}`;
}

const TCP_FLAG_LETTERS: readonly [number, string][] = [
  [0x01, 'F'],
  [0x02, 'S'],
  [0x04, 'R'],
  [0x08, 'P'],
  [0x10, '.'],
  [0x20, 'U'],
  [0x40, 'E'],
  [0x80, 'W'],
];

function tcpFlags(f: number): string {
  let s = '';
  for (const [bit, c] of TCP_FLAG_LETTERS) if (f & bit) s += c;
  return s === '' ? 'none' : s;
}

const ICMP4_NAMES: Record<number, string> = {
  0: 'echo-reply',
  3: 'unreachable',
  5: 'redirect',
  8: 'echo-request',
  11: 'time-exceeded',
};
const ICMP6_NAMES: Record<number, string> = {
  1: 'unreachable',
  2: 'too-big',
  3: 'time-exceeded',
  128: 'echo-request',
  129: 'echo-reply',
  133: 'router-solicitation',
  134: 'router-advertisement',
  135: 'neighbor-solicitation',
  136: 'neighbor-advertisement',
};

/**
 * A short text decode of the Ethernet frame at `frame[start..]` (no direction, no length).
 * Pure; never throws.
 */
export function describeFrame(frame: Uint8Array, start = 0, macs = false): string {
  const end = frame.length;
  if (end - start < 14) return 'runt';
  let out = macs ? `${formatMac(frame, start + 6)} > ${formatMac(frame, start)} ` : '';
  let type = u16(frame, start + 12);
  let o = start + 14;
  // Up to two VLAN tags (802.1ad outer, 802.1Q inner).
  for (let tags = 0; (type === ETH_VLAN || type === ETH_QINQ) && tags < 2; tags++) {
    if (end - o < 4) return `${out}vlan truncated`;
    out += `vlan ${u16(frame, o) & 0x0fff} `;
    type = u16(frame, o + 2);
    o += 4;
  }
  switch (type) {
    case ETH_ARP:
      return out + describeArp(frame, o, end);
    case ETH_IPV4:
      return out + describeIpv4(frame, o, end);
    case ETH_IPV6:
      return out + describeIpv6(frame, o, end);
    default:
      return `${out}ethertype 0x${type.toString(16).padStart(4, '0')}`;
  }
}

function describeArp(b: Uint8Array, o: number, end: number): string {
  // Only Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4) is decoded (RFC 826).
  if (end - o < 28) return 'arp truncated';
  const op = u16(b, o + 6);
  if (u16(b, o) !== 1 || u16(b, o + 2) !== ETH_IPV4 || b[o + 4] !== 6 || b[o + 5] !== 4) return `arp op=${op}`;
  const spa = formatIpv4(b, o + 14);
  const tpa = formatIpv4(b, o + 24);
  if (op === 1) return `arp request who-has ${tpa} tell ${spa}`;
  if (op === 2) return `arp reply ${spa} is-at ${formatMac(b, o + 8)}`;
  return `arp op=${op} ${spa} > ${tpa}`;
}

function describeIpv4(b: Uint8Array, o: number, end: number): string {
  if (end - o < 20) return 'ipv4 truncated';
  const ihl = (b[o]! & 0x0f) * 4;
  if ((b[o]! >> 4) !== 4 || ihl < 20 || end - o < ihl) return 'ipv4 bad-header';
  const totalLen = u16(b, o + 2);
  // Ethernet pads short frames; the IP total length bounds the payload (RFC 791).
  const ipEnd = totalLen >= ihl && o + totalLen <= end ? o + totalLen : end;
  const fragOff = (u16(b, o + 6) & 0x1fff) * 8;
  const proto = b[o + 9]!;
  const src = formatIpv4(b, o + 12);
  const dst = formatIpv4(b, o + 16);
  if (fragOff !== 0) return `ipv4 ${src} > ${dst} ${protoName(proto)} frag off=${fragOff}`;
  return describeL4('ipv4', src, dst, proto, b, o + ihl, ipEnd, false);
}

function describeIpv6(b: Uint8Array, o: number, end: number): string {
  if (end - o < 40) return 'ipv6 truncated';
  if ((b[o]! >> 4) !== 6) return 'ipv6 bad-header';
  const payloadLen = u16(b, o + 4);
  const ipEnd = o + 40 + payloadLen <= end ? o + 40 + payloadLen : end;
  const src = formatIpv6(b, o + 8);
  const dst = formatIpv6(b, o + 24);
  let next = b[o + 6]!;
  let p = o + 40;
  // Skip extension headers (RFC 8200 §4) to reach the upper-layer header.
  for (let hops = 0; hops < 8; hops++) {
    if (next === 0 || next === 43 || next === 60) {
      if (ipEnd - p < 8) return `ipv6 ${src} > ${dst} ext truncated`;
      const len = (b[p + 1]! + 1) * 8;
      next = b[p]!;
      p += len;
    } else if (next === 44) {
      if (ipEnd - p < 8) return `ipv6 ${src} > ${dst} frag truncated`;
      const off = u16(b, p + 2) & 0xfff8;
      next = b[p]!;
      p += 8;
      if (off !== 0) return `ipv6 ${src} > ${dst} ${protoName(next)} frag off=${off}`;
    } else {
      break;
    }
  }
  if (p > ipEnd) return `ipv6 ${src} > ${dst} ext truncated`;
  return describeL4('ipv6', src, dst, next, b, p, ipEnd, true);
}

function protoName(p: number): string {
  switch (p) {
    case 1:
      return 'icmp';
    case 6:
      return 'tcp';
    case 17:
      return 'udp';
    case 58:
      return 'icmpv6';
    default:
      return `proto=${p}`;
  }
}

function describeL4(fam: string, src: string, dst: string, proto: number, b: Uint8Array, o: number, end: number, v6: boolean): string {
  const name = protoName(proto);
  const addrs = `${fam} ${src} > ${dst}`;
  const ep = (a: string, port: number): string => (v6 ? `[${a}]:${port}` : `${a}:${port}`);
  switch (proto) {
    case 6: {
      if (end - o < 20) return `${addrs} tcp truncated`;
      const doff = (b[o + 12]! >> 4) * 4;
      const payload = doff >= 20 && doff <= end - o ? end - o - doff : 0;
      const seq = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
      const ack = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
      const ackPart = b[o + 13]! & 0x10 ? ` ack ${ack}` : '';
      return `${fam} ${ep(src, u16(b, o))} > ${ep(dst, u16(b, o + 2))} tcp [${tcpFlags(b[o + 13]!)}] seq ${seq}${ackPart} win ${u16(b, o + 14)} len=${payload}`;
    }
    case 17: {
      if (end - o < 8) return `${addrs} udp truncated`;
      return `${fam} ${ep(src, u16(b, o))} > ${ep(dst, u16(b, o + 2))} udp len=${Math.max(u16(b, o + 4) - 8, 0)}`;
    }
    case 1:
    case 58: {
      if (end - o < 4) return `${addrs} ${name} truncated`;
      const t = b[o]!;
      const names = proto === 1 ? ICMP4_NAMES : ICMP6_NAMES;
      const tn = names[t];
      const echo = (proto === 1 && (t === 0 || t === 8)) || (proto === 58 && (t === 128 || t === 129));
      if (echo && end - o >= 8) return `${addrs} ${name} ${tn} id=${u16(b, o + 4)} seq=${u16(b, o + 6)}`;
      return tn ? `${addrs} ${name} ${tn}` : `${addrs} ${name} type=${t} code=${b[o + 1]}`;
    }
    default:
      return `${addrs} ${name}`;
  }
}
