import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DnsClass,
  DnsFlag,
  DnsRcode,
  DnsTcpReader,
  DnsType,
  DnsView,
  decodeDnsName,
  dnsNameWireLen,
  emitDns,
  emitDnsResponse,
  encodeDnsName,
  parseDns,
  readDnsQuery,
  readDnsTcpLength,
  writeDnsTcpLength,
} from './dns.ts';
import type { DnsRecord, DnsRepr } from './dns.ts';

const hex = (s: string): Uint8Array => Uint8Array.from((s.replace(/\s+/g, '').match(/../g) ?? []).map((b) => parseInt(b, 16)));

// Real resolver traffic (captured on the wire; also used by smoltcp's dns tests).
// Query for google.com A, RD and AD set.
const GOOGLE_QUERY = hex('5184 0120 0001 0000 0000 0000 06676f6f676c6503636f6d00 0001 0001');
// Its answer: one A record whose name is a pointer to the question (c00c).
const GOOGLE_RESPONSE = hex(
  '5184 8180 0001 0001 0000 0000 06676f6f676c6503636f6d00 0001 0001' + 'c00c 0001 0001 000000ca 0004 acd9a8ae',
);
// www.facebook.com A: a CNAME whose target ends in a pointer into the question (c010), and an
// A record whose owner is a pointer to the CNAME target (c02e).
const FACEBOOK_RESPONSE = hex(
  '786c 8180 0001 0002 0000 0000 03777777 0866616365626f6f6b 03636f6d 00 0001 0001' +
    'c00c 0005 0001 000005f3 0011 09737461722d6d696e69 0463313072 c010' +
    'c02e 0001 0001 00000005 0004 1f0d5324',
);

function parse(bytes: Uint8Array): DnsRepr | null {
  const v = new DnsView();
  if (!v.reset(bytes, 0, bytes.length)) return null;
  return parseDns(v);
}

function emit(r: DnsRepr, compress = true): Uint8Array {
  const buf = new Uint8Array(4096);
  const n = emitDns(r, buf, 0, { compress });
  expect(n).toBeGreaterThan(0);
  return buf.slice(0, n);
}

describe('dns header view', () => {
  it('reads id, flags and counts of a real response', () => {
    const v = new DnsView();
    expect(v.reset(FACEBOOK_RESPONSE, 0, FACEBOOK_RESPONSE.length)).toBe(true);
    expect(v.id).toBe(0x786c);
    expect(v.qr).toBe(true);
    expect(v.rd).toBe(true);
    expect(v.ra).toBe(true);
    expect(v.aa).toBe(false);
    expect(v.tc).toBe(false);
    expect(v.opcode).toBe(0);
    expect(v.rcode).toBe(0);
    expect([v.qdcount, v.ancount, v.nscount, v.arcount]).toEqual([1, 2, 0, 0]);
  });

  it('rejects a message shorter than the header', () => {
    const v = new DnsView();
    expect(v.reset(new Uint8Array(11), 0, 11)).toBe(false);
    expect(v.reset(new Uint8Array(12), 1, 12)).toBe(false);
  });

  it('rewrites the id in place (what a forwarder does)', () => {
    const b = GOOGLE_QUERY.slice();
    const v = new DnsView();
    v.reset(b, 0, b.length);
    v.id = 0xbeef;
    expect([b[0], b[1]]).toEqual([0xbe, 0xef]);
  });
});

