/**
 * `guestnet serve --shared`: all clients on one backend through a small learning switch, so two
 * VMs share one NAT (one DHCP pool, one set of host forwards) and can reach each other.
 *
 * Ports: the *uplink* is the shared backend (slirp, …); every client connection gets a port, a
 * NetBackend handed to the transport (attachStream / attachWebSocket), which closes it when the
 * client goes.
 *
 * Forwarding (IEEE 802.1D in miniature): the source MAC of each frame from a client port is learnt
 * (MAC → port, last seen wins, forgotten when the port closes). A frame to a learnt unicast MAC goes
 * to that port only; to the uplink's own traffic the uplink is just another port whose MACs are
 * never learnt (it answers for the gateway, DNS, …, so an unknown unicast from a client goes to
 * the uplink). Broadcast and multicast (I/G bit) flood to every other port including the uplink.
 * Frames from the uplink go to the port that learnt the destination, or flood to all clients for
 * broadcast/multicast/unknown. No aging timer: a MAC moves when it is seen on another port, and a
 * disconnected client's MACs go with its port.
 *
 * Limits: no VLANs, no STP (there are no loops: clients are leaves), at most `maxMacs` learnt
 * entries (4096; further MACs are not learnt and their traffic floods). Virtio-net headers are
 * not negotiated on ports (frames are plain Ethernet).
 */
import { BaseBackend, Verdict, type NetBackend } from '@guestnet/core';

const macKey = (f: Uint8Array, off: number): number =>
  // 48 bits fit a double exactly.
  f[off]! * 0x10000000000 + f[off + 1]! * 0x100000000 + ((f[off + 2]! << 24) >>> 0) + (f[off + 3]! << 16) + (f[off + 4]! << 8) + f[off + 5]!;

export class SharedSwitch {
  readonly uplink: NetBackend;
  readonly maxMacs: number;
  /** Frames from the uplink flooded because no port had learnt the destination. */
  floods = 0;
  private readonly ports = new Set<SwitchPort>();
  private readonly macs = new Map<number, SwitchPort>();

  constructor(uplink: NetBackend, maxMacs = 4096) {
    this.uplink = uplink;
    this.maxMacs = maxMacs;
  }

  /** Start the uplink backend. */
  async start(): Promise<void> {
    await this.uplink.init((frame) => this.fromUplink(frame));
  }

  /** A new port for one client (un-initialised; the transport inits and closes it). */
  port(name: string): SwitchPort {
    return new SwitchPort(this, name);
  }

  get portCount(): number {
    return this.ports.size;
  }

  async close(): Promise<void> {
    for (const p of [...this.ports]) await p.close();
    await this.uplink.close();
  }

  /** @internal */
  attach(p: SwitchPort): void {
    this.ports.add(p);
  }

  /** @internal */
  detach(p: SwitchPort): void {
    this.ports.delete(p);
    for (const [mac, owner] of this.macs) if (owner === p) this.macs.delete(mac);
  }

  /** @internal A frame from a client port. */
  fromPort(src: SwitchPort, frame: Uint8Array): Verdict {
    if (frame.length < 14) return Verdict.Dropped;
    const srcMac = macKey(frame, 6);
    // Learn unicast sources only (a multicast source address is bogus).
    if ((frame[6]! & 1) === 0) {
      const cur = this.macs.get(srcMac);
      if (cur !== src && (cur !== undefined || this.macs.size < this.maxMacs)) this.macs.set(srcMac, src);
    }
    if ((frame[0]! & 1) !== 0) {
      for (const p of this.ports) if (p !== src) p.give(frame);
      return this.uplink.send(frame);
    }
    const dst = this.macs.get(macKey(frame, 0));
    if (dst !== undefined && dst !== src) {
      dst.give(frame);
      return Verdict.Delivered;
    }
    return this.uplink.send(frame);
  }

  private fromUplink(frame: Uint8Array): void {
    if (frame.length < 14) return;
    if ((frame[0]! & 1) === 0) {
      const dst = this.macs.get(macKey(frame, 0));
      if (dst !== undefined) {
        dst.give(frame);
        return;
      }
      this.floods++;
    }
    for (const p of this.ports) p.give(frame);
  }
}

/** One client's port on a SharedSwitch. */
export class SwitchPort extends BaseBackend {
  readonly type = 'switch-port';
  readonly name: string;
  private readonly sw: SharedSwitch;

  constructor(sw: SharedSwitch, name: string) {
    super({ mtu: sw.uplink.capabilities().mtu });
    this.sw = sw;
    this.name = name;
  }

  protected async onInit(): Promise<void> {
    this.sw.attach(this);
  }

  protected onSend(frame: Uint8Array): Verdict {
    return this.sw.fromPort(this, frame);
  }

  protected async onClose(): Promise<void> {
    this.sw.detach(this);
  }

  /** @internal Deliver a frame to this port's client (queued while it is paused). */
  give(frame: Uint8Array): void {
    this.deliver(frame);
  }
}
