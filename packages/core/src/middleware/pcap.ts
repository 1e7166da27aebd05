/**
 * withPcap(): capture every frame a backend carries into a pcapng file or sink, as seen on the
 * guest's NIC (tx = outbound, rx = inbound; see pcapng.ts for the convention).
 *
 * The target is either a sink `(chunk) => void` (browser-safe: nothing Node-specific is loaded)
 * or `{ path }`, in which case the Node-only pcap-file.ts is loaded with a dynamic import during
 * `init()` and the file is flushed and closed by `close()`. Bundlers targeting browsers should use
 * the sink form (or mark `node:fs` external).
 *
 * Frames are recorded before they are handed on, so a request precedes the reply it causes even
 * when a backend answers synchronously. A tx frame is recorded even if the backend then drops it:
 * the guest did send it, as tcpdump in the guest would show. A negotiated virtio-net header is
 * stripped: the file holds plain Ethernet (GSO super-frames appear as one large frame).
 */
import type { NetBackend, Verdict } from '../backend.ts';
import { PcapDirection, PcapngWriter, type PcapngWriterOptions, type PcapSink } from './pcapng.ts';
import { WrappedBackend } from './wrap.ts';

export type PcapTarget = PcapSink | { path: string };

export interface PcapOptions extends Omit<PcapngWriterOptions, 'now'> {
  /** Clock in microseconds since the epoch (tests). */
  now?: () => number;
}

/** A NetBackend that also exposes the capture. */
export interface PcapBackend extends NetBackend {
  /** Push buffered blocks to the sink now (e.g. before reading a live file). */
  flush(): void;
  /** Packets recorded so far. */
  readonly packets: number;
}

export function withPcap(backend: NetBackend, target: PcapTarget, opts: PcapOptions = {}): PcapBackend {
  return new PcapMiddleware(backend, target, opts);
}

class PcapMiddleware extends WrappedBackend implements PcapBackend {
  private writer: PcapngWriter | null = null;
  private readonly target: PcapTarget;
  private readonly opts: PcapOptions;
  private closeFile: (() => Promise<void>) | null = null;

  constructor(inner: NetBackend, target: PcapTarget, opts: PcapOptions) {
    super(inner);
    this.target = target;
    this.opts = opts;
  }

  get packets(): number {
    return this.writer?.packets ?? 0;
  }

  override async init(...args: Parameters<NetBackend['init']>): Promise<void> {
    if (typeof this.target === 'function') {
      this.writer = new PcapngWriter(this.target, this.opts);
    } else {
      const { openPcapFile } = await import('./pcap-file.ts');
      const file = await openPcapFile(this.target.path);
      this.closeFile = file.close;
      this.writer = new PcapngWriter(file.sink, this.opts);
    }
    try {
      await super.init(...args);
    } catch (err) {
      // The inner backend failed to start: do not leave the file open.
      this.writer.flush();
      await this.closeFile?.().catch(() => {});
      throw err;
    }
  }

  override send(frame: Uint8Array): Verdict {
    if (this.writer !== null && !this.closed) this.writer.writePacket(frame, PcapDirection.Outbound, this.vnetHdrLen);
    return this.inner.send(frame);
  }

  protected override onRx(frame: Uint8Array): void {
    this.writer?.writePacket(frame, PcapDirection.Inbound, this.vnetHdrLen);
    this.deliverRx(frame);
  }

  flush(): void {
    this.writer?.flush();
  }

  protected override extraStats(): Record<string, number> {
    return { 'pcap-packets': this.writer?.packets ?? 0, 'pcap-write-errors': this.writer?.writeErrors ?? 0 };
  }

  protected override async onClose(): Promise<void> {
    this.writer?.flush();
    if (this.closeFile) await this.closeFile();
  }
}
