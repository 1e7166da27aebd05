/**
 * A guest made only of hand-built frames, for uip's hostile tests: it logs every frame the
 * backend delivers (when `keepFrames` is on) and offers a condition wait. uip needs no DHCP
 * before traffic (guest_ip is fixed), so a test can start sending at once from 192.168.33.15.
 * ICMP echo replies and UDP datagrams are also parsed on arrival (`echoSeqs`, `udp`), so floods
 * can run with the frame log off.
 */
import type { NetBackend } from '@guestnet/core';
import type { RawGuestLike } from '@guestnet/core/testing';

export class RawGuest implements RawGuestLike {
  ip: number;
  readonly mac: Uint8Array;
  keepFrames = true;
  readonly frames: Uint8Array[] = [];
  readonly backend: NetBackend;
  /** Sequence numbers of ICMP echo replies received. */
  readonly echoSeqs: number[] = [];
  /** UDP datagrams received. */
  readonly udp: { sport: number; dport: number; data: Uint8Array }[] = [];
  private waiters: (() => void)[] = [];

  constructor(backend: NetBackend, ip: number, mac: Uint8Array) {
    this.backend = backend;
    this.ip = ip;
    this.mac = mac;
  }

  async start(): Promise<void> {
    await this.backend.init((f) => {
      if (this.keepFrames) this.frames.push(f.slice());
      this.parse(f);
      const w = this.waiters;
      this.waiters = [];
      for (const fn of w) fn();
    });
  }

  private parse(f: Uint8Array): void {
    if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0) return;
    const l4 = 14 + ((f[14]! & 15) << 2);
    const end = 14 + ((f[16]! << 8) | f[17]!);
    if (f[23] === 1 && f[l4] === 0) this.echoSeqs.push((f[l4 + 6]! << 8) | f[l4 + 7]!);
    if (f[23] === 17) {
      this.udp.push({ sport: (f[l4]! << 8) | f[l4 + 1]!, dport: (f[l4 + 2]! << 8) | f[l4 + 3]!, data: f.slice(l4 + 8, end) });
    }
  }

  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 10);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}
