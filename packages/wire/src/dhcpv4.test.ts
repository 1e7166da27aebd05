import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DHCPV4_FLAG_BROADCAST,
  DHCPV4_MIN_LEN,
  Dhcpv4MessageType,
  Dhcpv4OptionCursor,
  Dhcpv4View,
  dhcpv4Len,
  emitDhcpv4,
  parseDhcpv4,
} from './dhcpv4.ts';
import type { Dhcpv4Options, Dhcpv4Repr } from './dhcpv4.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));

/** op..chaddr (44 octets, chaddr zero-padded), zero sname/file, cookie, options, zero padding to `total`. */
function bootp(head: string, options: string, total: number, sname = '', file = ''): Uint8Array {
  const h = hex(head);
  const o = hex(options);
  const out = new Uint8Array(Math.max(total, 240 + o.length));
  out.set(h);
  out.set(hex(sname), 44);
  out.set(hex(file), 108);
  out.set(hex('63825363'), 236);
  out.set(o, 240);
  return out;
}

// Real captures (Wireshark's dhcp.pcap, also smoltcp's vectors).
// DISCOVER from 00:0b:82:01:fc:42: 53=DISCOVER, 61 client id, 50 requested 0.0.0.0, 57 max size
// 1500, 55 PRL [1,3,6,42]; 276 octets on the wire.
const DISCOVER = bootp(
  '01 01 06 00 00003d1d 0000 0000 00000000 00000000 00000000 00000000 000b8201fc42',
  '350101 3d0701000b8201fc42 320400000000 390205dc 370401030 62a ff',
  276,
);
// ACK with lease time: 53=ACK, 54, 51=598, 1=/24, 3 router; padded to 300.
const ACK_LEASE = bootp(
  '02 01 06 00 00000006 0000 0000 00000000 0a22100b 0a22100a 00000000 049162d2a86f',
  '350105 36040a22100a 330400000256 0104ffffff00 03040a22100a ff',
  300,
);
// ACK with broadcast flag, vendor option 43, domain name with a trailing NUL, 4 DNS servers,
// NetBIOS options 44/46; 331 octets, no padding.
const ACK_DNS = bootp(
  '02 01 06 00 cc3475ab 0000 8000 0aff0691 00000000 00000000 0aff06fe 3417ebc9aa2f',
  '350105 3604a3014a16 0104ffffff00 2b05dc034e4150 0f156e61742e706879736963732e6f782e61632e756b00 03040aff06fe' +
    '0610a3014a06a3014a07a3014a03a3014a04 2c10a3014a03a3014a04a3014a06a3014a07 2e0108 ff',
  0,
);

function view(b: Uint8Array): Dhcpv4View {
  const v = new Dhcpv4View();
  expect(v.reset(b, 0, b.length)).toBe(true);
  return v;
}
function parse(b: Uint8Array): Dhcpv4Repr | null {
  return parseDhcpv4(view(b));
}
function emit(r: Dhcpv4Repr): Uint8Array {
  const buf = new Uint8Array(dhcpv4Len(r) + 16).fill(0xee);
  const n = emitDhcpv4(r, buf, 0);
  expect(n).toBe(dhcpv4Len(r));
  return buf.slice(0, n);
}

