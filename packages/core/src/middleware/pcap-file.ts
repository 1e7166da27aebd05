/**
 * Node-only: a pcapng sink backed by a file (fs.createWriteStream). Kept apart from pcap.ts so
 * the browser path never imports `node:fs`; pcap.ts loads this module with a dynamic import only
 * when given `{ path }`.
 *
 * Writes are asynchronous (the stream queues chunks) so capture never blocks the event loop; a
 * write error is remembered and reported by `close()`, the data path only stops writing.
 */
import { createWriteStream } from 'node:fs';
import { ErrorCode, GuestnetError } from '../errors.ts';
import type { PcapSink } from './pcapng.ts';

export interface PcapFileSink {
  sink: PcapSink;
  /** Flush the OS-level stream and close the file. Rejects with GUESTNET_IO if a write failed. */
  close(): Promise<void>;
}

/** Open (create/truncate) `path` for writing. Resolves once the file is open. */
export function openPcapFile(path: string): Promise<PcapFileSink> {
  return new Promise((resolve, reject) => {
    const ws = createWriteStream(path);
    let failure: Error | null = null;
    const onOpenError = (err: Error): void => {
      reject(new GuestnetError(ErrorCode.Io, `cannot open pcap file ${path}: ${err.message}`, { cause: err, hint: 'check that the directory exists and is writable' }));
    };
    ws.once('error', onOpenError);
    ws.once('open', () => {
      ws.off('error', onOpenError);
      ws.on('error', (err) => {
        failure ??= err;
      });
      resolve({
        sink: (chunk) => {
          if (failure === null) ws.write(chunk);
        },
        close: () =>
          new Promise<void>((res, rej) => {
            const done = (): void => {
              if (failure) rej(new GuestnetError(ErrorCode.Io, `writing pcap file ${path} failed: ${failure.message}`, { cause: failure }));
              else res();
            };
            if (ws.closed || ws.destroyed) return done();
            ws.end(done);
          }),
      });
    });
  });
}
