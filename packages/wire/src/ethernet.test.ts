import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EtherType,
  EthernetView,
  MAC_BROADCAST,
  emitEthernet,
  ethernetHeaderLen,
  isBroadcastMac,
  isMulticastMac,
  parseEthernet,
  type EthernetRepr,
} from './ethernet.ts';
import { macToString } from './addr.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((x) => parseInt(x, 16)));

// Captured on a Linux veth: ARP who-has 10.0.2.2 tell 10.0.2.15 (42 bytes, sender side, unpadded).
const ARP_REQUEST_FRAME = hex('ffffffffffff da46349a1113 0806 0001080006040001da46349a11130a00020f0000000000000a000202');
// The same host's TCP SYN to 10.0.2.2:8080 (Ethernet header + IPv4 + TCP).
const SYN_FRAME = hex(
  '26e628a2bd79 da46349a1113 0800 4500003c9c554000400686560a00020f0a000202c3561f90b5f72ac300000000a002faf0183f0000020405b40402080a16753a5d000000000103030a',
);

describe('ethernet', () => {
  it('parses a captured broadcast ARP frame', () => {
    const v = new EthernetView();
    expect(v.reset(ARP_REQUEST_FRAME, 0, ARP_REQUEST_FRAME.length)).toBe(true);
    expect(v.ethertype).toBe(EtherType.ARP);
    expect(v.vlanId).toBe(-1);
    expect(v.isBroadcast).toBe(true);
    expect(v.isMulticast).toBe(true);
    expect(v.payloadOffset).toBe(14);
    expect(v.payloadLen).toBe(28);
    const r = parseEthernet(v);
    expect(macToString(r.dst)).toBe('ff:ff:ff:ff:ff:ff');
    expect(macToString(r.src)).toBe('da:46:34:9a:11:13');
  });

  it('emits the captured SYN frame header byte for byte', () => {
    const v = new EthernetView();
    expect(v.reset(SYN_FRAME, 0, SYN_FRAME.length)).toBe(true);
    expect(v.isMulticast).toBe(false);
    expect(v.ethertype).toBe(EtherType.IPv4);
    const out = new Uint8Array(14);
    expect(emitEthernet(parseEthernet(v), out, 0)).toBe(14);
    expect(out).toEqual(SYN_FRAME.subarray(0, 14));
  });

  it('sees through one 802.1Q tag (VID 5, PCP 3)', () => {
    const tagged = new Uint8Array(SYN_FRAME.length + 4);
    tagged.set(SYN_FRAME.subarray(0, 12), 0);
    tagged.set([0x81, 0x00, 0x60, 0x05], 12);
    tagged.set(SYN_FRAME.subarray(12), 16);
    const v = new EthernetView();
    expect(v.reset(tagged, 0, tagged.length)).toBe(true);
    expect(v.outerEthertype).toBe(EtherType.VLAN);
    expect(v.ethertype).toBe(EtherType.IPv4);
    expect(v.vlanId).toBe(5);
    expect(v.vlanPcp).toBe(3);
    expect(v.payloadOffset).toBe(18);
    expect(tagged[v.payloadOffset]).toBe(0x45);
    const r = parseEthernet(v);
    expect(r).toMatchObject({ vlanId: 5, vlanPcp: 3, ethertype: 0x0800 });
    const out = new Uint8Array(18);
    expect(emitEthernet(r, out, 0)).toBe(18);
    expect(out).toEqual(tagged.subarray(0, 18));
    expect(ethernetHeaderLen(r)).toBe(18);
  });

  it('rejects runts: under 14 bytes, or a tag without room for it', () => {
    const v = new EthernetView();
    expect(v.reset(SYN_FRAME, 0, 13)).toBe(false);
    const t = hex('ffffffffffff da46349a1113 8100 0005 08');
    expect(v.reset(t, 0, t.length)).toBe(false);
    expect(v.reset(SYN_FRAME, 70, 14)).toBe(false); // past the end of the buffer
  });

  it('setters rewrite addresses and type in place', () => {
    const f = SYN_FRAME.slice();
    const v = new EthernetView();
    v.reset(f, 0, f.length);
    v.setDst(MAC_BROADCAST);
    v.setSrc(Uint8Array.of(0x52, 0x55, 0x0a, 0, 2, 2));
    v.ethertype = EtherType.IPv6;
    expect(macToString(f, 0)).toBe('ff:ff:ff:ff:ff:ff');
    expect(macToString(f, 6)).toBe('52:55:0a:00:02:02');
    expect(f[12]).toBe(0x86);
    expect(f[13]).toBe(0xdd);
  });

  it('classifies group addresses by the I/G bit', () => {
    expect(isMulticastMac(hex('333300000016'))).toBe(true);
    expect(isMulticastMac(hex('01005e000001'))).toBe(true);
    expect(isMulticastMac(hex('da46349a1113'))).toBe(false);
    expect(isBroadcastMac(MAC_BROADCAST)).toBe(true);
    expect(isBroadcastMac(hex('ffffffffffef'))).toBe(false);
  });

  it('never throws on arbitrary bytes', () => {
    const v = new EthernetView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(8), (b, o) => {
        if (v.reset(b, o, b.length - o)) {
          parseEthernet(v);
          expect(v.payloadOffset + v.payloadLen).toBe(b.length);
        }
      }),
    );
  });

  it('parse(emit(x)) round-trips', () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    const repr = fc.record({
      dst: mac,
      src: mac,
      ethertype: fc.nat(0xffff).filter((t) => t !== EtherType.VLAN),
      vlanId: fc.integer({ min: -1, max: 4095 }),
      vlanPcp: fc.nat(7),
    });
    fc.assert(
      fc.property(repr, (r0) => {
        const r: EthernetRepr = r0.vlanId < 0 ? { ...r0, vlanPcp: 0 } : r0;
        const buf = new Uint8Array(18);
        const n = emitEthernet(r, buf, 0);
        const v = new EthernetView();
        expect(v.reset(buf, 0, n)).toBe(true);
        expect(parseEthernet(v)).toEqual(r);
      }),
    );
  });
});
