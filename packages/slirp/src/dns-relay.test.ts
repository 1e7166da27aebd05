import { describe, it, expect, afterEach } from 'vitest';
import * as dgram from 'node:dgram';
import {
  DnsClass,
  DnsFlag,
  DnsRcode,
  DnsType,
  DnsView,
  Ipv4View,
  Ipv6View,
  UdpView,
  emitDns,
  emitDnsResponse,
  parseDns,
  readDnsQuery,
} from '@guestnet/wire';
import type { DnsRecord, DnsRepr } from '@guestnet/wire';
import { DnsRelay, pickUpstream } from './dns-relay.ts';
import { ip4, ip6 } from './config.ts';
import type { HostAddr, HostIo } from '@guestnet/core';
import { createNodeHostIo } from '@guestnet/core/node';
import { fakeContext } from './testing/fake-context.ts';

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const GUEST = ip4('10.0.2.15')!;
const GUEST6 = ip6('fec0::15')!;
const ANSWER_ADDR = ip4('192.0.2.1')!;

type Handler = (msg: Buffer, from: dgram.RemoteInfo, sock: dgram.Socket) => void;

interface FakeDns {
  port: number;
  sock: dgram.Socket;
  received: Array<{ id: number; from: dgram.RemoteInfo; msg: Buffer }>;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** Answer every query with one A record for its name. */
function answerWith(records: (name: string) => DnsRecord[] = (name) => [{ name, type: DnsType.A, class: DnsClass.IN, ttl: 60, rdata: { kind: 'a', addr: ANSWER_ADDR } }]): Handler {
  return (msg, from, sock) => {
    const q = readDnsQuery(msg, 0, msg.length)!;
    const buf = new Uint8Array(8192);
    const n = emitDnsResponse(msg, 0, msg.length, DnsRcode.NOERROR, records(q.name), buf, 0, { maxLen: 8192 });
    sock.send(buf.subarray(0, n), from.port, from.address);
  };
}

/** A tiny DNS server on 127.0.0.1 (never the system resolver). */
async function fakeDns(handler: Handler | null): Promise<FakeDns> {
  const sock = dgram.createSocket('udp4');
  const received: FakeDns['received'] = [];
  sock.on('message', (msg, from) => {
    received.push({ id: msg.readUInt16BE(0), from, msg });
    handler?.(msg, from, sock);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanups.push(() => sock.close());
  return { port: sock.address().port, sock, received };
}

function setup(options: Record<string, unknown>, ioOverride: Partial<HostIo> = {}, relayOpts: { timeoutMs?: number; maxPending?: number } = {}) {
  const io: HostIo = { ...createNodeHostIo(), systemResolvers: async () => [], ...ioOverride };
  const { cfg, ctx, frames, drops, counts, clock, timers } = fakeContext(options, { io, guestMac: GUEST_MAC, guestIp4: GUEST });
  const relay = new DnsRelay(ctx, relayOpts);
  cleanups.push(() => relay.close());
  return { cfg, frames, drops, counts, clock, timers, relay };
}

function query(id: number, name: string, type: number = DnsType.A): Uint8Array {
  const r: DnsRepr = {
    id,
    qr: false,
    opcode: 0,
    aa: false,
    tc: false,
    rd: true,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [{ name, type, class: DnsClass.IN }],
    answers: [],
    authorities: [],
    additionals: [],
  };
  const buf = new Uint8Array(512);
  return buf.slice(0, emitDns(r, buf, 0));
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Udp4 {
  dstMac: Uint8Array;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  dns: DnsRepr;
}

function parse4(f: Uint8Array): Udp4 {
  expect((f[12]! << 8) | f[13]!).toBe(0x0800);
  const ip = new Ipv4View();
  expect(ip.reset(f, 14, f.length - 14)).toBe(true);
  expect(ip.verifyChecksum()).toBe(true);
  const udp = new UdpView();
  expect(udp.reset(f, ip.payloadOffset, ip.payloadLen)).toBe(true);
  expect(udp.verifyChecksumV4(f, 14)).toBe(true);
  const v = new DnsView();
  expect(v.reset(f, udp.payloadOffset, udp.payloadLen)).toBe(true);
  const dns = parseDns(v);
  expect(dns).not.toBeNull();
  return { dstMac: f.slice(0, 6), src: ip.src, dst: ip.dst, srcPort: udp.srcPort, dstPort: udp.dstPort, dns: dns! };
}

describe('DnsRelay', () => {
  it('relays an answer from the upstream with the guest id, from cfg.dns:53, checksums valid', async () => {
    const up = await fakeDns(answerWith());
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(0x1234, 'example.com'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1);
    const r = parse4(env.frames[0]!);
    expect(r.dstMac).toEqual(GUEST_MAC);
    expect([r.src, r.srcPort, r.dst, r.dstPort]).toEqual([env.cfg.dns, 53, GUEST, 40000]);
    expect(r.dns.id).toBe(0x1234);
    expect(r.dns.qr).toBe(true);
    expect(r.dns.rcode).toBe(DnsRcode.NOERROR);
    expect(r.dns.questions).toEqual([{ name: 'example.com', type: DnsType.A, class: DnsClass.IN }]);
    expect(r.dns.answers).toEqual([{ name: 'example.com', type: DnsType.A, class: DnsClass.IN, ttl: 60, rdata: { kind: 'a', addr: ANSWER_ADDR } }]);
    expect(env.relay.pendingCount).toBe(0);
    expect(env.timers.size).toBe(0);
    expect(env.counts.get('dns-answer')).toBe(1);
  });

  it('gives concurrent queries with the same guest id distinct upstream ids over one socket', async () => {
    const up = await fakeDns(answerWith());
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(7, 'a.example'), GUEST_MAC);
    env.relay.handle(GUEST, 40001, env.cfg.dns, 53, query(7, 'b.example'), GUEST_MAC);
    await waitFor(() => env.frames.length === 2);
    expect(up.received[0]!.id).not.toBe(up.received[1]!.id);
    expect(up.received[0]!.from.port).toBe(up.received[1]!.from.port);
    const byPort = new Map(env.frames.map((f) => parse4(f)).map((r) => [r.dstPort, r.dns] as const));
    expect(byPort.get(40000)!.id).toBe(7);
    expect(byPort.get(40000)!.questions[0]!.name).toBe('a.example');
    expect(byPort.get(40001)!.questions[0]!.name).toBe('b.example');
  });

  it('uses the host resolvers when no upstream is configured', async () => {
    const up = await fakeDns(answerWith());
    const env = setup({}, { systemResolvers: async () => [{ address: '127.0.0.1', port: up.port, family: 4 }] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(1, 'example.org'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1);
    expect(parse4(env.frames[0]!).dns.answers.length).toBe(1);
    expect(env.relay.pickUpstream(4)).toEqual({ address: '127.0.0.1', port: up.port, family: 4 });
  });

  it('answers SERVFAIL when the only upstream stays silent past the timeout', async () => {
    const up = await fakeDns(null);
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(0x4242, 'silent.example', DnsType.AAAA), GUEST_MAC);
    await waitFor(() => up.received.length === 1);
    env.clock.advance(1999);
    expect(env.frames.length).toBe(0);
    env.clock.advance(1);
    expect(env.frames.length).toBe(1);
    const r = parse4(env.frames[0]!);
    expect(r.dns.id).toBe(0x4242);
    expect(r.dns.rcode).toBe(DnsRcode.SERVFAIL);
    expect(r.dns.questions).toEqual([{ name: 'silent.example', type: DnsType.AAAA, class: DnsClass.IN }]);
    expect(r.dns.answers).toEqual([]);
    expect(env.drops.get('dns-timeout')).toBe(1);
    expect(env.relay.pendingCount).toBe(0);
  });

  it('tries the second upstream when the first is silent', async () => {
    const silent = await fakeDns(null);
    const good = await fakeDns(answerWith());
    const env = setup({ 'dns-upstream': [`127.0.0.1#${silent.port}`, `127.0.0.1#${good.port}`] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(9, 'example.net'), GUEST_MAC);
    await waitFor(() => silent.received.length === 1);
    expect(good.received.length).toBe(0);
    env.clock.advance(2000);
    await waitFor(() => env.frames.length === 1);
    const r = parse4(env.frames[0]!);
    expect(r.dns.id).toBe(9);
    expect(r.dns.answers.length).toBe(1);
    expect(good.received.length).toBe(1);
    // The TCP path now prefers the upstream that works.
    expect(env.relay.pickUpstream(4)!.port).toBe(good.port);
  });

  it('answers SERVFAIL at once when there is no upstream at all', async () => {
    const env = setup({}, { systemResolvers: async () => [] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(3, 'nowhere.example'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1);
    const r = parse4(env.frames[0]!);
    expect(r.dns.id).toBe(3);
    expect(r.dns.rcode).toBe(DnsRcode.SERVFAIL);
    expect(env.drops.get('dns-no-upstream')).toBe(1);
    expect(env.relay.pickUpstream(4)).toBeNull();
  });

  it('ignores and counts garbage, wrong-id, wrong-question and wrong-source responses', async () => {
    let answered = false;
    const spoofer = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', r));
    cleanups.push(() => spoofer.close());
    const up = await fakeDns((msg, from, sock) => {
      const buf = new Uint8Array(512);
      const ok = buf.slice(0, emitDnsResponse(msg, 0, msg.length, DnsRcode.NOERROR, [{ name: 'target.example', type: DnsType.A, class: DnsClass.IN, ttl: 5, rdata: { kind: 'a', addr: ANSWER_ADDR } }], buf, 0));
      const wrongId = ok.slice();
      wrongId[0] ^= 0xff;
      const otherQ = query(msg.readUInt16BE(0), 'other.example');
      otherQ[2] |= DnsFlag.QR >>> 8;
      const forged = ok.slice();
      forged[forged.length - 1] = 66; // 192.0.2.66
      sock.send(Uint8Array.of(1, 2, 3), from.port, from.address);
      sock.send(Uint8Array.of(...ok.subarray(0, 2), 0, 0, ...new Uint8Array(8)), from.port, from.address); // QR clear
      sock.send(wrongId, from.port, from.address);
      sock.send(otherQ, from.port, from.address);
      spoofer.send(forged, from.port, from.address);
      // The genuine answer last, once the others had time to arrive.
      setTimeout(() => {
        answered = true;
        sock.send(ok, from.port, from.address);
      }, 50);
    });
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, query(0x5555, 'target.example'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1 && answered);
    await new Promise((r) => setTimeout(r, 30));
    expect(env.frames.length).toBe(1);
    const r = parse4(env.frames[0]!);
    expect(r.dns.id).toBe(0x5555);
    expect(r.dns.answers[0]!.rdata).toEqual({ kind: 'a', addr: ANSWER_ADDR });
    expect(env.drops.get('dns-bad-response')).toBe(2);
    expect(env.drops.get('dns-unexpected-response')).toBe(3);
  });

  it('answers an IPv6 guest from cfg.ipv6Dns via handle6', async () => {
    const up = await fakeDns(answerWith());
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle6(GUEST6, 50000, env.cfg.ipv6Dns, 53, query(0xbeef, 'v6.example'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1);
    const f = env.frames[0]!;
    expect((f[12]! << 8) | f[13]!).toBe(0x86dd);
    const ip = new Ipv6View();
    expect(ip.reset(f, 14, f.length - 14)).toBe(true);
    expect(f.slice(ip.srcOffset, ip.srcOffset + 16)).toEqual(env.cfg.ipv6Dns);
    expect(f.slice(ip.dstOffset, ip.dstOffset + 16)).toEqual(GUEST6);
    const udp = new UdpView();
    expect(udp.reset(f, ip.payloadOffset, ip.payloadLen)).toBe(true);
    expect(udp.verifyChecksumV6(f, 14)).toBe(true);
    expect([udp.srcPort, udp.dstPort]).toEqual([53, 50000]);
    const v = new DnsView();
    v.reset(f, udp.payloadOffset, udp.payloadLen);
    const dns = parseDns(v)!;
    expect(dns.id).toBe(0xbeef);
    expect(dns.answers[0]!.rdata).toEqual({ kind: 'a', addr: ANSWER_ADDR });
  });

  it('sends an IPv6 guest a truncated (TC) reply when the answer exceeds the MTU', async () => {
    const many = (name: string): DnsRecord[] => Array.from({ length: 120 }, (_, i) => ({ name, type: DnsType.A, class: DnsClass.IN, ttl: 1, rdata: { kind: 'a', addr: ANSWER_ADDR + i } }));
    const up = await fakeDns(answerWith(many));
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] });
    env.relay.handle6(GUEST6, 50000, env.cfg.ipv6Dns, 53, query(0x0101, 'big.example'), GUEST_MAC);
    await waitFor(() => env.frames.length === 1);
    const f = env.frames[0]!;
    const v = new DnsView();
    v.reset(f, 14 + 40 + 8, f.length - 62);
    const dns = parseDns(v)!;
    expect(dns.id).toBe(0x0101);
    expect(dns.tc).toBe(true);
    expect(dns.answers).toEqual([]);
    expect(dns.questions[0]!.name).toBe('big.example');
    expect(env.counts.get('dns-truncated')).toBe(1);
  });

  it('bounds the pending table and counts the excess', async () => {
    const up = await fakeDns(null);
    const env = setup({ 'dns-upstream': [`127.0.0.1#${up.port}`] }, {}, { maxPending: 2 });
    for (let i = 0; i < 3; i++) env.relay.handle(GUEST, 40000 + i, env.cfg.dns, 53, query(i, `n${i}.example`), GUEST_MAC);
    expect(env.relay.pendingCount).toBe(2);
    expect(env.drops.get('dns-pending-full')).toBe(1);
    await waitFor(() => up.received.length === 2);
    env.relay.close();
    expect(env.relay.pendingCount).toBe(0);
    expect(env.timers.size).toBe(0);
  });

  it('drops malformed guest queries', () => {
    const env = setup({ 'dns-upstream': ['127.0.0.1#9'] });
    const resp = query(1, 'x.example');
    resp[2] |= 0x80; // QR: a response, not a query
    const noQuestion = query(1, 'x.example').slice(0, 12);
    noQuestion[5] = 0;
    const cut = query(1, 'x.example').slice(0, 15);
    for (const q of [new Uint8Array(5), resp, noQuestion, cut]) env.relay.handle(GUEST, 40000, env.cfg.dns, 53, q, GUEST_MAC);
    expect(env.drops.get('dns-malformed')).toBe(4);
    const huge = new Uint8Array(5000);
    huge.set(query(1, 'x.example'));
    env.relay.handle(GUEST, 40000, env.cfg.dns, 53, huge, GUEST_MAC);
    expect(env.drops.get('dns-oversize')).toBe(1);
    expect(env.relay.pendingCount).toBe(0);
  });

  it('picks an upstream of the asked family, else any', () => {
    const list: HostAddr[] = [
      { address: '127.0.0.1', port: 53, family: 4 },
      { address: '::1', port: 5353, family: 6 },
    ];
    expect(pickUpstream(list, 6)).toEqual(list[1]);
    expect(pickUpstream(list, 4)).toEqual(list[0]);
    expect(pickUpstream(list.slice(0, 1), 6)).toEqual(list[0]);
    expect(pickUpstream([], 4)).toBeNull();
  });

  it('loads the upstream list on start so the TCP path can pick one at once', async () => {
    const env = setup({ 'dns-upstream': ['[::1]:5353', '127.0.0.1#5354'] });
    expect(env.relay.pickUpstream(4)).toBeNull();
    await env.relay.start();
    expect(env.relay.pickUpstream(4)).toEqual({ address: '127.0.0.1', port: 5354, family: 4 });
    expect(env.relay.pickUpstream(6)).toEqual({ address: '::1', port: 5353, family: 6 });
  });
});
