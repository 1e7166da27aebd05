/**
 * A guest-side TCP endpoint made of hand-built segments, for tests where the guest misbehaves on
 * purpose: it never ACKs, advertises a zero window, shrinks its window, sends options with bad
 * lengths or urgent pointers past the data. It keeps only the state it needs (rcvNxt, sndNxt) and
 * reads the backend's segments from the guest's frame log (it turns `keepFrames` on and consumes
 * the frames it scans, so long tests do not accumulate them). Any guest with the RawGuestLike
 * shape works: slirp's TestGuest and uip's RawGuest.
 */
/** What the peer needs from a guest: its addresses, a frame log, a way to send and to wait. */
export interface RawGuestLike {
  ip: number;
  readonly mac: Uint8Array;
  keepFrames: boolean;
  readonly frames: Uint8Array[];
  readonly backend: { send(frame: Uint8Array): unknown };
  until(cond: () => boolean, what: string, ms?: number): Promise<void>;
}
import { ETH_IPV4, ethFrame, ipv4Packet, tcp4, type TcpFields } from './raw-frames.ts';

export const F = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

export interface SegIn {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  data: Uint8Array;
}

export class RawTcpPeer {
  readonly guest: RawGuestLike;
  readonly gwMac: Uint8Array;
  readonly dst: number;
  readonly dport: number;
  readonly sport: number;
  sndNxt: number;
  rcvNxt = 0;
  /** Highest sequence number (exclusive) the backend has sent data up to. */
  highest = 0;
  readonly chunks: Uint8Array[] = [];
  received = 0;
  readonly segs: SegIn[] = [];
  rst = false;
  fin = false;

  constructor(guest: RawGuestLike, gwMac: Uint8Array, dst: number, dport: number, sport: number, iss = 1000) {
    this.guest = guest;
    this.gwMac = gwMac;
    this.dst = dst;
    this.dport = dport;
    this.sport = sport;
    this.sndNxt = iss;
    guest.keepFrames = true;
  }

  /** Send one segment; `f` overrides any field (window, options, data offset, urgent pointer). */
  send(flags: number, data: Uint8Array = new Uint8Array(0), f: Partial<TcpFields> = {}): void {
    const g = this.guest;
    const seg = tcp4(g.ip, this.dst, { sport: this.sport, dport: this.dport, seq: this.sndNxt, ack: this.rcvNxt, flags, window: 65535, ...f }, data);
    g.backend.send(ethFrame(this.gwMac, g.mac, ETH_IPV4, ipv4Packet({ src: g.ip, dst: this.dst, proto: 6 }, seg)));
  }

  /** Parse the backend's segments for this flow out of the guest's frame log (consuming it). */
  poll(): SegIn[] {
    const frames = this.guest.frames.splice(0);
    const out: SegIn[] = [];
    for (const f of frames) {
      if (f.length < 54 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 6) continue;
      const ihl = (f[14]! & 15) << 2;
      const total = (f[16]! << 8) | f[17]!;
      const t = 14 + ihl;
      const src = ((f[26]! << 24) | (f[27]! << 16) | (f[28]! << 8) | f[29]!) >>> 0;
      const sp = (f[t]! << 8) | f[t + 1]!;
      const dp = (f[t + 2]! << 8) | f[t + 3]!;
      if (src !== this.dst || sp !== this.dport || dp !== this.sport) continue;
      const doff = (f[t + 12]! >>> 4) << 2;
      const s: SegIn = {
        seq: ((f[t + 4]! << 24) | (f[t + 5]! << 16) | (f[t + 6]! << 8) | f[t + 7]!) >>> 0,
        ack: ((f[t + 8]! << 24) | (f[t + 9]! << 16) | (f[t + 10]! << 8) | f[t + 11]!) >>> 0,
        flags: f[t + 13]!,
        window: (f[t + 14]! << 8) | f[t + 15]!,
        data: f.slice(t + doff, 14 + total),
      };
      if (s.flags & F.RST) this.rst = true;
      const end = (s.seq + s.data.length) >>> 0;
      if (this.highest === 0 || ((end - this.highest) | 0) > 0) this.highest = end;
      out.push(s);
      this.segs.push(s);
    }
    return out;
  }

  /** Handshake: SYN, wait for the SYN-ACK, ACK it advertising `window`. */
  async open(window = 65535, synOptions?: Uint8Array): Promise<SegIn> {
    this.send(F.SYN, undefined, { window, ack: 0, ...(synOptions ? { options: synOptions } : {}) });
    let synAck: SegIn | undefined;
    await this.guest.until(() => {
      synAck = this.poll().find((s) => (s.flags & (F.SYN | F.ACK)) === (F.SYN | F.ACK)) ?? synAck;
      return synAck !== undefined || this.rst;
    }, 'SYN-ACK or RST');
    if (!synAck) throw new Error('connection refused (RST)');
    this.sndNxt = (this.sndNxt + 1) >>> 0;
    this.rcvNxt = (synAck.seq + 1) >>> 0;
    this.highest = this.rcvNxt;
    this.send(F.ACK, undefined, { window });
    return synAck;
  }

  /** Take in-order data (and FIN) from newly arrived segments; returns how many bytes. */
  take(): number {
    let n = 0;
    for (const s of this.poll()) {
      if (s.data.length > 0 && s.seq === this.rcvNxt) {
        this.chunks.push(s.data);
        this.received += s.data.length;
        n += s.data.length;
        this.rcvNxt = (this.rcvNxt + s.data.length) >>> 0;
      } else if (s.data.length > 0 && ((s.seq - this.rcvNxt) | 0) < 0) {
        // A retransmission overlapping what we hold: keep only the new tail.
        const skip = (this.rcvNxt - s.seq) | 0;
        if (skip < s.data.length) {
          const tail = s.data.subarray(skip);
          this.chunks.push(tail);
          this.received += tail.length;
          n += tail.length;
          this.rcvNxt = (this.rcvNxt + tail.length) >>> 0;
        }
      }
      if (s.flags & F.FIN && ((s.seq + s.data.length) >>> 0) === this.rcvNxt) {
        this.fin = true;
        this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      }
    }
    return n;
  }

  data(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}
