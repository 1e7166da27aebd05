import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TftpErrorCode, TftpOpcode, TftpView, emitTftp, parseTftp, tftpLen } from './tftp.ts';
import type { TftpRepr } from './tftp.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

// Captured on loopback: curl 7.88 `--tftp-blksize 1024 tftp://127.0.0.1:6969/pxelinux.0`.
const CURL_RRQ = hex(
  '0001 7078656c696e75782e30 00 6f63746574 00 7473697a65 00 30 00 626c6b73697a65 00 31303234 00 74696d656f7574 00 36 00',
);
// curl's ACK of the server's OACK (block 0) and of DATA block 1.
const CURL_ACK0 = hex('0004 0000');
const CURL_ACK1 = hex('0004 0001');
// The server side of that exchange.
const OACK = hex('0006 626c6b73697a65 00 31303234 00');
const DATA1 = hex('0003 0001 68656c6c6f0a');

function parse(b: Uint8Array): TftpRepr | null {
  const v = new TftpView();
  return v.reset(b, 0, b.length) ? parseTftp(v) : null;
}
function emit(r: TftpRepr): Uint8Array {
  const buf = new Uint8Array(tftpLen(r) + 8);
  const n = emitTftp(r, buf, 0);
  expect(n).toBe(tftpLen(r));
  return buf.slice(0, n);
}

describe('tftp real packets', () => {
  it('parses curl’s RRQ with tsize, blksize and timeout options', () => {
    expect(parse(CURL_RRQ)).toEqual({
      op: 'rrq',
      filename: 'pxelinux.0',
      mode: 'octet',
      options: { tsize: 0, blksize: 1024, timeout: 6, order: ['tsize', 'blksize', 'timeout'] },
    });
  });

  it('emits the RRQ back to the bytes curl sent', () => {
    expect(emit(parse(CURL_RRQ)!)).toEqual(CURL_RRQ);
  });

  it('round-trips the OACK, DATA and both ACKs of the capture', () => {
    expect(parse(OACK)).toEqual({ op: 'oack', options: { blksize: 1024, order: ['blksize'] } });
    expect(parse(DATA1)).toEqual({ op: 'data', block: 1, data: ascii('hello\n') });
    expect(parse(CURL_ACK0)).toEqual({ op: 'ack', block: 0 });
    expect(parse(CURL_ACK1)).toEqual({ op: 'ack', block: 1 });
    for (const b of [OACK, DATA1, CURL_ACK0, CURL_ACK1]) expect(emit(parse(b)!)).toEqual(b);
  });

  it('reads the opcode and block number straight from the view', () => {
    const v = new TftpView();
    expect(v.reset(DATA1, 0, DATA1.length)).toBe(true);
    expect([v.opcode, v.block, v.payloadLen]).toEqual([TftpOpcode.DATA, 1, 6]);
    expect(v.bytes[v.payloadOffset]).toBe(0x68);
  });

  it('writes an ERROR packet as RFC 1350 §5 lays it out', () => {
    const b = emit({ op: 'error', code: TftpErrorCode.FILE_NOT_FOUND, message: 'File not found' });
    expect(b).toEqual(hex('0005 0001 46696c65206e6f7420666f756e64 00'));
    expect(parse(b)).toEqual({ op: 'error', code: 1, message: 'File not found' });
  });

  it('emits WRQ with windowsize (RFC 7440) and unknown options after the known ones', () => {
    const r: TftpRepr = { op: 'wrq', filename: 'a', mode: 'netascii', options: { windowsize: 16, extra: [{ name: 'x-foo', value: 'bar' }] } };
    const b = emit(r);
    expect(b).toEqual(Uint8Array.from([0, 2, ...ascii('a\0netascii\0windowsize\x0016\0x-foo\0bar\0')]));
    expect(parse(b)).toEqual({ ...r, options: { ...r.options, order: ['windowsize', 'x-foo'] } });
  });
});