describe('dns parse/emit of real messages', () => {
  it('parses a response with a CNAME chain through compression pointers', () => {
    const r = parse(FACEBOOK_RESPONSE)!;
    expect(r).not.toBeNull();
    expect(r.questions).toEqual([{ name: 'www.facebook.com', type: DnsType.A, class: DnsClass.IN }]);
    expect(r.answers).toEqual([
      { name: 'www.facebook.com', type: DnsType.CNAME, class: 1, ttl: 0x5f3, rdata: { kind: 'name', name: 'star-mini.c10r.facebook.com' } },
      { name: 'star-mini.c10r.facebook.com', type: DnsType.A, class: 1, ttl: 5, rdata: { kind: 'a', addr: 0x1f0d5324 } },
    ]);
  });

  it('emits the CNAME response back to the same bytes, pointers included', () => {
    expect(emit(parse(FACEBOOK_RESPONSE)!)).toEqual(FACEBOOK_RESPONSE);
  });

  it('parses and re-emits a real query and response', () => {
    const q = parse(GOOGLE_QUERY)!;
    expect(q.qr).toBe(false);
    expect(q.rd).toBe(true);
    expect(q.ad).toBe(true);
    expect(q.questions[0]!.name).toBe('google.com');
    expect(emit(q)).toEqual(GOOGLE_QUERY);
    const r = parse(GOOGLE_RESPONSE)!;
    expect(r.answers[0]!.rdata).toEqual({ kind: 'a', addr: 0xacd9a8ae });
    expect(emit(r)).toEqual(GOOGLE_RESPONSE);
  });

  it('emits without compression when asked, and that parses to the same repr', () => {
    const r = parse(FACEBOOK_RESPONSE)!;
    const flat = emit(r, false);
    expect(flat.length).toBeGreaterThan(FACEBOOK_RESPONSE.length);
    expect(flat.includes(0xc0)).toBe(false);
    expect(parse(flat)).toEqual(r);
  });

  it('types MX, TXT, SOA, NS, PTR and AAAA records and keeps others raw', () => {
    const rec = (type: number, rdata: DnsRecord['rdata']): DnsRecord => ({ name: 'example.org', type, class: 1, ttl: 300, rdata });
    const r: DnsRepr = {
      id: 7, qr: true, opcode: 0, aa: true, tc: false, rd: false, ra: false, ad: false, cd: false, rcode: 0,
      questions: [{ name: 'example.org', type: DnsType.ANY, class: 1 }],
      answers: [
        rec(DnsType.MX, { kind: 'mx', preference: 10, exchange: 'mail.example.org' }),
        rec(DnsType.TXT, { kind: 'txt', strings: ['v=spf1 -all', ''] }),
        rec(DnsType.AAAA, { kind: 'aaaa', addr: hex('20010db8000000000000000000000001') }),
        rec(DnsType.NS, { kind: 'name', name: 'ns1.example.org' }),
        rec(DnsType.PTR, { kind: 'name', name: 'host.example.org' }),
        rec(DnsType.SRV, { kind: 'raw', data: hex('000a0005 0050 00') }),
      ],
      authorities: [
        rec(DnsType.SOA, {
          kind: 'soa', mname: 'ns1.example.org', rname: 'hostmaster.example.org',
          serial: 2024010101, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300,
        }),
      ],
      additionals: [{ name: '', type: DnsType.OPT, class: 1232, ttl: 0, rdata: { kind: 'raw', data: new Uint8Array(0) } }],
    };
    const bytes = emit(r);
    expect(parse(bytes)).toEqual(r);
  });
});

