import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, GuestnetError, Verdict, createBackend, resolveConfig } from '@guestnet/core';
import * as tap from './index.ts';
import { TX_QUEUE_FRAMES, TapBackend, resolveNetnsPath } from './tap-backend.ts';
import { loadAddon } from './addon.ts';
import { mapTapError } from './errors.ts';
import { configureLink } from './link.ts';
import { FakeAddon } from './testing/fake-addon.ts';

const importer = (s: string) => import(s);

function frame(len: number, fill = 0xab, hdr = 0): Uint8Array {
  const f = new Uint8Array(hdr + len).fill(fill);
  f.fill(0, 0, hdr);
  return f;
}

function make(options: Record<string, unknown> = {}) {
  const addon = new FakeAddon();
  const be = new TapBackend({ ifname: 'tap0', ...options }, { addon });
  return { addon, be };
}

describe('@guestnet/tap without a usable addon', () => {
  const saved = process.env.GUESTNET_TAP_ADDON;
  afterEach(() => {
    if (saved === undefined) delete process.env.GUESTNET_TAP_ADDON;
    else process.env.GUESTNET_TAP_ADDON = saved;
  });

  it('imports, and exports a descriptor named tap with the vmnet alias', () => {
    expect(tap.descriptor.name).toBe('tap');
    expect(tap.descriptor.aliases).toEqual(['vmnet']);
    expect(tap.descriptor.options.map((o) => o.name)).toEqual(['ifname', 'fd', 'vnet_hdr', 'queues', 'mac', 'mtu', 'script', 'downscript', 'netns', 'up']);
  });

  it('creating a backend with a bogus addon path fails with GUESTNET_BACKEND_NOT_INSTALLED', () => {
    let err: unknown;
    try {
      new TapBackend({ ifname: 'tap0' }, { addonPath: '/nonexistent/guestnet_tap.node' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestnetError);
    expect(err).toMatchObject({ code: ErrorCode.BackendNotInstalled, hint: expect.stringContaining('node-gyp rebuild') });
  });

  it('createBackend("tap0") rejects with GUESTNET_BACKEND_NOT_INSTALLED when the addon is missing', async () => {
    process.env.GUESTNET_TAP_ADDON = '/nonexistent/guestnet_tap.node';
    await expect(createBackend('tap0', { importer })).rejects.toMatchObject({ code: ErrorCode.BackendNotInstalled });
  });

  it('reports "not supported on <platform>" off Linux', () => {
    const desc = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try {
      expect(() => loadAddon('/whatever.node')).toThrow(/not supported on darwin/);
      expect(() => new TapBackend({ ifname: 'tap0' })).toThrow(expect.objectContaining({ code: ErrorCode.Unsupported }));
    } finally {
      Object.defineProperty(process, 'platform', desc);
    }
  });
});

describe('mapTapError', () => {
  const cases: [string, { code: string; syscall: string; path?: string }, string][] = [
    ['a missing /dev/net/tun', { code: 'ENOENT', syscall: 'open', path: '/dev/net/tun' }, ErrorCode.ENODEV],
    ['no tun driver', { code: 'ENODEV', syscall: 'open', path: '/dev/net/tun' }, ErrorCode.ENODEV],
    ['TUNSETIFF without CAP_NET_ADMIN', { code: 'EPERM', syscall: 'TUNSETIFF', path: 'tap0' }, ErrorCode.EPERM],
    ['an unreadable clone device', { code: 'EACCES', syscall: 'open', path: '/dev/net/tun' }, ErrorCode.EPERM],
    ['setns without CAP_SYS_ADMIN', { code: 'EPERM', syscall: 'setns' }, ErrorCode.EPERM],
    ['a missing namespace', { code: 'ENOENT', syscall: 'open netns', path: '/run/netns/x' }, ErrorCode.NotFound],
    ['a busy single-queue tap', { code: 'EBUSY', syscall: 'TUNSETIFF' }, ErrorCode.Exists],
    ['a flags mismatch', { code: 'EINVAL', syscall: 'TUNSETIFF' }, ErrorCode.BadConfig],
    ['a missing interface', { code: 'ENODEV', syscall: 'SIOCGIFFLAGS' }, ErrorCode.NotFound],
    ['SIOCSIFMTU without CAP_NET_ADMIN', { code: 'EPERM', syscall: 'SIOCSIFMTU' }, ErrorCode.EPERM],
    ['anything else', { code: 'EIO', syscall: 'TUNSETIFF' }, ErrorCode.Io],
  ];
  for (const [what, sys, code] of cases) {
    it(`maps ${what} (${sys.code} from ${sys.syscall}) to ${code}`, () => {
      const e = mapTapError(Object.assign(new Error(`${sys.syscall}: x`), sys), { ifname: 'tap0' });
      expect(e).toBeInstanceOf(GuestnetError);
      expect(e.code).toBe(code);
      expect(e.cause).toMatchObject(sys);
    });
  }

  it('tells an unprivileged user to run as root or create a persistent tap', () => {
    const e = mapTapError(Object.assign(new Error('TUNSETIFF: Operation not permitted'), { code: 'EPERM', syscall: 'TUNSETIFF' }), { ifname: 'tap0' });
    expect(e.hint).toMatch(/run as root/);
    expect(e.hint).toMatch(/ip tuntap add dev tap0 mode tap user \$USER/);
    expect(mapTapError(Object.assign(new Error('x'), { code: 'ENOENT', syscall: 'open' })).hint).toMatch(/modprobe tun/);
  });

  it('passes GuestnetErrors through unchanged', () => {
    const g = new GuestnetError(ErrorCode.BadConfig, 'x');
    expect(mapTapError(g)).toBe(g);
  });
});

describe('tap config strings', () => {
  it('bhyve tap0 and vmnet0 name the device', async () => {
    for (const [s, name] of [['tap0', 'tap0'], ['vmnet3', 'vmnet3'], ['backend=tap,ifname=gt1', 'gt1']] as const) {
      const { descriptor, options } = await resolveConfig(s, { importer });
      expect(descriptor.name).toBe('tap');
      expect(options.ifname).toBe(name);
    }
  });

  it('parses every option into what the backend uses', async () => {
    const { options } = await resolveConfig('backend=tap,ifname=gt1,vnet_hdr=on,queues=2,mac=02:00:00:00:00:09,mtu=9000,script=no,downscript=/bin/true,netns=1234,up=off', { importer });
    const addon = new FakeAddon();
    const be = new TapBackend(options, { addon });
    expect(be.netnsPath).toBe('/proc/1234/ns/net');
    await be.init(() => {});
    expect(addon.calls).toEqual([
      'openTap gt1 vnet=true mq=true ns=/proc/1234/ns/net',
      'openTap gt1 vnet=true mq=true ns=/proc/1234/ns/net',
      'vnethdrsz 100 10',
      'offload 100 0',
      'vnethdrsz 101 10',
      'offload 101 0',
      'mac gt1 02:00:00:00:00:09',
      'mtu gt1 9000',
    ]);
    expect(be.capabilities().mtu).toBe(9000);
    expect(be.queueCount).toBe(2);
    await be.close();
  });

  it('rejects queues>1 with fd= and vnet_hdr=on with an fd opened without IFF_VNET_HDR', () => {
    const addon = new FakeAddon();
    expect(() => new TapBackend({ fd: 5, queues: 2 }, { addon })).toThrow(expect.objectContaining({ code: ErrorCode.BadConfig }));
    expect(() => new TapBackend({ fd: 5, vnet_hdr: true }, { addon })).toThrow(/without IFF_VNET_HDR/);
    addon.tapFlags |= addon.constants.IFF_VNET_HDR;
    const be = new TapBackend({ fd: 5 }, { addon });
    expect(be.ifname).toBe('tapfd');
    expect(be.capabilities().supportedVnetHdrLens).toEqual([0, 10, 12]); // the fd has a header: negotiable
  });

  it('resolves netns names, paths and PIDs', () => {
    expect(resolveNetnsPath('g')).toBe('/run/netns/g');
    expect(resolveNetnsPath('/var/run/netns/g')).toBe('/var/run/netns/g');
    expect(resolveNetnsPath(42)).toBe('/proc/42/ns/net');
  });
});

describe('TapBackend data path (fake addon)', () => {
  it('delivers each frame of a batch byte-exact and drops runts', async () => {
    const { addon, be } = make();
    const got: number[][] = [];
    await be.init((f) => got.push([...f]));
    const a = Uint8Array.from({ length: 60 }, (_, i) => i);
    const b = Uint8Array.from({ length: 1514 }, (_, i) => (i * 7) & 0xff);
    addon.pollers[0]!.emit([a, new Uint8Array(10), b]);
    expect(got).toEqual([[...a], [...b]]);
    expect(be.stats()).toMatchObject({ rxFrames: 2, rxBytes: 1574, drops: { 'rx-runt': 1 } });
    await be.close();
  });

  it('brings the link up by default, tolerates EPERM for that, but not with up=on', async () => {
    const { addon, be } = make();
    await be.init(() => {});
    expect(addon.calls).toContain('up tap0 true');
    await be.close();
    const m = make();
    m.addon.failUp = 'EPERM';
    await m.be.init(() => {}); // a user's persistent tap: left as configured
    await m.be.close();
    const n = make({ up: true });
    n.addon.failUp = 'EPERM';
    await expect(n.be.init(() => {})).rejects.toMatchObject({ code: ErrorCode.EPERM });
    expect(n.addon.closedFds).toEqual([100]); // a failed init leaves nothing open
  });

  it('maps an open failure and closes the queues already opened', async () => {
    const addon = new FakeAddon();
    const be = new TapBackend({ ifname: 'tap0', queues: 3 }, { addon });
    let n = 0;
    const open = addon.openTap.bind(addon);
    addon.openTap = (o) => {
      if (++n === 2) throw Object.assign(new Error('TUNSETIFF: busy'), { code: 'EBUSY', syscall: 'TUNSETIFF' });
      return open(o);
    };
    await expect(be.init(() => {})).rejects.toMatchObject({ code: ErrorCode.Exists });
    expect(addon.closedFds).toEqual([100]);
  });

  it('without vnet_hdr a vnet header cannot be negotiated', () => {
    const { be } = make();
    expect(() => be.setCapabilities({ vnetHdrLen: 12 })).toThrow(expect.objectContaining({ code: ErrorCode.Unsupported }));
    expect(be.capabilities().supportedOffloads.csum).toBe(false);
  });

  it('vnet_hdr=on with no header negotiated: strips 10 bytes on rx, pads 10 zero bytes on tx', async () => {
    const { addon, be } = make({ vnet_hdr: true });
    const got: Uint8Array[] = [];
    await be.init((f) => got.push(f.slice()));
    const p = addon.pollers[0]!;
    expect(p.txPad).toBe(10);
    p.emit([frame(60, 0x11, 10)]);
    expect(got[0]).toEqual(frame(60, 0x11));
    expect(be.send(frame(60, 0x22))).toBe(Verdict.Delivered);
    expect(p.written[0]).toEqual(frame(60, 0x22, 10));
    await be.close();
  });

  it('vnet_hdr=on with 12 + csum + tso4: TUNSETVNETHDRSZ 12, TUNSETOFFLOAD CSUM|TSO4, num_buffers set to 1', async () => {
    const { addon, be } = make({ vnet_hdr: true });
    await be.init(() => {});
    addon.calls.length = 0;
    const caps = be.setCapabilities({ vnetHdrLen: 12, offloads: { csum: true, tso4: true, ecn: true, ufo: true } });
    expect(caps.offloads).toEqual({ csum: true, tso4: true, tso6: false, ecn: true, ufo: false });
    expect(caps.maxFrameLen).toBe(65535 + 14 + 12);
    expect(addon.calls).toEqual(['vnethdrsz 100 12', 'offload 100 11']);
    const p = addon.pollers[0]!;
    expect(p.txPad).toBe(0);
    const got: Uint8Array[] = [];
    (be as unknown as { rxHandler: (f: Uint8Array) => void }).rxHandler = (f) => got.push(f.slice());
    const f = frame(74, 0x33, 12);
    f[10] = 0xee; // stale bytes the kernel does not overwrite
    f[11] = 0xee;
    p.emit([f]);
    expect([got[0]![10], got[0]![11]]).toEqual([1, 0]);
    // TSO needs checksum offload; ECN needs TSO: dropping csum takes both away.
    expect(be.setCapabilities({ offloads: { csum: false } }).offloads).toMatchObject({ csum: false, tso4: false, ecn: false });
    expect(addon.calls.at(-1)).toBe('offload 100 0');
    await be.close();
  });

  it('queues on EAGAIN (bounded), writes the queue in order when writable, then raises drain once', async () => {
    const { addon, be } = make();
    let drains = 0;
    await be.init(() => {}, { drain: () => drains++ });
    const p = addon.pollers[0]!;
    p.full = true;
    expect(be.send(frame(60, 1))).toBe(Verdict.Queued);
    expect(p.writable).toBe(true);
    for (let i = 1; i < TX_QUEUE_FRAMES; i++) expect(be.send(frame(60, (i + 1) & 0xff))).toBe(Verdict.Queued);
    expect(be.send(frame(60, 9))).toBe(Verdict.Dropped);
    expect(be.stats().drops.backpressure).toBe(1);
    expect(be.stats().extra).toMatchObject({ txQueued: TX_QUEUE_FRAMES });
    p.full = false;
    p.fireWritable();
    expect(p.written.length).toBe(TX_QUEUE_FRAMES);
    expect(p.written.map((w) => w[0])).toEqual(Array.from({ length: TX_QUEUE_FRAMES }, (_, i) => (i + 1) & 0xff));
    expect(drains).toBe(1);
    expect(be.send(frame(60, 3))).toBe(Verdict.Delivered);
    await be.close();
  });

  it('sendBatch writes a batch in one native call and stops at EAGAIN', async () => {
    const { addon, be } = make();
    await be.init(() => {});
    const p = addon.pollers[0]!;
    expect(be.sendBatch([frame(60, 1), frame(61, 2), frame(62, 3)])).toBe(3);
    expect(p.written.map((w) => w.length)).toEqual([60, 61, 62]);
    const write = p.write.bind(p);
    let n = 0;
    p.write = (f, o, l) => (++n === 2 ? -11 : write(f, o, l)); // the second frame hits EAGAIN
    expect(be.sendBatch([frame(60, 4), frame(60, 5), frame(60, 6)])).toBe(2); // 4 written, 5 queued
    expect(be.stats().txFrames).toBe(5);
    expect(be.stats().extra?.txQueued).toBe(1);
    expect(p.writable).toBe(true);
    p.fireWritable();
    expect(p.written.map((w) => w[0])).toEqual([1, 2, 3, 4, 5]);
    await be.close();
  });

  it('pauseRecv/resumeRecv pause and resume every poller', async () => {
    const { addon, be } = make({ queues: 2 });
    be.pauseRecv(); // before init: pollers start paused
    await be.init(() => {});
    expect(addon.pollers.map((p) => p.paused)).toEqual([true, true]);
    be.resumeRecv();
    expect(addon.pollers.map((p) => p.paused)).toEqual([false, false]);
    be.pauseRecv();
    expect(addon.pollers.map((p) => p.paused)).toEqual([true, true]);
    await be.close();
  });

  it('multi-queue tx keeps a flow on one queue and spreads flows across queues', async () => {
    const { addon, be } = make({ queues: 2 });
    await be.init(() => {});
    const udp = (sport: number) => {
      const f = new Uint8Array(60);
      f[12] = 0x08;
      f[14] = 0x45;
      f[23] = 17;
      f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
      f[34] = sport >> 8;
      f[35] = sport & 0xff;
      return f;
    };
    for (let i = 0; i < 3; i++) be.send(udp(1000));
    const [q0, q1] = addon.pollers.map((p) => p.written.length);
    expect([q0, q1].sort()).toEqual([0, 3]);
    for (let port = 2000; port < 2064; port++) be.send(udp(port));
    expect(addon.pollers.every((p) => p.written.length > 10)).toBe(true);
    await be.close();
  });

  it('a poll error is reported through the error event; close is idempotent and closes every poller', async () => {
    const { addon, be } = make({ queues: 2 });
    const errors: Error[] = [];
    await be.init(() => {}, { error: (e) => errors.push(e) });
    addon.pollers[1]!.fireError('EBADFD');
    expect(errors[0]).toMatchObject({ code: ErrorCode.Io });
    expect(be.stats().drops['rx-error']).toBe(1);
    await be.close();
    await be.close();
    expect(addon.pollers.every((p) => p.closed)).toBe(true);
    expect(be.send(frame(60))).toBe(Verdict.Dropped);
  });
});

describe('configureLink (fake addon)', () => {
  it('applies MAC, MTU, up, address and default route in that order, in the namespace', () => {
    const addon = new FakeAddon();
    configureLink({ ifname: 'tap0', netns: 'g', mtu: 65520, mac: '02:00:00:00:00:64', up: true, ipv4: { addr: '10.0.2.100', prefixLen: 24 }, gateway4: '10.0.2.2' }, { addon });
    expect(addon.calls).toEqual(['mac tap0 02:00:00:00:00:64', 'mtu tap0 65520', 'up tap0 true', 'ipv4 tap0 10.0.2.100/24', 'route tap0 10.0.2.2']);
  });
});