describe('dhcpv4 real messages', () => {
  it('parses a DISCOVER to its header fields and typed options', () => {
    const v = view(DISCOVER);
    expect([v.op, v.htype, v.hlen, v.xid, v.broadcast]).toEqual([1, 1, 6, 0x3d1d, false]);
    expect(parse(DISCOVER)).toEqual({
      op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x3d1d, secs: 0, flags: 0,
      ciaddr: 0, yiaddr: 0, siaddr: 0, giaddr: 0,
      chaddr: hex('000b8201fc42'), sname: '', file: '',
      options: {
        messageType: Dhcpv4MessageType.DISCOVER,
        clientId: hex('01000b8201fc42'),
        requestedIp: 0,
        maxMessageSize: 1500,
        paramRequestList: [1, 3, 6, 42],
        order: [53, 61, 50, 57, 55],
      },
    });
  });

  it('emits the DISCOVER back to the captured bytes, padded to the 300-octet minimum', () => {
    const out = emit(parse(DISCOVER)!);
    expect(out.length).toBe(DHCPV4_MIN_LEN);
    expect(out.slice(0, DISCOVER.length)).toEqual(DISCOVER);
    expect(out.slice(DISCOVER.length).every((b) => b === 0)).toBe(true);
  });

  it('round-trips a server ACK byte for byte', () => {
    const r = parse(ACK_LEASE)!;
    expect(r.options).toEqual({
      messageType: Dhcpv4MessageType.ACK, serverId: 0x0a22100a, leaseTime: 598, subnetMask: 0xffffff00, routers: [0x0a22100a],
      order: [53, 54, 51, 1, 3],
    });
    expect(r.yiaddr).toBe(0x0a22100b);
    expect(emit(r)).toEqual(ACK_LEASE);
  });

  it('parses an ACK with the broadcast flag, raw vendor options and a NUL-terminated domain', () => {
    const r = parse(ACK_DNS)!;
    expect(r.flags).toBe(DHCPV4_FLAG_BROADCAST);
    expect(r.options.domainName).toBe('nat.physics.ox.ac.uk');
    expect(r.options.dnsServers).toEqual([0xa3014a06, 0xa3014a07, 0xa3014a03, 0xa3014a04]);
    expect(r.options.raw).toEqual(new Map([[43, hex('dc034e4150')], [44, hex('a3014a03a3014a04a3014a06a3014a07')], [46, hex('08')]]));
    // Re-emitted without the stray NUL (RFC 2132 §2), everything else in place.
    const out = emit(r);
    expect(out.length).toBe(ACK_DNS.length - 1);
    expect(parse(out)).toEqual(r);
  });
});

describe('dhcpv4 option encodings', () => {
  const base: Dhcpv4Repr = {
    op: 2, htype: 1, hlen: 6, hops: 0, xid: 0x12345678, secs: 0, flags: 0,
    ciaddr: 0, yiaddr: 0x0a00020f, siaddr: 0x0a000202, giaddr: 0,
    chaddr: hex('525400123456'), sname: '', file: '', options: {},
  };
  const optionsBytes = (options: Dhcpv4Options): Uint8Array => {
    const out = emit({ ...base, options });
    let end = 240;
    const c = new Dhcpv4OptionCursor().reset(out, 240, out.length - 240);
    while (c.next()) end = c.pos;
    return out.slice(240, end);
  };

  it('writes the options a server sends, message type first then by code', () => {
    const o: Dhcpv4Options = {
      leaseTime: 86400, serverId: 0x0a000202, messageType: Dhcpv4MessageType.OFFER, subnetMask: 0xffffff00,
      routers: [0x0a000202], dnsServers: [0x0a000203], hostname: 'guest', domainName: 'example.org', interfaceMtu: 1500,
      broadcastAddr: 0x0a0002ff, renewalTime: 43200, rebindingTime: 75600, tftpServerName: '10.0.2.2', bootfileName: 'pxelinux.0',
    };
    expect(optionsBytes(o)).toEqual(
      hex(
        '350102 0104ffffff00 03040a000202 06040a000203 0c056775657374 0f0b6578616d706c652e6f7267 1a0205dc 1c040a0002ff' +
          '330400015180 36040a000202 3a040000a8c0 3b0400012750 42083130 2e302e32 2e32 430a7078656c696e75782e30',
      ),
    );
  });

  it('encodes RFC 3442’s classless route examples', () => {
    const routes = [
      { dest: 0, prefixLen: 0, router: 0x0a000001 },
      { dest: 0x0a000000, prefixLen: 8, router: 0x0a000001 },
      { dest: 0x0a000000, prefixLen: 24, router: 0x0a000001 },
      { dest: 0x0a110000, prefixLen: 16, router: 0x0a000001 },
      { dest: 0x0a1b8100, prefixLen: 24, router: 0x0a000001 },
      { dest: 0x0ae50080, prefixLen: 25, router: 0x0a000001 },
      { dest: 0x0ac67a2f, prefixLen: 32, router: 0x0a000001 },
    ];
    const b = optionsBytes({ classlessRoutes: routes });
    const gw = '0a000001';
    expect(b).toEqual(hex(`79 34 00${gw} 080a${gw} 180a0000${gw} 100a11${gw} 180a1b81${gw} 190ae50080${gw} 200ac67a2f${gw}`));
    const parsed = parse(emit({ ...base, options: { classlessRoutes: routes } }))!;
    expect(parsed.options.classlessRoutes).toEqual(routes);
  });

  it('encodes a domain search list with compression (RFC 3397 §2 example)', () => {
    expect(optionsBytes({ domainSearch: ['eng.apple.com', 'marketing.apple.com'] })).toEqual(
      hex('77 1b 03656e67 056170706c65 03636f6d 00 096d61726b6574696e67 c004'),
    );
  });

  it('concatenates the split option instances of RFC 3397’s example (RFC 3396)', () => {
    const msg = bootp(
      '02 01 06 00 00000001 0000 0000 00000000 00000000 00000000 00000000 525400123456',
      '7709 03656e67056170706c 7709 6503636f6d00096d61 7709 726b6574696e67c004 ff',
      300,
    );
    expect(parse(msg)!.options.domainSearch).toEqual(['eng.apple.com', 'marketing.apple.com']);
  });

  it('splits values over 255 octets into consecutive instances and joins them back', () => {
    const clientId = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
    const out = emit({ ...base, options: { clientId } });
    const c = new Dhcpv4OptionCursor().reset(out, 240, out.length - 240);
    const lens: number[] = [];
    while (c.next()) lens.push(c.valueLen);
    expect(lens).toEqual([255, 255, 90]);
    expect(parse(out)!.options.clientId).toEqual(clientId);
  });

  it('keeps a typed option with an impossible length raw instead of failing', () => {
    const msg = bootp('01 01 06 00 00000001 0000 0000 00000000 00000000 00000000 00000000 525400123456', '0103ffffff 350103 ff', 300);
    const r = parse(msg)!;
    expect(r.options.subnetMask).toBeUndefined();
    expect(r.options.raw).toEqual(new Map([[1, hex('ffffff')]]));
    expect(r.options.messageType).toBe(3);
    expect(emit(r)).toEqual(msg);
  });
});