describe('dns names', () => {
  it('decodes escapes for dots, backslashes and non-printable octets, and encodes them back', () => {
    const wire = hex('03 612e62 02 5c00 03 20ff41 00');
    const d = decodeDnsName(wire, 0, 0, wire.length)!;
    expect(d.name).toBe('a\\.b.\\\\\\000.\\032\\255A');
    expect(d.next).toBe(wire.length);
    const out = new Uint8Array(64);
    expect(encodeDnsName(d.name, out, 0)).toBe(wire.length);
    expect(out.slice(0, wire.length)).toEqual(wire);
  });

  it('treats the root as the empty name and accepts a trailing dot', () => {
    expect(decodeDnsName(hex('00'), 0, 0, 1)).toEqual({ name: '', next: 1 });
    expect(dnsNameWireLen('')).toBe(1);
    expect(dnsNameWireLen('.')).toBe(1);
    expect(dnsNameWireLen('example.com.')).toBe(13);
    expect(dnsNameWireLen('example..com')).toBe(-1);
    expect(dnsNameWireLen('.com')).toBe(-1);
  });

  it('refuses labels over 63 octets and names over 255 octets', () => {
    expect(dnsNameWireLen('a'.repeat(63))).toBe(65);
    expect(dnsNameWireLen('a'.repeat(64))).toBe(-1);
    const name253 = Array.from({ length: 4 }, () => 'a'.repeat(62)).join('.'); // 4*63 + 1 = 253
    expect(dnsNameWireLen(name253)).toBe(253);
    expect(dnsNameWireLen(name253 + '.b')).toBe(255);
    expect(dnsNameWireLen(name253 + '.bc')).toBe(-1);
    // Same limit on the decoding side: 4 labels of 63 plus one of 2 = 257 octets.
    const wire = new Uint8Array(257);
    let p = 0;
    for (let k = 0; k < 4; k++) { wire[p++] = 63; p += 63; }
    wire[p++] = 2; p += 2; wire[p] = 0;
    expect(decodeDnsName(wire, 0, 0, wire.length)).toBeNull();
  });

  it('rejects a pointer to itself, a forward pointer and a pointer loop', () => {
    const header = '0001 0100 0001 0000 0000 0000';
    // Pointer at 12 to 12.
    expect(parse(hex(header + 'c00c 0001 0001'))).toBeNull();
    // Forward pointer (12 -> 18).
    expect(parse(hex(header + 'c012 0001 0001 0161 00'))).toBeNull();
    // "a" then a pointer back to the start of the same name: a.a.a.a... if followed.
    expect(parse(hex(header + '0161 c00c 0001 0001'))).toBeNull();
    // Two names pointing at each other: the second is fine only if its target is lower.
    const m = hex(header.replace('0001 0000 0000 0000', '0002 0000 0000 0000') + '0162 c012 0001 0001 c00c 0001 0001');
    expect(readDnsQuery(m, 0, m.length)).toBeNull();
    expect(parse(m)).toBeNull();
  });

  it('rejects a pointer into the header only when it is not below the name', () => {
    // A pointer from the question to offset 0 reads header bytes as labels: here 00 => root.
    const m = hex('0001 0000 0001 0000 0000 0000 c002 0001 0001');
    expect(readDnsQuery(m, 0, m.length)!.name).toBe('');
  });

  it('rejects extended label types and names running off the end', () => {
    expect(decodeDnsName(hex('4100'), 0, 0, 2)).toBeNull();
    expect(decodeDnsName(hex('8100'), 0, 0, 2)).toBeNull();
    expect(decodeDnsName(hex('0361 62'), 0, 0, 3)).toBeNull();
    expect(decodeDnsName(hex('03616263'), 0, 0, 4)).toBeNull();
    expect(decodeDnsName(hex('c0'), 0, 0, 1)).toBeNull();
  });

  it('disallows pointers where the caller says so', () => {
    const wire = hex('0161 00 0162 c000');
    expect(decodeDnsName(wire, 0, 3, wire.length)!.name).toBe('b.a');
    expect(decodeDnsName(wire, 0, 3, wire.length, false)).toBeNull();
  });

  it('compresses case-insensitively but keeps each name’s case', () => {
    const buf = new Uint8Array(64);
    const map = new Map<string, number>();
    let p = encodeDnsName('WWW.Example.COM', buf, 0, 0, map);
    expect(p).toBe(17);
    p = encodeDnsName('mail.example.com', buf, p, 0, map);
    expect(buf.slice(17, p)).toEqual(hex('046d61696c c004'));
    expect(decodeDnsName(buf, 0, 17, p)!.name).toBe('mail.Example.COM');
  });
});

