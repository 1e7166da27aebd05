import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  WebSocketFrameDecoder,
  WebSocketFrameWriter,
  WsOpcode,
  encodeClosePayload,
  encodeWebSocketFrame,
  parseClosePayload,
  webSocketHeaderLen,
  type WsOpcode as Op,
} from './websocket.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

interface Seen {
  messages: { data: Uint8Array; binary: boolean }[];
  controls: { op: Op; data: Uint8Array }[];
  errors: { code: number; reason: string }[];
}

function decoder(role: 'server' | 'client', maxMessageLen?: number): { d: WebSocketFrameDecoder; seen: Seen } {
  const seen: Seen = { messages: [], controls: [], errors: [] };
  const d = new WebSocketFrameDecoder(
    {
      message: (data, binary) => seen.messages.push({ data: data.slice(), binary }),
      control: (op, data) => seen.controls.push({ op, data: data.slice() }),
      error: (code, reason) => seen.errors.push({ code, reason }),
    },
    { role, maxMessageLen },
  );
  return { d, seen };
}

// RFC 6455 §5.7 examples.
const MASKED_HELLO = '81 85 37fa213d 7f9f4d5158';
const UNMASKED_HELLO = '81 05 48656c6c6f';

describe('websocket codec › decoder', () => {
  it('decodes the RFC 6455 §5.7 masked "Hello" from a client', () => {
    const { d, seen } = decoder('server');
    d.push(hex(MASKED_HELLO));
    expect(seen.errors).toEqual([]);
    expect(seen.messages).toHaveLength(1);
    expect(text(seen.messages[0]!.data)).toBe('Hello');
    expect(seen.messages[0]!.binary).toBe(false);
  });

  it('reassembles the §5.7 fragmented "Hel"+"lo" with a ping between the fragments (client role)', () => {
    const { d, seen } = decoder('client');
    d.push(hex('01 03 48656c'));
    d.push(hex('89 05 48656c6c6f'));
    d.push(hex('80 02 6c6f'));
    expect(seen.errors).toEqual([]);
    expect(seen.controls).toEqual([{ op: WsOpcode.Ping, data: hex('48656c6c6f') }]);
    expect(seen.messages.map((m) => text(m.data))).toEqual(['Hello']);
  });

  it('decodes a masked pong (§5.7) as a control frame', () => {
    const { d, seen } = decoder('server');
    d.push(hex('8a 85 37fa213d 7f9f4d5158'));
    expect(seen.controls).toEqual([{ op: WsOpcode.Pong, data: new TextEncoder().encode('Hello') }]);
  });

  it('decodes 16-bit and 64-bit payload lengths (256 bytes and 64 KiB binary)', () => {
    const { d, seen } = decoder('client', 70_000);
    const a = new Uint8Array(256).map((_, i) => i);
    const b = new Uint8Array(65536).map((_, i) => i * 7);
    d.push(new Uint8Array([...hex('82 7e 0100'), ...a]));
    d.push(new Uint8Array([...hex('82 7f 0000000000010000'), ...b]));
    expect(seen.errors).toEqual([]);
    expect(seen.messages.map((m) => m.data)).toEqual([a, b]);
    expect(seen.messages.every((m) => m.binary)).toBe(true);
  });

  it('delivers a whole unfragmented message as a view of the input chunk (unmasked in place)', () => {
    let view: Uint8Array | null = null;
    const chunk = hex('82 83 01020304 11 22 33');
    const d = new WebSocketFrameDecoder({ message: (m) => (view = m), control: () => {}, error: () => {} }, { role: 'server' });
    d.push(chunk);
    expect(view!.buffer).toBe(chunk.buffer);
    expect([...view!]).toEqual([0x10, 0x20, 0x30]);
  });

  it('decodes any sequence of masked binary messages split at arbitrary points', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        (msgs, cuts, keys) => {
          const wire = msgs.map((m, i) => encodeWebSocketFrame(WsOpcode.Binary, m, keys[i % keys.length]!));
          const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
          let o = 0;
          for (const w of wire) {
            all.set(w, o);
            o += w.length;
          }
          const { d, seen } = decoder('server');
          let at = 0;
          for (let i = 0; at < all.length; i++) {
            const n = cuts[i % cuts.length]!;
            d.push(all.slice(at, at + n));
            at += n;
          }
          expect(seen.errors).toEqual([]);
          expect(seen.messages.map((m) => m.data)).toEqual(msgs);
        },
      ),
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), fc.boolean(), (chunks, server) => {
        const { d, seen } = decoder(server ? 'server' : 'client', 1000);
        for (const c of chunks) d.push(c);
        expect(seen.errors.length).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('holds input while paused and continues on resume', () => {
    const got: string[] = [];
    const d: WebSocketFrameDecoder = new WebSocketFrameDecoder(
      {
        message: (m) => {
          got.push(text(m));
          d.pause();
        },
        control: () => {},
        error: () => {},
      },
      { role: 'client' },
    );
    d.push(new Uint8Array([...hex('82 01 61'), ...hex('82 01 62'), ...hex('82 01 63')]));
    expect(got).toEqual(['a']);
    d.resume();
    expect(got).toEqual(['a', 'b']);
    d.resume();
    d.resume();
    expect(got).toEqual(['a', 'b', 'c']);
  });
});