describe('dhcpv4 option overload and malformed input', () => {
  const head = '01 01 06 00 0000abcd 0003 8000 00000000 00000000 00000000 00000000 525400abcdef';

  it('reads options overloaded into file and sname, in that order after the options field', () => {
    // options: 53=REQUEST, 52=3, first half of a hostname; file: its second half + PRL;
    // sname: 50 requested address.
    const msg = bootp(head, '350103 340103 0c03 677565 ff', 300, '3204 0a00020f ff', '0c02 7374 37020103 ff');
    const r = parse(msg)!;
    expect(r.sname).toBe('');
    expect(r.file).toBe('');
    expect(r.options).toMatchObject({ messageType: 3, hostname: 'guest', paramRequestList: [1, 3], requestedIp: 0x0a00020f });
    expect(r.options.order).toEqual([53, 12, 55, 50]);
    expect(r.flags).toBe(DHCPV4_FLAG_BROADCAST);
  });

  it('reads sname and file as strings when not overloaded', () => {
    const msg = bootp(head, '350101 ff', 300, '7466747000', '7078656c696e75782e3000');
    expect(parse(msg)).toMatchObject({ sname: 'tftp', file: 'pxelinux.0' });
  });

  it('returns null for an option running past the end of the packet', () => {
    const msg = bootp(head, '350101 0c10 6775657374', 0);
    expect(msg.length).toBe(240 + 10);
    expect(parseDhcpv4(view(msg))).toBeNull();
    // The same when the bad option sits in an overloaded field.
    const ov = bootp(head, '350101 340101 ff', 300, '', '0cff 6775');
    expect(parseDhcpv4(view(ov))).toBeNull();
  });

  it('accepts a message without an END option and ignores bytes after END', () => {
    expect(parse(bootp(head, '350101', 0))!.options.messageType).toBe(1);
    expect(parse(bootp(head, '350101 ff 0c99 zz'.replace('zz', '00'), 300))!.options.messageType).toBe(1);
  });

  it('rejects messages without the magic cookie or shorter than the header', () => {
    const v = new Dhcpv4View();
    const bad = DISCOVER.slice();
    bad[236] = 0;
    expect(v.reset(bad, 0, bad.length)).toBe(false);
    expect(v.reset(DISCOVER, 0, 239)).toBe(false);
    expect(v.reset(DISCOVER, 1, DISCOVER.length)).toBe(false);
  });
});

