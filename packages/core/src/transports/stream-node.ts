/**
 * Node glue for QEMU stream framing: connect a Duplex (a `net.Socket` accepted from or connected
 * to QEMU's `-netdev stream`, passt/gvproxy-style peers) to a NetBackend.
 *
 * - Stream → backend: decoded frames go to `backend.send`. A `Queued` verdict pauses the decoder
 *   (the rest of the chunk waits, by reference) and the socket; the backend's `drain` resumes
 *   both. Frames are never dropped here for lack of room.
 * - Backend → stream: rx frames are framed and coalesced into one write per microtask batch
 *   (StreamFrameWriter). When `write` returns false the backend's receive is paused, and resumed
 *   on the socket's `drain`, so a slow VMM bounds the backend's memory instead of the socket's.
 * - End: EOF, socket error, close, a framing error (bad length: the socket is destroyed — the
 *   framing cannot resync) or a backend `error` event end the attachment once: pending output is
 *   flushed where the socket is still writable, the socket is ended/destroyed and the backend
 *   closed (unless `keepBackendOpen`). `done` then resolves with the reason; it never rejects.
 *
 * `attachStream` initialises the backend (it must be fresh), since that is where the rx handler
 * is given; it rejects, after destroying the socket, if `init` fails.
 */
import type { Duplex } from 'node:stream';
import { type NetBackend, Verdict } from '../backend.ts';
import { StreamFrameDecoder, StreamFrameWriter } from './stream.ts';

export interface AttachStreamOptions {
  /** Largest frame accepted from the stream. Default 65535 + 12 + 14. */
  maxFrameLen?: number;
  /** Leave the backend open when the stream ends. Default false. */
  keepBackendOpen?: boolean;
  /** Output batch size in bytes. Default 256 KiB. */
  batchBytes?: number;
}

export interface StreamEnd {
  /** end: the peer closed its side; closed: the socket closed or `close()` was called; error: socket or backend error; protocol: bad framing. */
  reason: 'end' | 'closed' | 'error' | 'protocol';
  error?: Error;
}

export interface StreamCounters {
  /** Frames read from the stream and handed to the backend. */
  framesIn: number;
  bytesIn: number;
  /** Frames from the backend written to the stream. */
  framesOut: number;
  bytesOut: number;
  /** Times the stream was paused because the backend was full. */
  txPauses: number;
  /** Times the backend was paused because the stream was full. */
  rxPauses: number;
}

export interface StreamAttachment {
  /** Resolves once everything is released. Never rejects. */
  readonly done: Promise<StreamEnd>;
  readonly counters: Readonly<StreamCounters>;
  /** Detach: destroy the stream, close the backend (unless keepBackendOpen); resolves with `done`. */
  close(): Promise<StreamEnd>;
}

export async function attachStream(duplex: Duplex, backend: NetBackend, opts: AttachStreamOptions = {}): Promise<StreamAttachment> {
  const counters: StreamCounters = { framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, txPauses: 0, rxPauses: 0 };
  let finished = false;
  let rxPaused = false;
  let resolveDone!: (end: StreamEnd) => void;
  const done = new Promise<StreamEnd>((r) => (resolveDone = r));

  const writer = new StreamFrameWriter(
    (chunk) => {
      if (finished || !duplex.writable) return;
      if (!duplex.write(chunk) && !rxPaused) {
        rxPaused = true;
        counters.rxPauses++;
        backend.pauseRecv();
      }
    },
    { batchBytes: opts.batchBytes },
  );

  const decoder = new StreamFrameDecoder(
    (frame) => {
      counters.framesIn++;
      counters.bytesIn += frame.length;
      if (backend.send(frame) === Verdict.Queued) {
        counters.txPauses++;
        decoder.pause();
        duplex.pause();
      }
    },
    (err) => void finish('protocol', err),
    { maxFrameLen: opts.maxFrameLen },
  );

  const finish = async (reason: StreamEnd['reason'], error?: Error): Promise<void> => {
    if (finished) return;
    if (reason === 'end' || reason === 'closed') writer.flush();
    finished = true;
    writer.close();
    duplex.off('data', onData);
    duplex.off('drain', onDrain);
    if (reason === 'end' && !duplex.destroyed) duplex.end();
    else duplex.destroy();
    if (!opts.keepBackendOpen) await backend.close().catch(() => {});
    resolveDone(error ? { reason, error } : { reason });
  };

  const onData = (chunk: Buffer): void => decoder.push(chunk);
  const onDrain = (): void => {
    if (rxPaused && !finished) {
      rxPaused = false;
      backend.resumeRecv();
    }
  };
  // Installed before init so an early failure of the socket is not missed (nor unhandled).
  duplex.on('error', (err) => void finish('error', err));
  duplex.on('close', () => void finish('closed'));
  duplex.on('end', () => void finish('end'));

  try {
    await backend.init(
      (frame) => {
        counters.framesOut++;
        counters.bytesOut += frame.length;
        writer.push(frame);
      },
      {
        drain: () => {
          if (finished || !decoder.paused) return;
          decoder.resume();
          if (!decoder.paused) duplex.resume();
        },
        error: (err) => void finish('error', err),
      },
    );
  } catch (err) {
    finished = true;
    duplex.destroy();
    throw err;
  }
  if (finished) return { done, counters, close: () => done };

  duplex.on('drain', onDrain);
  duplex.on('data', onData); // starts the flow

  return {
    done,
    counters,
    close: async () => {
      await finish('closed');
      return done;
    },
  };
}
