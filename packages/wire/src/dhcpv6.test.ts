import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DHCPV6_DUID_EPOCH,
  Dhcpv6MsgType,
  Dhcpv6OptionCursor,
  Dhcpv6StatusCode,
  Dhcpv6View,
  dhcpv6DuidLl,
  dhcpv6DuidLlt,
  dhcpv6Len,
  emitDhcpv6,
  encodeDhcpv6Duid,
  parseDhcpv6,
  parseDhcpv6Duid,
} from './dhcpv6.ts';
import type { Dhcpv6Duid, Dhcpv6Options, Dhcpv6Repr } from './dhcpv6.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));

// An ADVERTISE from ISC dhcpd ("Greetings from planet Earth" is its status text), as kept in
// systemd's DHCPv6 client tests: client id (DUID-LLT), IA_NA with one address and a status
// code, DNS servers (23), domain list (24), SNTP servers (31, not typed here), server id,
// preference 0.
const ADVERTISE = hex(
  '02 0fb4e5' +
    '0001 000e 00010001 1a6bf330 3c970ecfa37d' +
    '0003 005e 0ecfa37d 00000050 00000078' +
    '  0005 0018 20010db8deadbeef78ee1cf3093c55ad 00000096 000000b4' +
    '  000d 0032 0000 41646472657373286573292072656e657765642e204772656574696e67732066726f6d20706c616e6574204561727468' +
    '0017 0010 20010db8deadbeef0000000000000001' +
    '0018 000b 036c616205696e74726100' +
    '001f 0010 20010db8deadbeef0000000000000001' +
    '0002 000e 00010001 19405c53 782bcbb36d53' +
    '0007 0001 00',
);

function view(b: Uint8Array): Dhcpv6View {
  const v = new Dhcpv6View();
  expect(v.reset(b, 0, b.length)).toBe(true);
  return v;
}
function emit(r: Dhcpv6Repr): Uint8Array {
  const buf = new Uint8Array(dhcpv6Len(r) + 4).fill(0xee);
  const n = emitDhcpv6(r, buf, 0);
  expect(n).toBe(dhcpv6Len(r));
  return buf.slice(0, n);
}

describe('dhcpv6 real messages', () => {
  it('parses an ISC dhcpd ADVERTISE into typed options', () => {
    expect(ADVERTISE.length).toBe(198);
    const v = view(ADVERTISE);
    expect([v.msgType, v.transactionId]).toEqual([Dhcpv6MsgType.ADVERTISE, 0x0fb4e5]);
    const r = parseDhcpv6(v)!;
    expect(r.options).toEqual({
      clientId: hex('000100011a6bf3303c970ecfa37d'),
      iaNa: [
        {
          iaid: 0x0ecfa37d, t1: 80, t2: 120,
          addresses: [{ addr: hex('20010db8deadbeef78ee1cf3093c55ad'), preferredLifetime: 150, validLifetime: 180 }],
          status: { code: Dhcpv6StatusCode.SUCCESS, message: 'Address(es) renewed. Greetings from planet Earth' },
        },
      ],
      dnsServers: [hex('20010db8deadbeef0000000000000001')],
      domainList: ['lab.intra'],
      raw: [{ code: 31, data: hex('20010db8deadbeef0000000000000001') }],
      serverId: hex('0001000119405c53782bcbb36d53'),
      preference: 0,
      order: [1, 3, 23, 24, 31, 2, 7],
    });
  });

  it('emits the ADVERTISE back to the same bytes', () => {
    expect(emit(parseDhcpv6(view(ADVERTISE))!)).toEqual(ADVERTISE);
  });

  it('types the DUID-LLTs of both ends', () => {
    const r = parseDhcpv6(view(ADVERTISE))!;
    expect(parseDhcpv6Duid(r.options.clientId!)).toEqual({ type: 'llt', hwType: 1, time: 0x1a6bf330, linkAddr: hex('3c970ecfa37d') });
    expect(parseDhcpv6Duid(r.options.serverId!)).toEqual({ type: 'llt', hwType: 1, time: 0x19405c53, linkAddr: hex('782bcbb36d53') });
  });
});