describe('dns responses to queries', () => {
  it('reads the id and question of a query cheaply', () => {
    const q = readDnsQuery(GOOGLE_QUERY, 0, GOOGLE_QUERY.length)!;
    expect(q).toMatchObject({ id: 0x5184, opcode: 0, qdcount: 1, name: 'google.com', type: 1, class: 1 });
    expect(q.questionEnd).toBe(GOOGLE_QUERY.length);
    expect(readDnsQuery(GOOGLE_QUERY, 0, GOOGLE_QUERY.length - 1)).toBeNull();
  });

  it('answers a real query with the same bytes the real resolver sent', () => {
    const out = new Uint8Array(512);
    const a: DnsRecord = { name: 'google.com', type: 1, class: 1, ttl: 0xca, rdata: { kind: 'a', addr: 0xacd9a8ae } };
    const n = emitDnsResponse(GOOGLE_QUERY, 0, GOOGLE_QUERY.length, DnsRcode.NOERROR, [a], out, 0);
    expect(out.slice(0, n)).toEqual(GOOGLE_RESPONSE);
  });

  it('answers NXDOMAIN, SERVFAIL and REFUSED with the question echoed and no records', () => {
    const out = new Uint8Array(512);
    for (const rc of [DnsRcode.NXDOMAIN, DnsRcode.SERVFAIL, DnsRcode.REFUSED]) {
      const n = emitDnsResponse(GOOGLE_QUERY, 0, GOOGLE_QUERY.length, rc, [], out, 0);
      expect(n).toBe(GOOGLE_QUERY.length);
      const r = parse(out.slice(0, n))!;
      expect(r).toMatchObject({ id: 0x5184, qr: true, rd: true, ra: true, rcode: rc, answers: [] });
      expect(r.questions).toEqual([{ name: 'google.com', type: 1, class: 1 }]);
    }
  });

  it('echoes mixed-case questions exactly (0x20 randomisation) and points answers at them', () => {
    const q = hex('abcd 0100 0001 0000 0000 0000 06476f4f674c6503436f4d00 001c 0001');
    const out = new Uint8Array(512);
    const aaaa: DnsRecord = { name: 'google.com', type: 28, class: 1, ttl: 60, rdata: { kind: 'aaaa', addr: hex('2a0014504001081a000000000000200e') } };
    const n = emitDnsResponse(q, 0, q.length, 0, [aaaa], out, 0);
    expect(out.slice(12, q.length)).toEqual(q.slice(12));
    expect(out.slice(q.length, q.length + 2)).toEqual(hex('c00c'));
    expect(parse(out.slice(0, n))!.answers[0]!.rdata).toEqual(aaaa.rdata);
  });

  it('sets TC and drops all answers when they do not fit in 512 bytes', () => {
    const out = new Uint8Array(2048);
    const many: DnsRecord[] = Array.from({ length: 40 }, (_, i) => ({ name: 'google.com', type: 1, class: 1, ttl: 1, rdata: { kind: 'a', addr: i } }));
    const n = emitDnsResponse(GOOGLE_QUERY, 0, GOOGLE_QUERY.length, 0, many, out, 0);
    const r = parse(out.slice(0, n))!;
    expect(r.tc).toBe(true);
    expect(r.answers).toEqual([]);
    const big = emitDnsResponse(GOOGLE_QUERY, 0, GOOGLE_QUERY.length, 0, many, out, 0, { maxLen: 2048 });
    expect(parse(out.slice(0, big))!.answers.length).toBe(40);
  });

  it('answers FORMERR to a query whose question is unreadable', () => {
    const bad = hex('1234 0100 0001 0000 0000 0000 c00c 0001 0001');
    const out = new Uint8Array(512);
    const n = emitDnsResponse(bad, 0, bad.length, 0, [], out, 0);
    expect(n).toBe(12);
    const v = new DnsView();
    v.reset(out, 0, n);
    expect([v.id, v.qr, v.rcode, v.qdcount]).toEqual([0x1234, true, DnsRcode.FORMERR, 0]);
    expect(emitDnsResponse(bad, 0, 11, 0, [], out, 0)).toBe(-1);
  });

  it('keeps the opcode, RD and CD of the query and never sets AD', () => {
    const q = GOOGLE_QUERY.slice();
    q[2] = 0x01; q[3] = 0x30; // RD, AD, CD
    const out = new Uint8Array(512);
    const n = emitDnsResponse(q, 0, q.length, 0, [], out, 0, { aa: true, ra: false });
    const v = new DnsView();
    v.reset(out, 0, n);
    expect(v.flags).toBe(DnsFlag.QR | DnsFlag.AA | DnsFlag.RD | DnsFlag.CD);
  });
});

describe('dns over tcp framing', () => {
  it('splits a stream into messages across arbitrary chunk boundaries', () => {
    const framed = new Uint8Array(2 + GOOGLE_QUERY.length + 2 + GOOGLE_RESPONSE.length);
    writeDnsTcpLength(framed, 0, GOOGLE_QUERY.length);
    framed.set(GOOGLE_QUERY, 2);
    const o = 2 + GOOGLE_QUERY.length;
    writeDnsTcpLength(framed, o, GOOGLE_RESPONSE.length);
    framed.set(GOOGLE_RESPONSE, o + 2);
    expect(readDnsTcpLength(framed, 0)).toBe(GOOGLE_QUERY.length);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 30 }), (cuts) => {
        const rd = new DnsTcpReader();
        const got: Uint8Array[] = [];
        let p = 0;
        for (let k = 0; p < framed.length; k++) {
          const step = cuts[k % cuts.length]!;
          rd.push(framed.slice(p, p + step));
          p += step;
          for (let m = rd.next(); m !== null; m = rd.next()) got.push(m);
        }
        expect(got).toEqual([GOOGLE_QUERY, GOOGLE_RESPONSE]);
        expect(rd.pending).toBe(0);
      }),
    );
  });

  it('holds a message that is still incomplete', () => {
    const rd = new DnsTcpReader();
    rd.push(hex('00'));
    expect(rd.next()).toBeNull();
    rd.push(hex('03 aabb'));
    expect(rd.next()).toBeNull();
    rd.push(hex('cc 0000'));
    expect(rd.next()).toEqual(hex('aabbcc'));
    expect(rd.next()).toEqual(new Uint8Array(0));
  });
});

// ---- properties ------------------------------------------------------------------------------

