import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bytesEqual,
  ipv4InSubnet,
  ipv4PrefixMask,
  ipv4ToString,
  ipv6Equal,
  ipv6ToString,
  macEqual,
  macToString,
  parseIpv4Addr,
  parseIpv6Addr,
  parseMac,
  readU16,
  readU32,
  writeU16,
  writeU32,
} from './addr.ts';

describe('addr › big-endian helpers', () => {
  it('reads and writes network byte order', () => {
    const b = new Uint8Array(6);
    writeU16(b, 0, 0x1f90);
    writeU32(b, 2, 0xb5f72ac3);
    expect([...b]).toEqual([0x1f, 0x90, 0xb5, 0xf7, 0x2a, 0xc3]);
    expect(readU16(b, 0)).toBe(8080);
    expect(readU32(b, 2)).toBe(3052874435); // unsigned, not negative
  });

  it('round-trips any 32-bit value at any offset', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(4), (v, o) => {
        const b = new Uint8Array(8);
        writeU32(b, o, v);
        expect(readU32(b, o)).toBe(v);
      }),
    );
  });

  it('compares byte ranges', () => {
    expect(bytesEqual(Uint8Array.of(1, 2, 3), 1, Uint8Array.of(9, 2, 3), 1, 2)).toBe(true);
    expect(bytesEqual(Uint8Array.of(1, 2, 3), 0, Uint8Array.of(9, 2, 3), 0, 2)).toBe(false);
  });
});

describe('addr › IPv4', () => {
  it('formats and parses dotted quads', () => {
    expect(ipv4ToString(0x0a00020f)).toBe('10.0.2.15');
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
    expect(parseIpv4Addr('10.0.2.15')).toBe(0x0a00020f);
    expect(parseIpv4Addr('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4Addr('0.0.0.0')).toBe(0);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1..3.4', '1.2.3.4.', ' 1.2.3.4', '1.2.3.-4', '0x1.2.3.4', '1.2.3.1000'])(
    'rejects %j',
    (s) => {
      expect(parseIpv4Addr(s)).toBeNull();
    },
  );

  it('round-trips every address through text', () => {
    fc.assert(fc.property(fc.nat(0xffffffff), (n) => {
      expect(parseIpv4Addr(ipv4ToString(n))).toBe(n);
    }));
  });

  it('never throws on arbitrary strings', () => {
    fc.assert(fc.property(fc.string(), (s) => void parseIpv4Addr(s)));
  });

  it('tests subnet membership with any prefix length', () => {
    expect(ipv4PrefixMask(24)).toBe(0xffffff00);
    expect(ipv4PrefixMask(0)).toBe(0);
    expect(ipv4PrefixMask(32)).toBe(0xffffffff);
    expect(ipv4InSubnet(0x0a00020f, 0x0a000200, 24)).toBe(true);
    expect(ipv4InSubnet(0x0a00030f, 0x0a000200, 24)).toBe(false);
    expect(ipv4InSubnet(0xc0a80001, 0, 0)).toBe(true);
    expect(ipv4InSubnet(0xc0a80001, 0xc0a80001, 32)).toBe(true);
    expect(ipv4InSubnet(0xc0a80002, 0xc0a80001, 32)).toBe(false);
    expect(ipv4InSubnet(0x80000001, 0x80000000, 1)).toBe(true);
  });
});

describe('addr › IPv6', () => {
  const cases: Array<[string, string]> = [
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952 §4.2.3: first of equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: a lone zero is not compressed
    ['2001:DB8::AAAA', '2001:db8::aaaa'], // §4.3: lower case
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // longest run wins
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:d846:34ff:fe9a:1113', 'fe80::d846:34ff:fe9a:1113'],
    ['::ffff:10.0.2.15', '::ffff:10.0.2.15'], // §5: IPv4-mapped keeps the dotted tail
    ['::ffff:a00:20f', '::ffff:10.0.2.15'],
    ['fd00::', 'fd00::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  it.each(cases)('parses %s and prints it as %s (RFC 5952)', (input, canon) => {
    const a = parseIpv6Addr(input);
    expect(a).not.toBeNull();
    expect(ipv6ToString(a!)).toBe(canon);
    expect(ipv6Equal(parseIpv6Addr(canon)!, a!)).toBe(true);
  });

  it('parses to the exact bytes', () => {
    expect([...parseIpv6Addr('fd00::15')!]).toEqual([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x15]);
    expect([...parseIpv6Addr('::ffff:1.2.3.4')!.subarray(10)]).toEqual([0xff, 0xff, 1, 2, 3, 4]);
  });

  it.each([':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::1', '12345::', ':1::', '1:', '1::2:', '::1.2.3',
    '::1.2.3.4:5', '1.2.3.4::', '::%eth0', '[::1]', '', ':', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:1.2.3.4'])(
    'rejects %j',
    (s) => {
      expect(parseIpv6Addr(s)).toBeNull();
    },
  );

  // WHATWG URL serialises IPv6 hosts by the same compression rule (longest run >= 2, first on tie),
  // which makes it an independent oracle for everything but the IPv4-mapped form.
  it('prints like the WHATWG URL serialiser and round-trips', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.nat(0xffff));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
        const b = new Uint8Array(16);
        g.forEach((x, i) => writeU16(b, 2 * i, x));
        const s = ipv6ToString(b);
        expect([...parseIpv6Addr(s)!]).toEqual([...b]);
        const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
        if (!mapped) expect(s).toBe(new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary strings', () => {
    const alpha = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%g'.split('')), maxLength: 50 });
    fc.assert(fc.property(fc.oneof(fc.string(), alpha), (s) => void parseIpv6Addr(s)));
  });
});

describe('addr › MAC', () => {
  it('formats and parses colon or dash notation', () => {
    const m = Uint8Array.of(0xda, 0x46, 0x34, 0x9a, 0x11, 0x13);
    expect(macToString(m)).toBe('da:46:34:9a:11:13');
    expect(macEqual(parseMac('da:46:34:9a:11:13')!, m)).toBe(true);
    expect(macEqual(parseMac('DA-46-34-9A-11-13')!, m)).toBe(true);
    expect(macToString(Uint8Array.of(0, 1, 2, 3, 4, 5, 6), 1)).toBe('01:02:03:04:05:06');
  });

  it.each(['', 'da:46:34:9a:11', 'da:46:34:9a:11:13:00', 'da:46-34:9a:11:13', 'da:46:34:9a:11:1g', 'da.46.34.9a.11.13', 'da:46:34:9a:1:113'])(
    'rejects %j',
    (s) => {
      expect(parseMac(s)).toBeNull();
    },
  );

  it('round-trips any MAC', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (m) => {
        expect([...parseMac(macToString(m))!]).toEqual([...m]);
      }),
    );
    fc.assert(fc.property(fc.string({ maxLength: 20 }), (s) => void parseMac(s)));
  });
});
