/**
 * Doorbells over a unix socket: the cross-process wakeup of a switch port.
 *
 * Atomics.notify does not cross processes (V8 keeps its waiter lists per process), so a switch
 * and a port in two processes wake each other with one "kick" byte on the port's unix socket
 * connection. The ring protocol (src/ring.ts) decides WHEN to ring: a side rings only after the
 * other side set its need-wakeup flag, so a busy ring pair exchanges no bytes at all; a kick
 * only says "look at the ring", never carries data, and any number of kicks pending collapse
 * into one (level-insensitive).
 *
 * One connection carries both directions: each direction is identified by its kick byte
 * (KICK.toSwitch, KICK.toPort), so the same {@link Doorbell} object model as the Atomics
 * doorbell holds: `ring()` on one side fires `onRing` callbacks of the same direction on the
 * other side. The kick bytes are control characters, never `{` or a JSON character, so they can
 * follow the JSON-lines handshake on the same stream without ambiguity.
 *
 * Coalescing and bounds: `ring()` only marks the direction pending; one microtask later a single
 * byte is written, however often ring() was called meanwhile. While the socket's write buffer is
 * not drained no further byte is queued (the peer is not reading; the pending flag is written
 * on 'drain'), so an unresponsive peer costs at most one byte of buffer. Received data is scanned
 * once per chunk and each direction's callbacks fire at most once per chunk.
 *
 * Event-loop liveness follows the Atomics doorbell's rule: the channel unrefs its socket, and a
 * bell's `ref()` (NetmapPortBackend refs its incoming bell while open) holds the socket ref'd
 * until every ref'd bell is unref'd or closed. A closed channel leaves the ref state alone.
 *
 * Not here: deciding when to ring (the ring's need-wakeup flags), the handshake (server.ts /
 * remote.ts), reconnecting.
 */
import type { Socket } from 'node:net';
import type { Doorbell } from './doorbell.ts';

/** The byte written for a kick in each direction. */
export const KICK = {
  /** Guest port → switch: the port's tx ring has new frames, or it freed rx slots. */
  toSwitch: 0x01,
  /** Switch → guest port: the port's rx ring has new frames, or the switch freed tx slots. */
  toPort: 0x02,
} as const;
export type KickDirection = keyof typeof KICK;

const KICK_BYTES = [Buffer.from([KICK.toSwitch]), Buffer.from([KICK.toPort])] as const;

/**
 * The kick traffic of one connection. Owns no socket lifetime: whoever made the socket destroys
 * it; {@link close} only detaches from it.
 */
export class SocketKicks {
  readonly socket: Socket;
  /** Kicks written and received per direction (index 0 toSwitch, 1 toPort), for stats/tests. */
  readonly sent = [0, 0];
  readonly received = [0, 0];
  /** Bytes that were neither kick (a confused peer); they are ignored. */
  junk = 0;
  private readonly callbacks: Array<Array<() => void>> = [[], []];
  private readonly pending = [false, false];
  private flushScheduled = false;
  private blocked = false;
  private closed = false;
  private refs = 0;
  private readonly onData = (chunk: Buffer): void => this.feed(chunk);
  private readonly onDrain = (): void => {
    this.blocked = false;
    this.flush();
  };
  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /**
   * Attach to `socket` (already connected; any handshake done). `leftover` is data read past
   * the handshake, handled as if it had just arrived.
   */
  constructor(socket: Socket, leftover?: Uint8Array) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.unref();
    socket.resume(); // a handshake reader may have paused it
    if (leftover && leftover.length > 0) queueMicrotask(() => this.feed(leftover));
  }

  /** The doorbell of one direction: ring() sends its kick, onRing() hears the peer's. */
  bell(direction: KickDirection): Doorbell {
    const i = direction === 'toSwitch' ? 0 : 1;
    let open = true;
    let mine: (() => void) | null = null;
    let reffed = false;
    const unref = (): void => {
      if (!reffed) return;
      reffed = false;
      if (--this.refs === 0 && !this.closed) this.socket.unref();
    };
    return {
      ring: () => {
        if (open) this.ring(i);
      },
      onRing: (cb: () => void) => {
        if (!open) return;
        if (mine) this.off(i, mine);
        mine = cb;
        this.callbacks[i]!.push(cb);
      },
      close: () => {
        open = false;
        if (mine) this.off(i, mine);
        mine = null;
        unref();
      },
      ref: () => {
        if (!open || reffed || this.closed) return;
        reffed = true;
        if (this.refs++ === 0) this.socket.ref();
      },
      unref,
    };
  }

  /** Stop listening and writing. Does not destroy the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.off('data', this.onData);
    this.socket.off('drain', this.onDrain);
    this.callbacks[0]!.length = 0;
    this.callbacks[1]!.length = 0;
  }

  private off(i: number, cb: () => void): void {
    const list = this.callbacks[i]!;
    const at = list.indexOf(cb);
    if (at >= 0) list.splice(at, 1);
  }

  private ring(i: number): void {
    if (this.closed) return;
    this.pending[i] = true;
    if (!this.flushScheduled && !this.blocked) {
      this.flushScheduled = true;
      queueMicrotask(this.flushTask);
    }
  }

  private flush(): void {
    if (this.closed || this.blocked) return;
    const s = this.socket;
    if (s.destroyed || !s.writable) {
      this.pending[0] = this.pending[1] = false;
      return;
    }
    for (let i = 0; i < 2; i++) {
      if (!this.pending[i]) continue;
      this.pending[i] = false;
      this.sent[i]!++;
      // A full socket buffer means the peer is not reading: remember the kick (pending) and
      // write nothing more until 'drain'; the peer will see the ring state when it wakes.
      if (!s.write(KICK_BYTES[i]!)) {
        this.blocked = true;
        return;
      }
    }
  }

  private feed(chunk: Uint8Array): void {
    if (this.closed) return;
    let seen = 0;
    for (let k = 0; k < chunk.length; k++) {
      const b = chunk[k]!;
      if (b === KICK.toSwitch) seen |= 1;
      else if (b === KICK.toPort) seen |= 2;
      else this.junk++;
    }
    for (let i = 0; i < 2; i++) {
      if ((seen & (1 << i)) === 0) continue;
      this.received[i]!++;
      const list = this.callbacks[i]!;
      // A callback may close its bell (splicing the list): iterate over a stable length copy.
      for (let j = list.length - 1; j >= 0; j--) list[j]?.();
    }
  }
}