const u32 = fc.nat({ max: 0xffffffff });
const text = fc.string({ minLength: 1, maxLength: 40 }).map((s) => s.replace(/[^\x01-\xff]/g, 'x'));
const optionsArb: fc.Arbitrary<Dhcpv4Options> = fc.record(
  {
    messageType: fc.integer({ min: 1, max: 8 }),
    subnetMask: u32,
    routers: fc.array(u32, { minLength: 1, maxLength: 3 }),
    dnsServers: fc.array(u32, { minLength: 1, maxLength: 100 }),
    hostname: text,
    domainName: text,
    interfaceMtu: fc.nat({ max: 0xffff }),
    leaseTime: u32,
    serverId: u32,
    paramRequestList: fc.array(fc.nat({ max: 255 }), { maxLength: 300 }),
    clientId: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    bootfileName: text,
    domainSearch: fc.array(fc.array(fc.constantFrom('a', 'b', 'example', 'com', 'x-1'), { minLength: 1, maxLength: 3 }).map((l) => l.join('.')), { minLength: 1, maxLength: 40 }),
    classlessRoutes: fc.array(
      fc.tuple(fc.nat({ max: 32 }), u32, u32).map(([w, d, router]) => ({ prefixLen: w, dest: w === 0 ? 0 : (d & (~0 << (32 - Math.ceil(w / 8) * 8))) >>> 0, router })),
      { minLength: 1, maxLength: 5 },
    ),
    raw: fc.uint8Array({ maxLength: 300 }).map((d) => new Map([[224, d]])),
  },
  { requiredKeys: [] },
);
const reprArb: fc.Arbitrary<Dhcpv4Repr> = fc.record({
  op: fc.constantFrom(1, 2), htype: fc.constant(1), hlen: fc.constant(6), hops: fc.nat({ max: 255 }), xid: u32, secs: fc.nat({ max: 0xffff }),
  flags: fc.constantFrom(0, DHCPV4_FLAG_BROADCAST), ciaddr: u32, yiaddr: u32, siaddr: u32, giaddr: u32,
  chaddr: fc.uint8Array({ minLength: 6, maxLength: 6 }),
  sname: fc.stringMatching(/^[a-z0-9.]{0,63}$/), file: fc.stringMatching(/^[a-z0-9./]{0,127}$/),
  options: optionsArb,
});

describe('dhcpv4 properties', () => {
  it('never throws on arbitrary bytes after a valid header', () => {
    const v = new Dhcpv4View();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.uint8Array({ maxLength: 30 }), (opts, overload, field) => {
        const b = new Uint8Array(240 + opts.length);
        b.set(hex('63825363'), 236);
        b.set(opts, 240);
        if (overload) {
          b.set(field, 44);
          b.set(field, 108);
          if (opts.length >= 3) b.set([52, 1, 3], 240);
        }
        if (v.reset(b, 0, b.length)) parseDhcpv4(v);
      }),
      { numRuns: 3000 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => void (v.reset(b, 0, b.length) && parseDhcpv4(v))));
  });

  it('round-trips parse(emit(x)), up to the recorded option order', () => {
    fc.assert(
      fc.property(reprArb, (r) => {
        const out = emit(r);
        const p = parseDhcpv4(view(out))!;
        expect(p).not.toBeNull();
        const { order, ...rest } = p.options;
        expect({ ...p, options: rest }).toEqual(r);
        expect(emit(p)).toEqual(out);
        void order;
      }),
      { numRuns: 300 },
    );
  });
});
