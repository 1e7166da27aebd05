import { describe, it, expect } from 'vitest';
import { BLOCK_EPB, BLOCK_IDB, BLOCK_SHB, PcapDirection, PcapngWriter } from './pcapng.ts';

interface ParsedBlock {
  type: number;
  length: number;
  body: Uint8Array;
}

/** A hand-written pcapng reader for the tests: checks block framing, returns the blocks. */
function parseBlocks(file: Uint8Array): ParsedBlock[] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const blocks: ParsedBlock[] = [];
  for (let o = 0; o < file.length; ) {
    const type = dv.getUint32(o, true);
    const length = dv.getUint32(o + 4, true);
    if (length % 4 !== 0 || o + length > file.length) throw new Error(`bad block length ${length} at ${o}`);
    if (dv.getUint32(o + length - 4, true) !== length) throw new Error(`trailing length mismatch at ${o}`);
    blocks.push({ type, length, body: file.subarray(o + 8, o + length - 4) });
    o += length;
  }
  return blocks;
}

interface ParsedEpb {
  ifId: number;
  tsMicros: number;
  capLen: number;
  origLen: number;
  data: Uint8Array;
  flags: number | undefined;
}

function parseEpb(body: Uint8Array): ParsedEpb {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const capLen = dv.getUint32(12, true);
  const tsMicros = dv.getUint32(4, true) * 2 ** 32 + dv.getUint32(8, true);
  let o = 20 + ((capLen + 3) & ~3);
  let flags: number | undefined;
  while (o + 4 <= body.length) {
    const code = dv.getUint16(o, true);
    const len = dv.getUint16(o + 2, true);
    if (code === 0) break;
    if (code === 2) flags = dv.getUint32(o + 4, true);
    o += 4 + ((len + 3) & ~3);
  }
  return { ifId: dv.getUint32(0, true), tsMicros, capLen, origLen: dv.getUint32(16, true), data: body.subarray(20, 20 + capLen), flags };
}

function capture(opts: ConstructorParameters<typeof PcapngWriter>[1] = {}) {
  const chunks: Uint8Array[] = [];
  const w = new PcapngWriter((c) => chunks.push(c), opts);
  const bytes = (): Uint8Array => {
    w.flush();
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  };
  return { w, chunks, bytes };
}

describe('PcapngWriter', () => {
  it('writes a section header block with the byte-order magic and version 1.0', () => {
    const { bytes } = capture();
    const file = bytes();
    // Byte vector: block type, then (after the length) 4d 3c 2b 1a, 01 00, 00 00, ff x8.
    expect(Array.from(file.subarray(0, 4))).toEqual([0x0a, 0x0d, 0x0d, 0x0a]);
    expect(Array.from(file.subarray(8, 24))).toEqual([0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const blocks = parseBlocks(file);
    expect(blocks.map((b) => b.type)).toEqual([BLOCK_SHB, BLOCK_IDB]);
  });

  it('describes one Ethernet interface with the snaplen, name and microsecond resolution', () => {
    const { bytes } = capture({ snaplen: 1600, ifName: 'eth0' });
    const idb = parseBlocks(bytes())[1]!;
    const dv = new DataView(idb.body.buffer, idb.body.byteOffset, idb.body.byteLength);
    expect(dv.getUint16(0, true)).toBe(1); // LINKTYPE_ETHERNET
    expect(dv.getUint32(4, true)).toBe(1600);
    // if_name option: code 2, length 4, "eth0"
    expect(Array.from(idb.body.subarray(8, 16))).toEqual([2, 0, 4, 0, 0x65, 0x74, 0x68, 0x30]);
    // if_tsresol: code 9, length 1, value 6, padding
    expect(Array.from(idb.body.subarray(16, 24))).toEqual([9, 0, 1, 0, 6, 0, 0, 0]);
  });

  it('writes one enhanced packet block per frame with timestamp, lengths, padding and direction', () => {
    const { w, bytes } = capture();
    const f1 = Uint8Array.from({ length: 61 }, (_, i) => i);
    const ts = 1_700_000_000_123_456; // needs the high 32 bits
    w.writePacket(f1, PcapDirection.Outbound, 0, ts);
    w.writePacket(Uint8Array.of(1, 2, 3, 4), PcapDirection.Inbound, 0, 5);
    const blocks = parseBlocks(bytes());
    expect(blocks.map((b) => b.type)).toEqual([BLOCK_SHB, BLOCK_IDB, BLOCK_EPB, BLOCK_EPB]);
    expect(blocks[2]!.length).toBe(44 + 64);
    const p1 = parseEpb(blocks[2]!.body);
    expect(p1).toMatchObject({ ifId: 0, tsMicros: ts, capLen: 61, origLen: 61, flags: 2 });
    expect(Array.from(p1.data)).toEqual(Array.from(f1));
    expect(Array.from(blocks[2]!.body.subarray(20 + 61, 20 + 64))).toEqual([0, 0, 0]); // padding
    const p2 = parseEpb(blocks[3]!.body);
    expect(p2).toMatchObject({ tsMicros: 5, capLen: 4, origLen: 4, flags: 1 });
    expect(w.packets).toBe(2);
  });

  it('cuts frames to the snaplen but records the original length', () => {
    const { w, bytes } = capture({ snaplen: 16 });
    w.writePacket(new Uint8Array(100).fill(7), PcapDirection.Inbound, 0, 0);
    const p = parseEpb(parseBlocks(bytes())[2]!.body);
    expect(p.capLen).toBe(16);
    expect(p.origLen).toBe(100);
  });

  it('skips a prefix (the virtio-net header) when asked', () => {
    const { w, bytes } = capture();
    const f = new Uint8Array(12 + 60);
    f.fill(0xee, 0, 12);
    f[12] = 0x42;
    w.writePacket(f, PcapDirection.Outbound, 12, 0);
    const p = parseEpb(parseBlocks(bytes())[2]!.body);
    expect(p.origLen).toBe(60);
    expect(p.data[0]).toBe(0x42);
  });

  it('buffers blocks and hands the sink chunks it may keep', () => {
    const { w, chunks } = capture({ bufferBytes: 1024 });
    for (let i = 0; i < 5; i++) w.writePacket(new Uint8Array(100), PcapDirection.Inbound, 0, i);
    expect(chunks).toHaveLength(0); // still buffered
    for (let i = 0; i < 10; i++) w.writePacket(new Uint8Array(100), PcapDirection.Inbound, 0, i);
    expect(chunks.length).toBeGreaterThan(0);
    const first = chunks[0]!;
    const copy = first.slice();
    for (let i = 0; i < 30; i++) w.writePacket(new Uint8Array(100).fill(0xff), PcapDirection.Inbound, 0, i);
    expect(first).toEqual(copy); // not overwritten by later packets
  });

  it('stops quietly when the sink throws', () => {
    let calls = 0;
    const w = new PcapngWriter(
      () => {
        calls++;
        throw new Error('disk full');
      },
      { bufferBytes: 256 },
    );
    for (let i = 0; i < 10; i++) w.writePacket(new Uint8Array(100), PcapDirection.Inbound, 0, i);
    w.flush();
    expect(calls).toBe(1);
    expect(w.writeErrors).toBe(1);
  });
});
