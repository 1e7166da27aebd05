/**
 * Root tier: the tap backend against the Linux kernel, inside network namespaces this file
 * creates (gn-tap*-<pid>) and always deletes. Skipped with a printed reason without root,
 * /dev/net/tun, ip(8) or the built addon; under CI=true that is a failure.
 */
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Verdict } from '@guestnet/core';
import { TapBackend } from './tap-backend.ts';
import { getLink } from './link.ts';
import { Netns, gate, runChild, sh, tapPrereqs, waitFor } from './testing/e2e.ts';
import { arp, ethernet, get16, icmpEcho, ip4Bytes, ipv4, ipv4HeaderOk, macBytes, pattern, sum16 } from './testing/frames.ts';

const canRun = gate('tap e2e', tapPrereqs());
const EXPERIMENTAL = 0x88b5; // IEEE 802 local experimental ethertype: nothing else sends it
const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = join(HERE, '../../..');

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** An rx handler that keeps copies of frames matching `keep`. */
function collector(keep: (f: Uint8Array) => boolean): { frames: Uint8Array[]; rx: (f: Uint8Array) => void } {
  const frames: Uint8Array[] = [];
  return { frames, rx: (f) => void (keep(f) && frames.push(f.slice())) };
}

describe.skipIf(!canRun)('tap backend on a Linux bridge', () => {
  let ns: Netns;
  const backends: TapBackend[] = [];
  beforeAll(() => {
    ns = new Netns('tapbr');
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'br0', 'up');
  });
  afterAll(async () => {
    for (const b of backends) await b.close();
    ns?.remove();
  });

  it('two tap backends exchange frames both ways byte-exact', async () => {
    const a = new TapBackend({ ifname: 'gta', netns: ns.path });
    const b = new TapBackend({ ifname: 'gtb', netns: ns.path });
    backends.push(a, b);
    const isTest = (f: Uint8Array) => f.length >= 14 && get16(f, 12) === EXPERIMENTAL;
    const ca = collector(isTest);
    const cb = collector(isTest);
    await a.init(ca.rx);
    await b.init(cb.rx);
    ns.ip('link', 'set', 'gta', 'master', 'br0');
    ns.ip('link', 'set', 'gtb', 'master', 'br0');
    expect(getLink('gta', ns.path).up).toBe(true);

    const macA = '02:00:00:00:00:0a';
    const macB = '02:00:00:00:00:0b';
    // The bridge ports need a moment to reach forwarding: probe until one frame crosses.
    const probe = ethernet(macB, macA, EXPERIMENTAL, new Uint8Array(46));
    await waitFor(() => {
      a.send(probe);
      return cb.frames.length > 0;
    }, 10_000, 'the bridge to forward');
    await new Promise((r) => setTimeout(r, 50));
    cb.frames.length = 0;
    ca.frames.length = 0;

    const sizes = [60, 61, 128, 577, 1000, 1513, 1514];
    const aToB = sizes.map((n, i) => ethernet(macB, macA, EXPERIMENTAL, pattern(n - 14, i)));
    const bToA = sizes.map((n, i) => ethernet(macA, macB, EXPERIMENTAL, pattern(n - 14, 100 + i)));
    for (const f of aToB) expect(a.send(f)).toBe(Verdict.Delivered);
    expect(b.sendBatch(bToA)).toBe(bToA.length);
    await waitFor(() => cb.frames.length >= aToB.length && ca.frames.length >= bToA.length, 5_000, 'all frames');
    expect(cb.frames.length).toBe(aToB.length);
    expect(ca.frames.length).toBe(bToA.length);
    cb.frames.forEach((f, i) => expect(eq(f, aToB[i]!), `a→b frame ${i} (${sizes[i]} bytes)`).toBe(true));
    ca.frames.forEach((f, i) => expect(eq(f, bToA[i]!), `b→a frame ${i} (${sizes[i]} bytes)`).toBe(true));
    expect(a.stats().txFrames).toBeGreaterThanOrEqual(sizes.length);
    expect(b.stats().rxFrames).toBeGreaterThanOrEqual(sizes.length);
  });
});

