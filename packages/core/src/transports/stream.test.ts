import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_STREAM_MAX_FRAME, StreamFrameDecoder, StreamFrameWriter, encodeStreamFrame } from './stream.ts';
import type { GuestnetError } from '../errors.ts';

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function collect(opts?: { maxFrameLen?: number }) {
  const frames: number[][] = [];
  const errors: GuestnetError[] = [];
  const dec = new StreamFrameDecoder((f) => frames.push(Array.from(f)), (e) => errors.push(e), opts);
  return { dec, frames, errors };
}

describe('encodeStreamFrame', () => {
  it('prefixes the frame with its 4-byte big-endian length', () => {
    expect(Array.from(encodeStreamFrame(Uint8Array.of(1, 2, 3)))).toEqual([0, 0, 0, 3, 1, 2, 3]);
    const big = encodeStreamFrame(new Uint8Array(0x1_02_03));
    expect(Array.from(big.subarray(0, 4))).toEqual([0x00, 0x01, 0x02, 0x03]);
  });
});

describe('StreamFrameDecoder', () => {
  it('decodes two frames from one chunk', () => {
    const { dec, frames } = collect();
    dec.push(Uint8Array.of(0, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0, 1, 0xcc));
    expect(frames).toEqual([[0xaa, 0xbb], [0xcc]]);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('delivers a frame wholly inside a chunk as a view of that chunk', () => {
    const chunk = Uint8Array.of(0, 0, 0, 2, 7, 8);
    let view: Uint8Array | null = null;
    const dec = new StreamFrameDecoder((f) => (view = f), () => {});
    dec.push(chunk);
    expect(view!.buffer).toBe(chunk.buffer);
    expect(view!.byteOffset).toBe(4);
  });

  it('reassembles frames split at every byte boundary (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
        (payloads, cuts) => {
          const wire = concat(payloads.map(encodeStreamFrame));
          const { dec, frames, errors } = collect();
          let o = 0;
          for (let i = 0; o < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            dec.push(wire.slice(o, o + n));
            o += n;
          }
          expect(errors).toEqual([]);
          expect(frames).toEqual(payloads.map((p) => Array.from(p)));
          expect(dec.bufferedBytes).toBe(0);
        },
      ),
    );
  });

  it('reassembles when the stream is cut at each single offset', () => {
    const payloads = [Uint8Array.of(1, 2, 3, 4, 5), Uint8Array.of(6), new Uint8Array(40).fill(9)];
    const wire = concat(payloads.map(encodeStreamFrame));
    for (let cut = 0; cut <= wire.length; cut++) {
      for (let cut2 = cut; cut2 <= wire.length; cut2 += 3) {
        const { dec, frames } = collect();
        dec.push(wire.slice(0, cut));
        dec.push(wire.slice(cut, cut2));
        dec.push(wire.slice(cut2));
        expect(frames).toEqual(payloads.map((p) => Array.from(p)));
      }
    }
  });

  it('reuses its reassembly buffer instead of allocating per frame', () => {
    const bufs = new Set<ArrayBufferLike>();
    const dec = new StreamFrameDecoder((f) => bufs.add(f.buffer), () => {});
    const wire = encodeStreamFrame(new Uint8Array(1000).fill(1));
    for (let i = 0; i < 50; i++) {
      dec.push(wire.slice(0, 500));
      dec.push(wire.slice(500));
    }
    expect(bufs.size).toBe(1);
  });

  it('rejects a zero length at once', () => {
    const { dec, frames, errors } = collect();
    dec.push(Uint8Array.of(0, 0, 0, 0, 1, 2, 3));
    expect(frames).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('GUESTNET_PROTOCOL');
    expect(dec.failed).toBe(true);
  });

  it('rejects an oversize length without buffering the payload', () => {
    const { dec, frames, errors } = collect();
    const len = DEFAULT_STREAM_MAX_FRAME + 1;
    dec.push(Uint8Array.of(len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff));
    expect(errors).toHaveLength(0);
    dec.push(Uint8Array.of(len & 0xff)); // the 4th length byte: rejected before any payload
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(`${len}`);
    // A hostile peer keeps streaming: nothing is kept, nothing delivered, one error only.
    for (let i = 0; i < 100; i++) dec.push(new Uint8Array(64 * 1024));
    expect(dec.bufferedBytes).toBe(0);
    expect(dec.pendingBytes).toBe(0);
    expect(frames).toEqual([]);
    expect(errors).toHaveLength(1);
  });

  it('accepts a frame of exactly maxFrameLen and rejects one byte more', () => {
    const ok = collect({ maxFrameLen: 100 });
    ok.dec.push(encodeStreamFrame(new Uint8Array(100)));
    expect(ok.frames).toHaveLength(1);
    const bad = collect({ maxFrameLen: 100 });
    bad.dec.push(encodeStreamFrame(new Uint8Array(101)));
    expect(bad.frames).toHaveLength(0);
    expect(bad.errors).toHaveLength(1);
  });

  it('stops after the current frame when paused and continues on resume', () => {
    const got: number[] = [];
    const dec: StreamFrameDecoder = new StreamFrameDecoder(
      (f) => {
        got.push(f[0]!);
        if (f[0] === 2) dec.pause();
      },
      () => {},
    );
    const wire = concat([1, 2, 3, 4].map((n) => encodeStreamFrame(Uint8Array.of(n))));
    dec.push(wire.slice(0, 12));
    expect(got).toEqual([1, 2]);
    dec.push(wire.slice(12)); // arrives while paused: kept, not decoded
    expect(got).toEqual([1, 2]);
    expect(dec.pendingBytes).toBe(wire.length - 10);
    dec.resume();
    expect(got).toEqual([1, 2, 3, 4]);
    expect(dec.pendingBytes).toBe(0);
  });
});

describe('StreamFrameWriter', () => {
  it('coalesces the frames of one tick into one write', async () => {
    const writes: Uint8Array[] = [];
    const w = new StreamFrameWriter((c) => writes.push(c));
    const src = Uint8Array.of(1, 2);
    w.push(src);
    src[0] = 9; // the writer copied it
    w.push(Uint8Array.of(3));
    expect(writes).toEqual([]);
    await Promise.resolve();
    expect(writes.map((c) => Array.from(c))).toEqual([[0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3]]);
  });

  it('writes a full batch before it overflows and keeps the rest for later', () => {
    const writes: number[][] = [];
    const w = new StreamFrameWriter((c) => writes.push(Array.from(c)), { batchBytes: 64, schedule: () => {} });
    for (let i = 0; i < 3; i++) w.push(new Uint8Array(20).fill(i)); // 24 bytes each
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(48);
    expect(w.pendingBytes).toBe(24);
    w.flush();
    expect(writes).toHaveLength(2);
    const { dec, frames } = collect();
    for (const c of writes) dec.push(Uint8Array.from(c));
    expect(frames.map((f) => f[0])).toEqual([0, 1, 2]);
  });

  it('writes a frame larger than the batch buffer on its own', () => {
    const writes: Uint8Array[] = [];
    const w = new StreamFrameWriter((c) => writes.push(c), { batchBytes: 64, schedule: () => {} });
    w.push(Uint8Array.of(1));
    w.push(new Uint8Array(100));
    expect(writes.map((c) => c.length)).toEqual([5, 104]);
  });
});