describe('dhcpv6 stateless server reply', () => {
  it('builds a REPLY to an INFORMATION-REQUEST with DNS, search list and refresh time', () => {
    const req: Dhcpv6Repr = {
      msgType: Dhcpv6MsgType.INFORMATION_REQUEST,
      transactionId: 0xabcdef,
      options: { clientId: dhcpv6DuidLl(hex('525400123456')), elapsedTime: 0, oro: [23, 24, 32] },
    };
    const reqBytes = emit(req);
    expect(reqBytes).toEqual(hex('0b abcdef 0001 000a 0003 0001 525400123456 0006 0006 0017 0018 0020 0008 0002 0000'));
    const got = parseDhcpv6(view(reqBytes))!;
    const reply: Dhcpv6Repr = {
      msgType: Dhcpv6MsgType.REPLY,
      transactionId: got.transactionId,
      options: {
        serverId: dhcpv6DuidLlt(hex('525400123502'), DHCPV6_DUID_EPOCH + 0x100),
        clientId: got.options.clientId!,
        dnsServers: [hex('fd000000000000000000000000000003')],
        domainList: ['example.org', 'corp.example.org'],
        informationRefreshTime: 86400,
      },
    };
    expect(emit(reply)).toEqual(
      hex(
        '07 abcdef 0001 000a 00030001525400123456 0002 000e 00010001 00000100 525400123502' +
          '0017 0010 fd000000000000000000000000000003 0018 001f 076578616d706c65036f726700 04636f7270076578616d706c65036f726700' +
          '0020 0004 00015180',
      ),
    );
  });

  it('writes rapid commit as an empty option and status codes with UTF-8 text', () => {
    const r: Dhcpv6Repr = {
      msgType: Dhcpv6MsgType.REPLY,
      transactionId: 1,
      options: { rapidCommit: true, status: { code: Dhcpv6StatusCode.NO_ADDRS_AVAIL, message: 'plus d’adresses' } },
    };
    const b = emit(r);
    expect(b.slice(4, 8)).toEqual(hex('000d 0013'));
    expect(b.slice(b.length - 4)).toEqual(hex('000e 0000'));
    expect(parseDhcpv6(view(b))).toEqual({ ...r, options: { ...r.options, order: [13, 14] } });
  });
});

describe('dhcpv6 malformed input', () => {
  it('returns null when an option runs past the end', () => {
    const bad = ADVERTISE.slice(0, ADVERTISE.length - 1);
    expect(parseDhcpv6(view(bad))).toBeNull();
    const c = new Dhcpv6OptionCursor().reset(bad, 4, bad.length - 4);
    let n = 0;
    while (c.next()) n++;
    expect([n, c.malformed]).toEqual([6, true]); // the seventh (preference) is cut short
  });

  it('returns null when an IA address overruns its IA_NA', () => {
    const bad = ADVERTISE.slice();
    bad[40] = 0x00;
    bad[41] = 0x60; // IAADDR claims 96 octets inside a 94-octet IA_NA
    expect(parseDhcpv6(view(bad))).toBeNull();
  });

  it('returns null for typed options with impossible lengths', () => {
    expect(parseDhcpv6(view(hex('01 000001 0008 0001 00')))).toBeNull(); // elapsed time of 1 octet
    expect(parseDhcpv6(view(hex('01 000001 0006 0003 000102')))).toBeNull(); // odd ORO
    expect(parseDhcpv6(view(hex('01 000001 000e 0001 00')))).toBeNull(); // rapid commit with data
    expect(parseDhcpv6(view(hex('07 000001 0017 0004 00000000')))).toBeNull(); // short DNS address
    expect(parseDhcpv6(view(hex('07 000001 0018 0004 0161 c000')))).toBeNull(); // compressed name
  });

  it('leaves relay messages to a relay parser and rejects short messages', () => {
    expect(parseDhcpv6(view(hex('0c 00 fe800000000000000000000000000001 fe800000000000000000000000000002')))).toBeNull();
    const v = new Dhcpv6View();
    expect(v.reset(hex('0b0000'), 0, 3)).toBe(false);
  });
});