describe.skipIf(!canRun)('tap backend with the kernel on the other side', () => {
  let ns: Netns;
  const backends: TapBackend[] = [];
  beforeAll(() => {
    ns = new Netns('tapk');
  });
  afterAll(async () => {
    for (const b of backends) await b.close();
    ns?.remove();
  });

  const ME = { mac: '02:00:00:00:00:02', ip: '10.99.0.2' };
  const KERNEL_IP = '10.99.0.1';

  /** Answers the kernel's ARP requests for ME and collects ARP replies and ICMP echo replies. */
  function peer(be: TapBackend) {
    const arpReplies: Uint8Array[] = [];
    const echoReplies: Uint8Array[] = [];
    const rx = (f: Uint8Array) => {
      const et = get16(f, 12);
      if (et === 0x0806 && f.length >= 42) {
        const op = get16(f, 20);
        if (op === 1 && eq(f.subarray(38, 42), ip4Bytes(ME.ip))) {
          const sha = [...f.subarray(22, 28)].map((x) => x.toString(16).padStart(2, '0')).join(':');
          be.send(ethernet(sha, ME.mac, 0x0806, arp(2, ME.mac, ME.ip, sha, KERNEL_IP)));
        } else if (op === 2) arpReplies.push(f.slice());
      } else if (et === 0x0800 && f.length >= 42 && f[23] === 1 && f[34] === 0) {
        echoReplies.push(f.slice());
      }
    };
    return { rx, arpReplies, echoReplies };
  }

  it('the kernel answers an ARP request and an ICMP echo request sent by the backend', async () => {
    const be = new TapBackend({ ifname: 'gtk', netns: ns.name, mac: '02:00:00:00:01:01', mtu: 1400 });
    backends.push(be);
    const p = peer(be);
    await be.init(p.rx);
    ns.ip('addr', 'add', `${KERNEL_IP}/24`, 'dev', 'gtk');
    const link = getLink('gtk', ns.path);
    expect(link.mac).toBe('02:00:00:00:01:01');
    expect(link.mtu).toBe(1400);
    expect(be.capabilities().mtu).toBe(1400);

    const req = ethernet('ff:ff:ff:ff:ff:ff', ME.mac, 0x0806, arp(1, ME.mac, ME.ip, '00:00:00:00:00:00', KERNEL_IP));
    await waitFor(() => {
      be.send(req);
      return p.arpReplies.length > 0;
    }, 5_000, 'the ARP reply');
    const r = p.arpReplies[0]!;
    expect([...r.subarray(0, 6)]).toEqual([...macBytes(ME.mac)]); // to us
    expect(get16(r, 20)).toBe(2);
    expect([...r.subarray(22, 28)]).toEqual([...macBytes(link.mac)]); // sender: the tap's MAC
    expect([...r.subarray(28, 32)]).toEqual([...ip4Bytes(KERNEL_IP)]);

    const data = pattern(56, 7);
    const echo = ethernet(link.mac, ME.mac, 0x0800, ipv4(ME.ip, KERNEL_IP, 1, icmpEcho(8, 0x4242, 1, data)));
    expect(be.send(echo)).toBe(Verdict.Delivered);
    await waitFor(() => p.echoReplies.length > 0, 5_000, 'the ICMP echo reply');
    const e = p.echoReplies[0]!;
    expect(ipv4HeaderOk(e, 14)).toBe(true);
    expect([...e.subarray(26, 30)]).toEqual([...ip4Bytes(KERNEL_IP)]);
    expect(get16(e, 38)).toBe(0x4242);
    expect(get16(e, 40)).toBe(1);
    expect(sum16(e, 34, e.length - 34)).toBe(0xffff); // ICMP checksum valid
    expect(eq(e.subarray(42), data)).toBe(true);
  });

  it('queues=2 opens two fds on one multi-queue device and carries traffic', async () => {
    const be = new TapBackend({ ifname: 'gtm', netns: ns.path, queues: 2 });
    backends.push(be);
    const p = peer(be);
    await be.init(p.rx);
    ns.ip('addr', 'add', '10.99.1.1/24', 'dev', 'gtm');
    expect(be.queueCount).toBe(2);
    const fds = be.fdList;
    expect(new Set(fds).size).toBe(2);
    for (const fd of fds) {
      expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe('/dev/net/tun');
      expect(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).toMatch(/iff:\s+gtm/);
    }
    const flags = parseInt(ns.exec('cat', '/sys/class/net/gtm/tun_flags').trim(), 16);
    expect(flags & 0x100).toBe(0x100); // IFF_MULTI_QUEUE
    expect(ns.exec('ls', '/sys/class/net/gtm/queues').split(/\s+/).filter((q) => q.startsWith('tx-')).length).toBe(2);
    expect(be.stats().extra?.queues).toBe(2);

    // Several flows (different ICMP ids hash to different queues); every one is answered.
    const mac = getLink('gtm', ns.path).mac;
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    be.send(ethernet('ff:ff:ff:ff:ff:ff', ME.mac, 0x0806, arp(1, ME.mac, '10.99.1.2', '00:00:00:00:00:00', '10.99.1.1')));
    await new Promise((r) => setTimeout(r, 50));
    for (const id of ids) be.send(ethernet(mac, ME.mac, 0x0800, ipv4('10.99.1.2', '10.99.1.1', 1, icmpEcho(8, id, 1, pattern(32, id)), id)));
    // ARP for 10.99.1.2 is learned from our request; answer the kernel if it asks anyway.
    await waitFor(() => new Set(p.echoReplies.map((f) => get16(f, 38))).size === ids.length, 5_000, 'replies on a multi-queue tap');
  });
});

