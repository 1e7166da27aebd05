/**
 * The guest side of a QEMU `-netdev stream` connection, for host-faults.e2e.test.ts: a socket
 * speaking the 4-byte big-endian length + frame framing, shaped like the part of a NetBackend the
 * slirp test guest uses (init, send, close), so the scripted guest can drive `guestnet serve`
 * from the test process. Also `rawWrite` to send bytes that break the framing on purpose.
 */
import * as net from 'node:net';

export class StreamLink {
  readonly sock: net.Socket;
  private rx: ((f: Uint8Array) => void) | null = null;
  private buf: Buffer = Buffer.alloc(0);
  closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      while (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + n) break;
        const f = new Uint8Array(this.buf.subarray(4, 4 + n));
        this.buf = this.buf.subarray(4 + n);
        this.rx?.(f);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => (this.closed = true));
  }

  static connect(path: string): Promise<StreamLink> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new StreamLink(s));
      });
    });
  }

  async init(rx: (f: Uint8Array) => void): Promise<void> {
    this.rx = rx;
  }

  send(frame: Uint8Array): number {
    if (this.closed) return 2;
    const h = Buffer.alloc(4);
    h.writeUInt32BE(frame.length, 0);
    this.sock.write(Buffer.concat([h, frame]));
    return 0;
  }

  sendBatch(frames: readonly Uint8Array[]): number {
    for (const f of frames) this.send(f);
    return frames.length;
  }

  rawWrite(bytes: Uint8Array): void {
    this.sock.write(bytes);
  }

  async close(): Promise<void> {
    this.sock.destroy();
  }
}