describe('dhcpv6 DUIDs', () => {
  it('encodes DUID-LL and DUID-LLT as RFC 8415 §11 lays them out', () => {
    expect(dhcpv6DuidLl(hex('525400123456'))).toEqual(hex('0003 0001 525400123456'));
    expect(dhcpv6DuidLlt(hex('525400123456'), DHCPV6_DUID_EPOCH + 1)).toEqual(hex('0001 0001 00000001 525400123456'));
  });

  it('round-trips every DUID type and rejects truncated ones', () => {
    const ds: Dhcpv6Duid[] = [
      { type: 'en', enterprise: 9, id: hex('0102') },
      { type: 'uuid', uuid: new Uint8Array(16).fill(7) },
      { type: 'unknown', duidType: 99, data: hex('ff') },
    ];
    for (const d of ds) expect(parseDhcpv6Duid(encodeDhcpv6Duid(d))).toEqual(d);
    expect(parseDhcpv6Duid(hex('0001 0001 0000'))).toBeNull();
    expect(parseDhcpv6Duid(hex('00'))).toBeNull();
  });
});

const addr16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.nat({ max: 0xffffffff });
const status = fc.record({ code: fc.nat({ max: 0xffff }), message: fc.string({ maxLength: 20 }).map((s) => s.replace(/[\ud800-\udfff]/g, '?')) });
const optionsArb: fc.Arbitrary<Dhcpv6Options> = fc.record(
  {
    clientId: fc.uint8Array({ minLength: 2, maxLength: 30 }),
    serverId: fc.uint8Array({ minLength: 2, maxLength: 30 }),
    iaNa: fc.array(
      fc.record(
        {
          iaid: u32, t1: u32, t2: u32,
          addresses: fc.array(fc.record({ addr: addr16, preferredLifetime: u32, validLifetime: u32, status }, { requiredKeys: ['addr', 'preferredLifetime', 'validLifetime'] }), { maxLength: 2 }),
          status,
        },
        { requiredKeys: ['iaid', 't1', 't2', 'addresses'] },
      ),
      { minLength: 1, maxLength: 2 },
    ),
    oro: fc.array(fc.nat({ max: 0xffff }), { maxLength: 5 }),
    preference: fc.nat({ max: 255 }),
    elapsedTime: fc.nat({ max: 0xffff }),
    status,
    rapidCommit: fc.constant(true),
    dnsServers: fc.array(addr16, { maxLength: 3 }),
    domainList: fc.array(fc.stringMatching(/^[a-z]{1,8}(\.[a-z]{1,8}){0,2}$/), { maxLength: 3 }),
    informationRefreshTime: u32,
    raw: fc.array(fc.record({ code: fc.integer({ min: 100, max: 200 }), data: fc.uint8Array({ maxLength: 10 }) }), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: [] },
);
const reprArb: fc.Arbitrary<Dhcpv6Repr> = fc.record({
  msgType: fc.integer({ min: 1, max: 11 }),
  transactionId: fc.nat({ max: 0xffffff }),
  options: optionsArb,
});

describe('dhcpv6 properties', () => {
  it('never throws on arbitrary bytes', () => {
    const v = new Dhcpv6View();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        if (v.reset(b, 0, b.length)) parseDhcpv6(v);
        parseDhcpv6Duid(b);
      }),
      { numRuns: 3000 },
    );
    // Option-shaped input gets deeper into the typed decoders.
    const opt = fc.tuple(fc.constantFrom(1, 2, 3, 5, 6, 7, 8, 13, 14, 23, 24, 32, 99), fc.uint8Array({ maxLength: 40 }), fc.nat({ max: 3 }));
    fc.assert(
      fc.property(fc.array(opt, { maxLength: 5 }), (opts) => {
        const parts: number[] = [1, 0, 0, 1];
        for (const [code, data, skew] of opts) parts.push(0, code, (data.length + skew) >> 8, (data.length + skew) & 0xff, ...data);
        const b = Uint8Array.from(parts);
        v.reset(b, 0, b.length);
        parseDhcpv6(v);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips parse(emit(x)) up to the recorded option order', () => {
    fc.assert(
      fc.property(reprArb, (r) => {
        const b = emit(r);
        const p = parseDhcpv6(view(b))!;
        expect(p).not.toBeNull();
        const { order, ...rest } = p.options;
        const want = { ...r.options };
        if (want.raw !== undefined) want.raw = [...want.raw].sort((a, b2) => a.code - b2.code);
        expect(rest).toEqual(want);
        expect(emit(p)).toEqual(b);
        void order;
      }),
      { numRuns: 500 },
    );
  });
});