describe.skipIf(!canRun)('tap backend errors and process lifetime', () => {
  let tmp: string;
  let ns: Netns;
  const persistent: string[] = [];
  beforeAll(() => {
    // Under build/ (not the system tmpdir): /tmp is often mounted nodev, and the EPERM test needs
    // a device node that works.
    tmp = mkdtempSync(join(HERE, '../build/e2e-'));
    chmodSync(tmp, 0o755);
    ns = new Netns('tapx');
  });
  afterAll(() => {
    for (const d of persistent) {
      try {
        sh('ip', ['tuntap', 'del', 'dev', d, 'mode', 'tap']);
      } catch {
        // already gone
      }
    }
    ns?.remove();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a missing clone device is GUESTNET_ENODEV', async () => {
    const be = new TapBackend({ ifname: 'gtn', netns: ns.path }, { tunPath: join(tmp, 'no-such-tun') });
    await expect(be.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_ENODEV', hint: expect.stringContaining('modprobe tun') });
  });

  it('a missing namespace is GUESTNET_NOT_FOUND', async () => {
    const be = new TapBackend({ ifname: 'gtn', netns: '/run/netns/gn-does-not-exist' });
    await expect(be.init(() => {})).rejects.toMatchObject({ code: 'GUESTNET_NOT_FOUND' });
  });

  it('an unprivileged user gets GUESTNET_EPERM, and attaches a persistent tap it owns', async () => {
    // A private copy of the clone device, open to everyone (the host's may be 0600): the
    // unprivileged child then reaches TUNSETIFF, where the kernel's permission check is.
    const tun = join(tmp, 'tun');
    sh('mknod', ['-m', '0666', tun, 'c', '10', '200']);
    const owned = `gnown${process.pid % 100000}`;
    sh('ip', ['tuntap', 'add', 'dev', owned, 'mode', 'tap', 'user', '65534']);
    persistent.push(owned);
    const script = join(tmp, 'perm.mts');
    writeFileSync(
      script,
      `import { TapBackend } from ${JSON.stringify(join(HERE, 'index.ts'))};
const out = {};
for (const name of ['gnnotmine${process.pid % 10000}', ${JSON.stringify(owned)}]) {
  try {
    const be = new TapBackend({ ifname: name }, { tunPath: ${JSON.stringify(tun)} });
    await be.init(() => {});
    out[name] = { ok: true, ifname: be.ifname };
    await be.close();
  } catch (e) { out[name] = { code: e.code, hint: e.hint }; }
}
console.log(JSON.stringify(out));
`,
    );
    chmodSync(script, 0o644);
    const r = await runChild(process.execPath, ['--import', 'tsx', script], { timeoutMs: 60_000, uid: 65534, gid: 65534, cwd: REPO });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { ok?: boolean; code?: string; hint?: string }>;
    expect(out[`gnnotmine${process.pid % 10000}`]).toMatchObject({ code: 'GUESTNET_EPERM', hint: expect.stringContaining('ip tuntap add') });
    expect(out[owned]).toEqual({ ok: true, ifname: owned });
    // The persistent device is still there (we attached, we did not create) and still down.
    expect(getLink(owned).up).toBe(false);
  });

  it('an idle tap backend does not keep the process alive', async () => {
    const script = join(tmp, 'idle.mts');
    writeFileSync(
      script,
      `import { TapBackend } from ${JSON.stringify(join(HERE, 'index.ts'))};
const be = new TapBackend({ ifname: 'gtidle', netns: ${JSON.stringify(ns.path)}, vnet_hdr: true, queues: 2 });
await be.init(() => {});
console.log('ready', be.ifname, be.queueCount);
`,
    );
    const r = await runChild(process.execPath, ['--import', 'tsx', script], { timeoutMs: 30_000, cwd: REPO });
    expect(r.signal, 'the child had to be killed: the tap kept it alive').toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ready gtidle 2');
    // Not persistent: the device went away with the process.
    expect(() => getLink('gtidle', ns.path)).toThrow(/does not exist/);
  });

  it('close() is idempotent, runs the downscript, and later sends are dropped as closed', async () => {
    const log = join(tmp, 'script.log');
    const up = join(tmp, 'up.sh');
    const down = join(tmp, 'down.sh');
    writeFileSync(up, `#!/bin/sh\necho "up $1" >> ${log}\n`);
    writeFileSync(down, `#!/bin/sh\necho "down $1" >> ${log}\n`);
    chmodSync(up, 0o755);
    chmodSync(down, 0o755);
    const be = new TapBackend({ ifname: 'gts', netns: ns.path, script: up, downscript: down });
    await be.init(() => {});
    expect(readFileSync(log, 'utf8')).toBe('up gts\n');
    await be.close();
    await be.close();
    expect(readFileSync(log, 'utf8')).toBe('up gts\ndown gts\n');
    expect(be.send(new Uint8Array(60))).toBe(Verdict.Dropped);
    expect(be.stats().drops.closed).toBe(1);
    // The fd is closed in the poll handle's close callback (the loop's close phase).
    const tunFds = () => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/net/tun'; } catch { return false; } });
    await waitFor(() => tunFds().length === 0, 1_000, 'the tap fd to be closed');
  });
});
