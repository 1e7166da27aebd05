import { describe, it, expect } from 'vitest';
import { describeFrame, formatIpv6, withTracer } from './tracer.ts';
import { pair } from '../pair.ts';

const h = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

const ETH_V4 = '525400123402 525400123456 0800';
const ETH_V6 = '333300000001 525400123456 86dd';

// 10.0.2.15:40000 → 10.0.2.2:80, SYN, no payload (IHL 5, data offset 5).
const tcpSyn = h(`${ETH_V4} 4500 0028 0001 4000 4006 0000 0a00020f 0a000202
  9c40 0050 00000001 00000000 5002 ffff 0000 0000`);
// 10.0.2.2:80 → 10.0.2.15:40000, PSH+ACK, 5 bytes payload, padded by Ethernet to 60.
const tcpPshAck = h(`${ETH_V4} 4500 002d 0002 4000 4006 0000 0a000202 0a00020f
  0050 9c40 00000001 00000002 5018 ffff 0000 0000 6865 6c6c 6f 00`);
const udp = h(`${ETH_V4} 4500 0020 0003 0000 4011 0000 0a00020f 0a000203 14e9 0035 000c 0000 01020304`);
const icmpEcho = h(`${ETH_V4} 4500 001c 0004 0000 4001 0000 0a00020f 0a000202 0800 0000 0001 0002`);
const arpReq = h(`ffffffffffff 525400123456 0806 0001 0800 06 04 0001 525400123456 0a00020f 000000000000 0a000202`);
const arpRep = h(`525400123456 525400123402 0806 0001 0800 06 04 0002 525400123402 0a000202 525400123456 0a00020f`);
const ns6 = h(`${ETH_V6} 6000 0000 0008 3aff fe800000000000000000000000000001 ff0200000000000000000001ff000002
  8700 0000 0000 0000`);
// IPv6 UDP behind a hop-by-hop header: [fe80::1]:546 → [ff02::1:2]:547.
const udp6 = h(`${ETH_V6} 6000 0000 0014 00 01 fe800000000000000000000000000001 ff020000000000000000000000010002
  1100 0000 0000 0000  0222 0223 000c 0000 01020304`);
const v4frag = h(`${ETH_V4} 4500 001c 0005 0001 4011 0000 0a00020f 0a000203 0000000000000000`);
const vlan = h(`525400123402 525400123456 8100 0005 0806 0001 0800 06 04 0001 525400123456 0a00020f 000000000000 0a000202`);

describe('describeFrame', () => {
  it.each([
    ['tcp SYN', tcpSyn, 'ipv4 10.0.2.15:40000 > 10.0.2.2:80 tcp [S] seq 1 win 65535 len=0'],
    ['tcp PSH+ACK, payload bounded by the IP length', tcpPshAck, 'ipv4 10.0.2.2:80 > 10.0.2.15:40000 tcp [P.] seq 1 ack 2 win 65535 len=5'],
    ['udp', udp, 'ipv4 10.0.2.15:5353 > 10.0.2.3:53 udp len=4'],
    ['icmp echo', icmpEcho, 'ipv4 10.0.2.15 > 10.0.2.2 icmp echo-request id=1 seq=2'],
    ['arp request', arpReq, 'arp request who-has 10.0.2.2 tell 10.0.2.15'],
    ['arp reply', arpRep, 'arp reply 10.0.2.2 is-at 52:54:00:12:34:02'],
    ['icmpv6 NS', ns6, 'ipv6 fe80::1 > ff02::1:ff00:2 icmpv6 neighbor-solicitation'],
    ['udp over ipv6 behind hop-by-hop', udp6, 'ipv6 [fe80::1]:546 > [ff02::1:2]:547 udp len=4'],
    ['non-first ipv4 fragment', v4frag, 'ipv4 10.0.2.15 > 10.0.2.3 udp frag off=8'],
    ['vlan-tagged arp', vlan, 'vlan 5 arp request who-has 10.0.2.2 tell 10.0.2.15'],
    ['unknown ethertype', h('ffffffffffff 525400123456 88cc 0000'), 'ethertype 0x88cc'],
    ['runt', h('ffffffffffff'), 'runt'],
    ['truncated tcp', tcpSyn.subarray(0, 40), 'ipv4 10.0.2.15 > 10.0.2.2 tcp truncated'],
  ])('%s', (_name, f, want) => {
    expect(describeFrame(f)).toBe(want);
  });

  it('prints MACs when asked', () => {
    expect(describeFrame(arpReq, 0, true)).toBe('52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff arp request who-has 10.0.2.2 tell 10.0.2.15');
  });

  it('never throws on arbitrary truncations', () => {
    for (const f of [tcpSyn, tcpPshAck, udp6, ns6, arpRep, vlan]) {
      for (let n = 0; n <= f.length; n++) expect(typeof describeFrame(f.subarray(0, n))).toBe('string');
    }
  });
});

describe('formatIpv6', () => {
  it.each([
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['00000000000000000000000000000000', '::'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'], // longest run wins
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['20010000000000010000000000010001', '2001::1:0:0:1:1'], // first of equal runs
    ['20010000000000010000000000000001', '2001:0:0:1::1'], // longer run later wins
  ])('%s → %s', (hex, want) => {
    expect(formatIpv6(h(hex), 0)).toBe(want);
  });
});

describe('withTracer', () => {
  it('logs one line per frame with direction, length and decode', async () => {
    const lines: string[] = [];
    const [a, b] = pair();
    const t = withTracer(a, (l) => lines.push(l), { label: 'eth0' });
    await t.init(() => {});
    await b.init((f) => {
      if (f[12] === 0x08 && f[13] === 0x06) b.send(arpRep);
    });
    t.send(arpReq);
    t.send(tcpSyn);
    expect(lines).toEqual([
      'eth0 tx 42 arp request who-has 10.0.2.2 tell 10.0.2.15',
      'eth0 rx 42 arp reply 10.0.2.2 is-at 52:54:00:12:34:02',
      'eth0 tx 54 ipv4 10.0.2.15:40000 > 10.0.2.2:80 tcp [S] seq 1 win 65535 len=0',
    ]);
    await t.close();
  });

  it('passes frames through unchanged and keeps the data path alive when the logger throws', async () => {
    const [a, b] = pair();
    const t = withTracer(a, () => {
      throw new Error('log broken');
    });
    const got: Uint8Array[] = [];
    await t.init((f) => got.push(f.slice()));
    await b.init((f) => b.send(f));
    expect(t.send(udp)).toBe('delivered');
    expect(got).toEqual([udp]);
    expect(t.stats().drops).toEqual({ 'tracer-log-error': 2 });
  });
});