const labelArb = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);
const nameArb = fc.array(labelArb, { minLength: 0, maxLength: 4 }).map((ls) => ls.join('.'));
const rdataArb: fc.Arbitrary<[number, DnsRecord['rdata']]> = fc.oneof(
  fc.nat({ max: 0xffffffff }).map((addr): [number, DnsRecord['rdata']] => [1, { kind: 'a', addr }]),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((addr): [number, DnsRecord['rdata']] => [28, { kind: 'aaaa', addr }]),
  nameArb.map((name): [number, DnsRecord['rdata']] => [5, { kind: 'name', name }]),
  fc.tuple(fc.nat({ max: 0xffff }), nameArb).map(([preference, exchange]): [number, DnsRecord['rdata']] => [15, { kind: 'mx', preference, exchange }]),
  fc.array(fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x00-\xff]/g, 'x')), { maxLength: 3 }).map((strings): [number, DnsRecord['rdata']] => [16, { kind: 'txt', strings }]),
  fc.uint8Array({ maxLength: 40 }).map((data): [number, DnsRecord['rdata']] => [99, { kind: 'raw', data }]),
);
const recordArb: fc.Arbitrary<DnsRecord> = fc
  .tuple(nameArb, rdataArb, fc.nat({ max: 0xffff }), fc.nat({ max: 0xffffffff }))
  .map(([name, [type, rdata], cls, ttl]) => ({ name, type, class: cls, ttl, rdata }));
const reprArb: fc.Arbitrary<DnsRepr> = fc.record({
  id: fc.nat({ max: 0xffff }),
  qr: fc.boolean(),
  opcode: fc.nat({ max: 15 }),
  aa: fc.boolean(),
  tc: fc.boolean(),
  rd: fc.boolean(),
  ra: fc.boolean(),
  ad: fc.boolean(),
  cd: fc.boolean(),
  rcode: fc.nat({ max: 15 }),
  questions: fc.array(fc.record({ name: nameArb, type: fc.nat({ max: 0xffff }), class: fc.nat({ max: 0xffff }) }), { maxLength: 3 }),
  answers: fc.array(recordArb, { maxLength: 4 }),
  authorities: fc.array(recordArb, { maxLength: 2 }),
  additionals: fc.array(recordArb, { maxLength: 2 }),
});

describe('dns properties', () => {
  it('never throws on arbitrary bytes', () => {
    const v = new DnsView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 20 }), (b, start) => {
        if (v.reset(b, 0, b.length)) parseDns(v);
        readDnsQuery(b, 0, b.length);
        decodeDnsName(b, 0, Math.min(start, b.length), b.length);
        emitDnsResponse(b, 0, b.length, 3, [], new Uint8Array(512), 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on messages that look like DNS with pointers sprinkled in', () => {
    const v = new DnsView();
    const body = fc.array(fc.oneof(fc.constantFrom(0xc0, 0xc0, 0x00, 0x01, 0x03, 0x3f), fc.nat({ max: 255 })), { maxLength: 200 });
    fc.assert(
      fc.property(body, (xs) => {
        const b = new Uint8Array(12 + xs.length);
        b.set([0, 1, 0x81, 0x80, 0, 2, 0, 3, 0, 1, 0, 1]);
        b.set(xs, 12);
        v.reset(b, 0, b.length);
        const r = parseDns(v);
        if (r !== null) {
          // Whatever parses must emit and re-parse to itself.
          const out = new Uint8Array(70000);
          const n = emitDns(r, out, 0);
          expect(n).toBeGreaterThan(0);
          v.reset(out, 0, n);
          expect(parseDns(v)).toEqual(r);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips parse(emit(x)) with and without compression', () => {
    const v = new DnsView();
    const buf = new Uint8Array(70000);
    fc.assert(
      fc.property(reprArb, fc.boolean(), (r, compress) => {
        const n = emitDns(r, buf, 3, { compress });
        expect(n).toBeGreaterThan(0);
        expect(v.reset(buf, 3, n)).toBe(true);
        expect(parseDns(v)).toEqual(r);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips any wire name through its text form', () => {
    const label = fc.uint8Array({ minLength: 1, maxLength: 63 });
    fc.assert(
      fc.property(fc.array(label, { maxLength: 3 }), (labels) => {
        const wire: number[] = [];
        for (const l of labels) wire.push(l.length, ...l);
        wire.push(0);
        const w = Uint8Array.from(wire);
        const d = decodeDnsName(w, 0, 0, w.length)!;
        const out = new Uint8Array(300);
        expect(encodeDnsName(d.name, out, 0)).toBe(w.length);
        expect(out.slice(0, w.length)).toEqual(w);
      }),
    );
  });
});
