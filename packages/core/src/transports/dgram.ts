/**
 * Node-only: QEMU dgram transport over UDP (`-netdev dgram,id=n0,local.type=inet,
 * local.host=127.0.0.1,local.port=P1,remote.type=inet,remote.host=127.0.0.1,remote.port=P2`, or
 * the older `-netdev socket,udp=…,localaddr=…`): one Ethernet frame per datagram, no header.
 *
 * - `remote` given: frames for the guest are sent there, and datagrams from any other source are
 *   dropped ("foreign") — a UDP port is reachable by anyone on the host.
 * - `remote = 'learn'`: the first datagram's source becomes the peer (as QEMU's dgram backend
 *   does without a remote); frames for the guest before that are dropped ("no-peer"), later
 *   datagrams from other sources are dropped ("foreign").
 * - Datagrams longer than `maxFrameLen` (default 65535 + 12 + 14) are dropped ("oversize").
 *
 * Backpressure: UDP has none towards the VMM, so a `Queued` verdict only means the backend will
 * drop what it cannot take (counted by the backend). Towards the VMM, the backend's receive is
 * paused while the socket's send queue holds more than `sendQueueHigh` datagrams and resumed when
 * it falls to half of that, so a blocked socket cannot grow memory without bound.
 *
 * Each rx frame is copied once (the socket keeps the buffer until the send completes).
 * `attachDgram` initialises the backend; the socket must already be bound (the caller chooses
 * the local address). It does not close the socket unless `close()` is called or it errors.
 */
import type { Socket, RemoteInfo } from 'node:dgram';
import type { NetBackend } from '../backend.ts';
import { DEFAULT_STREAM_MAX_FRAME } from './stream.ts';

export interface DgramPeer {
  address: string;
  port: number;
}

export interface AttachDgramOptions {
  maxFrameLen?: number;
  /** Leave the backend open when detaching. Default false. */
  keepBackendOpen?: boolean;
  /** Datagrams queued in the socket before the backend's receive is paused. Default 256. */
  sendQueueHigh?: number;
}

export interface DgramCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Datagrams dropped: too long. */
  oversize: number;
  /** Datagrams dropped: not from the peer. */
  foreign: number;
  /** Frames for the guest dropped because no peer is known yet. */
  noPeer: number;
  /** Failed sends (reported asynchronously by the socket). */
  sendErrors: number;
}

export interface DgramAttachment {
  /** The peer frames are sent to; null until learnt. */
  readonly peer: DgramPeer | null;
  readonly counters: Readonly<DgramCounters>;
  /** Resolves when detached (close(), socket close or error). Never rejects. */
  readonly done: Promise<{ reason: 'closed' | 'error'; error?: Error }>;
  /** Close the socket and (unless keepBackendOpen) the backend. */
  close(): Promise<void>;
}

export async function attachDgram(
  socket: Socket,
  remote: DgramPeer | 'learn',
  backend: NetBackend,
  opts: AttachDgramOptions = {},
): Promise<DgramAttachment> {
  const maxFrameLen = opts.maxFrameLen ?? DEFAULT_STREAM_MAX_FRAME;
  const high = opts.sendQueueHigh ?? 256;
  const counters: DgramCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, oversize: 0, foreign: 0, noPeer: 0, sendErrors: 0 };
  let peer: DgramPeer | null = remote === 'learn' ? null : { address: remote.address, port: remote.port };
  let finished = false;
  let rxPaused = false;
  let resolveDone!: (v: { reason: 'closed' | 'error'; error?: Error }) => void;
  const done = new Promise<{ reason: 'closed' | 'error'; error?: Error }>((r) => (resolveDone = r));

  const finish = async (reason: 'closed' | 'error', error?: Error): Promise<void> => {
    if (finished) return;
    finished = true;
    socket.off('message', onMessage);
    try {
      socket.close();
    } catch {
      // already closed
    }
    if (!opts.keepBackendOpen) await backend.close().catch(() => {});
    resolveDone(error ? { reason, error } : { reason });
  };

  const onSent = (err: Error | null): void => {
    if (err) counters.sendErrors++;
    if (rxPaused && !finished && socket.getSendQueueCount() <= high >> 1) {
      rxPaused = false;
      backend.resumeRecv();
    }
  };

  const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (peer === null) {
      peer = { address: rinfo.address, port: rinfo.port };
    } else if (rinfo.port !== peer.port || rinfo.address !== peer.address) {
      counters.foreign++;
      return;
    }
    if (msg.length > maxFrameLen) {
      counters.oversize++;
      return;
    }
    counters.framesIn++;
    counters.bytesIn += msg.length;
    backend.send(msg);
  };

  socket.on('error', (err) => void finish('error', err));
  socket.on('close', () => void finish('closed'));

  await backend.init(
    (frame) => {
      if (finished) return;
      if (peer === null) {
        counters.noPeer++;
        return;
      }
      counters.framesOut++;
      counters.bytesOut += frame.length;
      // The socket keeps the buffer until the datagram is sent: copy (rx frames are borrowed).
      socket.send(new Uint8Array(frame), peer.port, peer.address, onSent);
      if (!rxPaused && socket.getSendQueueCount() > high) {
        rxPaused = true;
        backend.pauseRecv();
      }
    },
    { error: (err) => void finish('error', err) },
  );
  socket.on('message', onMessage);

  return {
    get peer() {
      return peer;
    },
    counters,
    done,
    close: () => finish('closed'),
  };
}
