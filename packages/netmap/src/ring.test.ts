import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  MAX_FRAME_LEN,
  NS_MOREFRAG,
  RegionOffset,
  RingOffset,
  formatPortRegion,
  openPortRegion,
  portRegionBytes,
  type RingGeometry,
} from './ring.ts';
import { atomicsDoorbell } from './doorbell.ts';

function make(g: RingGeometry = { slots: 8, bufSize: 64 }) {
  const mem = new SharedArrayBuffer(portRegionBytes(g));
  formatPortRegion(mem, g);
  return { mem, port: openPortRegion(mem, 0, 'port'), sw: openPortRegion(mem, 0, 'switch') };
}

function frame(len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (seed + i * 7) & 0xff;
  return f;
}

describe('ring layout', () => {
  it('sizes a region as header + 2 slot arrays + 2·slots 64-aligned buffers', () => {
    // 192 + 16·8 = 320 → buffers at 320; 16 buffers × 64.
    expect(portRegionBytes({ slots: 8, bufSize: 64 })).toBe(320 + 16 * 64);
    expect(portRegionBytes({ slots: 1024, bufSize: 2048 })).toBe(192 + 16 * 1024 + 2048 * 2048);
  });

  it('rejects geometries out of range with GUESTNET_BAD_CONFIG', () => {
    expect(() => portRegionBytes({ slots: 1, bufSize: 2048 })).toThrow(expect.objectContaining({ code: 'GUESTNET_BAD_CONFIG' }));
    expect(() => portRegionBytes({ slots: 8, bufSize: 100 })).toThrow(/multiple of 8/);
    expect(() => portRegionBytes({ slots: 8, bufSize: 65536 })).toThrow(/65528/);
  });

  it('writes the header fields at the documented offsets', () => {
    const { mem } = make({ slots: 8, bufSize: 64 });
    const w = new Int32Array(mem);
    expect(w[RegionOffset.magic / 4]! >>> 0).toBe(0x474e4d31);
    expect(w[RegionOffset.version / 4]).toBe(1);
    expect(w[RegionOffset.slots / 4]).toBe(8);
    expect(w[RegionOffset.bufSize / 4]).toBe(64);
    expect(w[RegionOffset.regionBytes / 4]).toBe(portRegionBytes({ slots: 8, bufSize: 64 }));
    // rx slot 3 starts on buffer 8 + 3.
    expect(w[RegionOffset.slotsStart / 4 + 2 * (8 + 3)]).toBe(11);
  });

  it('refuses to open unformatted or mismatched memory with GUESTNET_PROTOCOL', () => {
    const mem = new SharedArrayBuffer(4096);
    expect(() => openPortRegion(mem)).toThrow(expect.objectContaining({ code: 'GUESTNET_PROTOCOL' }));
    const { mem: m2 } = make();
    new Int32Array(m2)[RegionOffset.version / 4] = 2;
    expect(() => openPortRegion(m2)).toThrow(/version 2/);
    const { mem: m3 } = make();
    new Int32Array(m3)[RegionOffset.slots / 4] = 1 << 20;
    expect(() => openPortRegion(m3)).toThrow(expect.objectContaining({ code: 'GUESTNET_PROTOCOL' }));
    const { mem: m4 } = make();
    expect(() => openPortRegion(m4.slice(0, 1024) as unknown as SharedArrayBuffer)).toThrow();
  });
});

describe('ring ownership (head/cur/tail)', () => {
  it('gives the producer slots-1 slots and the consumer none on an empty ring', () => {
    const { port } = make();
    expect(port.tx.head).toBe(0);
    expect(port.tx.tail).toBe(7);
    expect(port.tx.space()).toBe(7);
    expect(port.rx.space()).toBe(0);
  });

  it('keeps one slot reserved: a full ring takes no more frames', () => {
    const { port, sw } = make();
    const f = frame(60, 1);
    for (let i = 0; i < 7; i++) expect(port.tx.writeFrame(f, 0, 60)).toBe(true);
    expect(port.tx.writeFrame(f, 0, 60)).toBe(false);
    expect(port.tx.space()).toBe(0);
    port.tx.publish();
    // The switch sees 7 frames, not 8.
    expect(sw.tx.refresh()).toBe(7);
    const buf = new Uint8Array(100);
    expect(sw.tx.readFrame(buf)).toBe(60);
    // Released slots reach the producer only after the consumer publishes.
    expect(port.tx.refresh()).toBe(0);
    sw.tx.publish();
    expect(port.tx.refresh()).toBe(1);
  });

  it('does not move tail between syncs: written slots are invisible until publish', () => {
    const { port, sw } = make();
    port.tx.writeFrame(frame(10, 0), 0, 10);
    expect(sw.tx.refresh()).toBe(0);
    port.tx.publish();
    expect(sw.tx.space()).toBe(0);
    expect(sw.tx.refresh()).toBe(1);
  });

  it('wraps around the ring end many times with frames intact', () => {
    const { port, sw } = make({ slots: 5, bufSize: 64 });
    const out = new Uint8Array(256);
    let next = 0;
    for (let round = 0; round < 50; round++) {
      const len = 1 + ((round * 37) % 200); // 1..4 slots
      const f = frame(len, round);
      expect(port.tx.writeFrame(f, 0, len)).toBe(true);
      port.tx.publish();
      const n = sw.tx.readFrame(out);
      expect(n).toBe(len);
      expect(out.subarray(0, n)).toEqual(f);
      sw.tx.publish();
      port.tx.refresh();
      next++;
    }
    expect(next).toBe(50);
    expect(port.tx.space()).toBe(4);
  });

  it('refuses a head moved past tail and counts it', () => {
    const { port } = make();
    port.tx.head = 7; // owned: [0, 7) — head may reach tail (7) …
    expect(() => port.tx.publish()).not.toThrow();
    port.tx.head = 3; // … but not move backwards past what was published
    port.tx.publish();
    expect(port.tx.badHead).toBe(1);
    expect(port.tx.head).toBe(7);
  });
});