describe('tftp malformed input', () => {
  it('returns null for a filename without terminator', () => {
    expect(parse(Uint8Array.from([0, 1, ...ascii('pxelinux.0')]))).toBeNull();
  });

  it('returns null for a mode or option value without terminator', () => {
    expect(parse(Uint8Array.from([0, 1, ...ascii('f\0octet')]))).toBeNull();
    expect(parse(Uint8Array.from([0, 1, ...ascii('f\0octet\0blksize\0')]))).toBeNull();
    expect(parse(Uint8Array.from([0, 1, ...ascii('f\0octet\0blksize\x001024')]))).toBeNull();
    expect(parse(Uint8Array.from([0, 6, ...ascii('blksize')]))).toBeNull();
  });

  it('returns null for an ERROR message without terminator and for unknown opcodes', () => {
    expect(parse(Uint8Array.from([0, 5, 0, 1, ...ascii('oops')]))).toBeNull();
    expect(parse(hex('0007 0000'))).toBeNull();
    expect(parse(hex('0000 0000'))).toBeNull();
  });

  it('rejects packets below 4 octets at the view', () => {
    const v = new TftpView();
    expect(v.reset(hex('0004 00'), 0, 3)).toBe(false);
    expect(v.reset(hex('0004 0000'), 1, 4)).toBe(false);
  });

  it('does not read past the window it was given', () => {
    // The NUL that would end the filename lies outside [off, off+len).
    const b = Uint8Array.from([0, 1, ...ascii('file\0octet\0')]);
    const v = new TftpView();
    expect(v.reset(b, 0, 6)).toBe(true);
    expect(parseTftp(v)).toBeNull();
  });

  it('treats option names like __proto__ as plain unknown options', () => {
    const b = Uint8Array.from([0, 1, ...ascii('f\0octet\0__proto__\x001\0constructor\x002\0')]);
    const r = parse(b)!;
    expect(r).toEqual({
      op: 'rrq', filename: 'f', mode: 'octet',
      options: { extra: [{ name: '__proto__', value: '1' }, { name: 'constructor', value: '2' }], order: ['__proto__', 'constructor'] },
    });
    expect(emit(r)).toEqual(b);
  });

  it('keeps out-of-range or non-numeric known options untyped, for the server to ignore', () => {
    const b = Uint8Array.from([0, 1, ...ascii('f\0octet\0BLKSIZE\x004\0timeout\x00abc\0blksize\x00512\0')]);
    expect(parse(b)).toEqual({
      op: 'rrq',
      filename: 'f',
      mode: 'octet',
      options: {
        extra: [
          { name: 'blksize', value: '4' },
          { name: 'timeout', value: 'abc' },
          { name: 'blksize', value: '512' },
        ],
        order: ['blksize', 'timeout'],
      },
    });
  });
});

const str = fc.string({ maxLength: 20 }).map((s) => s.replace(/[\0]|[^\x00-\xff]/g, 'x'));
const optionsArb = fc.record(
  {
    blksize: fc.integer({ min: 8, max: 65464 }),
    tsize: fc.nat(),
    timeout: fc.integer({ min: 1, max: 255 }),
    windowsize: fc.integer({ min: 1, max: 65535 }),
    extra: fc.array(fc.record({ name: fc.stringMatching(/^x-[a-z]{1,8}$/), value: str }), { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const reprArb: fc.Arbitrary<TftpRepr> = fc.oneof(
  fc.record({ op: fc.constantFrom('rrq' as const, 'wrq' as const), filename: str, mode: str, options: optionsArb }),
  fc.record({ op: fc.constant('data' as const), block: fc.nat({ max: 0xffff }), data: fc.uint8Array({ maxLength: 1024 }) }),
  fc.record({ op: fc.constant('ack' as const), block: fc.nat({ max: 0xffff }) }),
  fc.record({ op: fc.constant('error' as const), code: fc.nat({ max: 0xffff }), message: str }),
  fc.record({ op: fc.constant('oack' as const), options: optionsArb }),
);

describe('tftp properties', () => {
  it('never throws on arbitrary bytes', () => {
    const v = new TftpView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat({ max: 6 }), (b, op) => {
        if (b.length >= 2) b[1] = op;
        if (v.reset(b, 0, b.length)) parseTftp(v);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips parse(emit(x)), up to the recorded option order', () => {
    const v = new TftpView();
    fc.assert(
      fc.property(reprArb, (r) => {
        const b = emit(r);
        expect(v.reset(b, 0, b.length) || b.length < 4).toBe(true);
        if (b.length < 4) return; // an OACK without options is 2 octets: not a valid packet
        const p = parseTftp(v)!;
        expect(p).not.toBeNull();
        if ('options' in p && 'options' in r) {
          const { order: _o, ...rest } = p.options;
          const want = { ...r.options };
          if (want.extra?.length === 0) delete want.extra;
          expect(rest).toEqual(want);
          expect({ ...p, options: null }).toEqual({ ...r, options: null });
        } else {
          expect(p).toEqual(r);
        }
        expect(emit(p)).toEqual(b);
      }),
      { numRuns: 1000 },
    );
  });
});
