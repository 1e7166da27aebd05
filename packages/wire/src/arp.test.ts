import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ARP_LEN, ArpOp, ArpView, emitArp, parseArp, type ArpRepr } from './arp.ts';
import { macToString, parseIpv4Addr } from './addr.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((x) => parseInt(x, 16)));

// Captured on a Linux veth (payload after the 14-byte Ethernet header).
const REQUEST = hex('0001 0800 06 04 0001 da46349a1113 0a00020f 000000000000 0a000202'); // who-has 10.0.2.2 tell 10.0.2.15
const REPLY = hex('0001 0800 06 04 0002 26e628a2bd79 0a000202 da46349a1113 0a00020f'); // 10.0.2.2 is-at 26:e6:28:a2:bd:79

describe('arp', () => {
  it('parses a captured request', () => {
    const v = new ArpView();
    expect(v.reset(REQUEST, 0, REQUEST.length)).toBe(true);
    const r = parseArp(v);
    expect(r.op).toBe(ArpOp.REQUEST);
    expect(macToString(r.senderMac)).toBe('da:46:34:9a:11:13');
    expect(r.senderIp).toBe(parseIpv4Addr('10.0.2.15'));
    expect(macToString(r.targetMac)).toBe('00:00:00:00:00:00');
    expect(r.targetIp).toBe(parseIpv4Addr('10.0.2.2'));
    expect(v.isGratuitous).toBe(false);
  });

  it('emits the captured reply byte for byte', () => {
    const r: ArpRepr = {
      op: ArpOp.REPLY,
      senderMac: hex('26e628a2bd79'),
      senderIp: 0x0a000202,
      targetMac: hex('da46349a1113'),
      targetIp: 0x0a00020f,
    };
    const out = new Uint8Array(ARP_LEN);
    expect(emitArp(r, out, 0)).toBe(28);
    expect(out).toEqual(REPLY);
  });

  it('answers a request in place with the view setters', () => {
    const p = REQUEST.slice();
    const v = new ArpView();
    v.reset(p, 0, p.length);
    const them = new Uint8Array(6);
    v.copySenderMac(them);
    const theirIp = v.senderIp;
    v.op = ArpOp.REPLY;
    v.setTargetMac(them);
    v.targetIp = theirIp;
    v.setSenderMac(hex('26e628a2bd79'));
    v.senderIp = 0x0a000202;
    expect(p).toEqual(REPLY);
  });

  it('accepts Ethernet padding after the 28 bytes', () => {
    const padded = new Uint8Array(46);
    padded.set(REQUEST);
    const v = new ArpView();
    expect(v.reset(padded, 0, padded.length)).toBe(true);
    expect(v.targetIp).toBe(0x0a000202);
  });

  it('rejects short packets and non-Ethernet/IPv4 variants', () => {
    const v = new ArpView();
    expect(v.reset(REQUEST, 0, 27)).toBe(false);
    for (const [i, b] of [[1, 6], [2, 0x86], [4, 8], [5, 16]] as const) {
      const p = REQUEST.slice();
      p[i] = b;
      expect(v.reset(p, 0, p.length)).toBe(false);
    }
  });

  it('never throws on arbitrary bytes', () => {
    const v = new ArpView();
    const header = fc.uint8Array({ minLength: 20, maxLength: 40 }).map((b) => {
      if (b.length >= 6) b.set([0, 1, 8, 0, 6, 4]); // often valid, so parse runs too
      return b;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), header), (b) => {
        if (v.reset(b, 0, b.length)) parseArp(v);
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    const repr = fc.record({ op: fc.nat(0xffff), senderMac: mac, senderIp: fc.nat(0xffffffff), targetMac: mac, targetIp: fc.nat(0xffffffff) });
    fc.assert(
      fc.property(repr, (r) => {
        const buf = new Uint8Array(30);
        emitArp(r, buf, 2);
        const v = new ArpView();
        expect(v.reset(buf, 2, 28)).toBe(true);
        expect(parseArp(v)).toEqual(r);
      }),
    );
  });
});