describe('NS_MOREFRAG', () => {
  it('chains a frame over several slots and flags all but the last', () => {
    const { port } = make({ slots: 8, bufSize: 64 });
    expect(port.tx.writeFrame(frame(150, 3), 0, 150)).toBe(true);
    expect([port.tx.slotLen(0), port.tx.slotLen(1), port.tx.slotLen(2)]).toEqual([64, 64, 22]);
    expect([port.tx.slotFlags(0), port.tx.slotFlags(1), port.tx.slotFlags(2)]).toEqual([NS_MOREFRAG, NS_MOREFRAG, 0]);
    expect(port.tx.head).toBe(3);
  });

  it('carries a 65535-byte frame and a 65535+vnet-header frame through 2048-byte buffers', () => {
    const { port, sw } = make({ slots: 64, bufSize: 2048 });
    const out = new Uint8Array(MAX_FRAME_LEN);
    for (const len of [65535, 65535 + 12, MAX_FRAME_LEN]) {
      const f = frame(len, len);
      expect(port.tx.canCarry(len)).toBe(true);
      expect(port.tx.writeFrame(f, 0, len)).toBe(true);
      port.tx.publish();
      expect(sw.tx.peekFrameLen()).toBe(len);
      expect(sw.tx.readFrame(out)).toBe(len);
      expect(out.subarray(0, len)).toEqual(f);
      sw.tx.publish();
      port.tx.refresh();
    }
    expect(port.tx.writeFrame(new Uint8Array(MAX_FRAME_LEN + 1), 0, MAX_FRAME_LEN + 1)).toBe(false);
  });

  it('waits for the rest of a chain that is only partly published', () => {
    const { port, sw } = make({ slots: 8, bufSize: 64 });
    port.tx.writeFrame(frame(150, 0), 0, 150);
    // Publish only the first two slots of the three.
    port.tx.head = 2;
    port.tx.publish();
    expect(sw.tx.peekFrameLen()).toBe(0);
    port.tx.head = 3;
    port.tx.publish();
    expect(sw.tx.peekFrameLen()).toBe(150);
  });

  it('drops a frame that does not fit the reader buffer and returns -1', () => {
    const { port, sw } = make();
    port.tx.writeFrame(frame(100, 0), 0, 100);
    port.tx.writeFrame(frame(20, 9), 0, 20);
    port.tx.publish();
    const small = new Uint8Array(50);
    expect(sw.tx.readFrame(small)).toBe(-1);
    expect(sw.tx.readFrame(small)).toBe(20);
    expect(small.subarray(0, 20)).toEqual(frame(20, 9));
  });
});