describe('websocket codec › protocol errors fail the connection once', () => {
  const cases: [string, string, 'server' | 'client', number, RegExp][] = [
    ['an unmasked frame from a client', UNMASKED_HELLO, 'server', 1002, /unmasked/],
    ['a masked frame from a server', MASKED_HELLO, 'client', 1002, /masked frame from a server/],
    ['RSV1 set', 'c1 00', 'client', 1002, /RSV/],
    ['a reserved opcode', '83 00', 'client', 1002, /reserved data opcode 0x3/],
    ['a reserved control opcode', '8b 00', 'client', 1002, /reserved control opcode 0xb/],
    ['a fragmented ping', '09 00', 'client', 1002, /fragmented control/],
    ['a 126-byte ping', '89 7e 007e', 'client', 1002, /control frame of 126 bytes/],
    ['a continuation with no message', '80 00', 'client', 1002, /continuation/],
    ['a new message inside a fragmented one', '02 01 61 82 01 62', 'client', 1002, /inside a fragmented message/],
    ['a 64-bit length with the top bit set', '82 7f 8000000000000000', 'client', 1002, /most significant bit/],
    ['a message over the limit, from its header alone', '82 7f 0000000100000000', 'client', 1009, /limit/],
  ];
  for (const [name, bytes, role, code, re] of cases) {
    it(`rejects ${name} with ${code}`, () => {
      const { d, seen } = decoder(role, 2000);
      d.push(hex(bytes));
      d.push(hex('82 01 61'));
      expect(seen.errors).toHaveLength(1);
      expect(seen.errors[0]!.code).toBe(code);
      expect(seen.errors[0]!.reason).toMatch(re);
      expect(d.failed).toBe(true);
      expect(seen.messages.filter((m) => m.binary)).toEqual([]);
    });
  }

  it('rejects fragments adding up to more than the limit', () => {
    const { d, seen } = decoder('client', 4);
    d.push(hex('02 03 616263'));
    d.push(hex('80 02 6465'));
    expect(seen.errors.map((e) => e.code)).toEqual([1009]);
    expect(seen.messages).toEqual([]);
  });
});

describe('websocket codec › encoder', () => {
  it('emits the §5.7 unmasked and masked "Hello" frames', () => {
    const hello = new TextEncoder().encode('Hello');
    expect(encodeWebSocketFrame(WsOpcode.Text, hello)).toEqual(hex(UNMASKED_HELLO));
    expect(encodeWebSocketFrame(WsOpcode.Text, hello, hex('37fa213d'))).toEqual(hex(MASKED_HELLO));
    expect(hello).toEqual(new TextEncoder().encode('Hello')); // the payload is not masked in place
  });

  it('uses the 16-bit and 64-bit length forms at 126 and 65536 bytes', () => {
    expect(encodeWebSocketFrame(WsOpcode.Binary, new Uint8Array(125)).subarray(0, 2)).toEqual(hex('82 7d'));
    expect(encodeWebSocketFrame(WsOpcode.Binary, new Uint8Array(256)).subarray(0, 4)).toEqual(hex('82 7e 0100'));
    expect(encodeWebSocketFrame(WsOpcode.Binary, new Uint8Array(65536)).subarray(0, 10)).toEqual(hex('82 7f 0000000000010000'));
    expect(webSocketHeaderLen(65535, true)).toBe(8);
    expect(webSocketHeaderLen(65536, false)).toBe(10);
  });

  it('batches messages of one tick into one write and masks each with its own key', async () => {
    const writes: Uint8Array[] = [];
    const w = new WebSocketFrameWriter((c) => writes.push(c), { mask: true });
    w.push(hex('0102'));
    w.push(hex('0304'));
    await Promise.resolve();
    expect(writes).toHaveLength(1);
    const { d, seen } = decoder('server');
    d.push(writes[0]!);
    expect(seen.messages.map((m) => [...m.data])).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('encodes and parses close payloads, rejecting codes that may not be sent', () => {
    expect(encodeClosePayload(1000, 'bye')).toEqual(hex('03e8 627965'));
    expect(parseClosePayload(hex('03e8 627965'))).toEqual({ code: 1000, reason: 'bye' });
    expect(parseClosePayload(new Uint8Array(0))).toEqual({ code: 1005, reason: '' });
    expect(parseClosePayload(hex('03'))).toBeNull();
    expect(parseClosePayload(hex('03ed'))).toBeNull(); // 1005 must not be sent
    expect(parseClosePayload(hex('0bb8'))!.code).toBe(3000);
    expect(encodeClosePayload(1001, 'x'.repeat(200))).toHaveLength(125);
  });
});