describe('hostile shared memory', () => {
  it('ignores a published index out of range or moving backwards, and counts it', () => {
    const { mem, port, sw } = make();
    const w = new Int32Array(mem);
    const prodW = (RegionOffset.txRing + RingOffset.prod) / 4;
    w[prodW] = 1000;
    expect(sw.tx.refresh()).toBe(0);
    expect(sw.tx.badIndex).toBe(1);
    w[prodW] = -5;
    expect(sw.tx.refresh()).toBe(0);
    port.tx.writeFrame(frame(10, 0), 0, 10);
    port.tx.writeFrame(frame(10, 0), 0, 10);
    port.tx.publish();
    expect(sw.tx.refresh()).toBe(2);
    w[prodW] = 1; // backwards
    expect(sw.tx.refresh()).toBe(2);
    // The consumer index may not run past what the producer published.
    const consW = (RegionOffset.txRing + RingOffset.cons) / 4;
    w[consW] = 5;
    port.tx.refresh();
    expect(port.tx.badIndex).toBe(1);
    expect(port.tx.space()).toBe(5);
  });

  it('drops slots with a buffer index outside the region or a length above bufSize', () => {
    const { mem, port, sw } = make({ slots: 8, bufSize: 64 });
    for (let i = 0; i < 3; i++) port.tx.writeFrame(frame(30, i), 0, 30);
    port.tx.publish();
    const w = new Int32Array(mem);
    const h = new Uint16Array(mem);
    w[RegionOffset.slotsStart / 4] = 0x7fffffff; // slot 0: buffer index way out
    h[(RegionOffset.slotsStart + 8 + 4) / 2] = 65000; // slot 1: length > bufSize
    const out = new Uint8Array(100);
    expect(sw.tx.readFrame(out)).toBe(30);
    expect(out.subarray(0, 30)).toEqual(frame(30, 2));
    expect(sw.tx.badSlot).toBe(2);
  });

  it('drops a MOREFRAG chain that fills the whole ring and never ends', () => {
    const { mem, port, sw } = make({ slots: 8, bufSize: 64 });
    for (let i = 0; i < 7; i++) port.tx.writeFrame(frame(10, i), 0, 10);
    port.tx.publish();
    const h = new Uint16Array(mem);
    for (let i = 0; i < 8; i++) h[(RegionOffset.slotsStart + 8 * i + 6) / 2] = NS_MOREFRAG;
    expect(sw.tx.peekFrameLen()).toBe(0);
    expect(sw.tx.badFrame).toBe(1);
    expect(sw.tx.head).toBe(7);
  });

  it('repairs a producer-owned slot whose buffer index the peer scribbled', () => {
    const { mem, port, sw } = make({ slots: 8, bufSize: 64 });
    new Int32Array(mem)[RegionOffset.slotsStart / 4 + 2 * 4] = -1;
    for (let i = 0; i < 5; i++) port.tx.writeFrame(frame(10, i), 0, 10);
    port.tx.publish();
    const out = new Uint8Array(64);
    for (let i = 0; i < 5; i++) {
      expect(sw.tx.readFrame(out)).toBe(10);
      expect(out.subarray(0, 10)).toEqual(frame(10, i));
    }
    expect(port.tx.badSlot).toBe(1);
  });

  it('never throws or reads out of bounds whatever the peer writes (property)', () => {
    const g = { slots: 8, bufSize: 64 };
    const bytes = portRegionBytes(g);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(Math.floor(bytes / 4) - 1), fc.integer()), { maxLength: 40 }), (writes) => {
        const { mem, port, sw } = make(g);
        port.tx.writeFrame(frame(100, 1), 0, 100);
        port.tx.publish();
        const w = new Int32Array(mem);
        for (const [i, v] of writes) if (i >= 16) w[i] = v; // everything but the region header
        const out = new Uint8Array(MAX_FRAME_LEN);
        for (let k = 0; k < 20; k++) {
          const n = sw.tx.readFrame(out);
          expect(n).toBeLessThanOrEqual(MAX_FRAME_LEN);
          sw.tx.publish();
          port.tx.refresh();
          port.tx.writeFrame(frame(70, k), 0, 70);
          port.tx.publish();
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('need-wakeup and the atomics doorbell', () => {
  it('asks for a kick only after the consumer armed its wakeup', () => {
    const { port, sw } = make();
    port.tx.writeFrame(frame(10, 0), 0, 10);
    expect(port.tx.publish()).toBe(false);
    sw.tx.readFrame(new Uint8Array(64));
    sw.tx.publish();
    expect(sw.tx.armWakeup()).toBe(false); // empty: safe to sleep
    port.tx.writeFrame(frame(10, 0), 0, 10);
    expect(port.tx.publish()).toBe(true); // flag seen and cleared
    expect(port.tx.publish()).toBe(false); // only once
  });

  it('re-checks the ring when arming so a frame published just before is not missed', () => {
    const { port, sw } = make();
    port.tx.writeFrame(frame(10, 0), 0, 10);
    port.tx.publish();
    expect(sw.tx.armWakeup()).toBe(true);
  });

  it('producer waiting for space is kicked when the consumer frees slots', () => {
    const { port, sw } = make({ slots: 4, bufSize: 64 });
    for (let i = 0; i < 3; i++) port.tx.writeFrame(frame(10, i), 0, 10);
    port.tx.publish();
    expect(port.tx.armWakeup(1)).toBe(false);
    sw.tx.readFrame(new Uint8Array(64));
    expect(sw.tx.publish()).toBe(true);
  });

  it('delivers a ring to onRing across the same thread and stops after close', async () => {
    const mem = new SharedArrayBuffer(64);
    const a = atomicsDoorbell(mem, 8);
    const b = atomicsDoorbell(mem, 8);
    let n = 0;
    let resolve!: () => void;
    let p = new Promise<void>((r) => (resolve = r));
    b.onRing(() => {
      n++;
      resolve();
    });
    a.ring();
    await p;
    expect(n).toBe(1);
    p = new Promise<void>((r) => (resolve = r));
    a.ring();
    a.ring();
    await p;
    await new Promise((r) => setTimeout(r, 10));
    expect(n).toBeGreaterThanOrEqual(2); // level-insensitive: two rings may coalesce
    expect(n).toBeLessThanOrEqual(3);
    b.close();
    const before = n;
    a.ring();
    await new Promise((r) => setTimeout(r, 10));
    expect(n).toBe(before);
  });
});
