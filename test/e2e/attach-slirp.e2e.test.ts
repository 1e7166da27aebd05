/**
 * `guestnet attach` + slirp with the Linux kernel as the guest (test tier 3): a network namespace
 * gets a TAP device connected to a slirp backend, and the kernel's own tools use it — busybox
 * udhcpc (our DHCP), ping (ICMP to the gateway), nslookup through 10.0.2.3 (relayed to a DNS
 * server this test runs on 127.0.0.1, never the host's resolver), wget of a host HTTP server
 * through 10.0.2.2, a hostfwd from host 127.0.0.1 into a server in the namespace, IPv6 SLAAC +
 * ping6 of fec0::2, and iperf3 moving 1 GB each way at MTU 1500 and 65520.
 *
 * Three set-ups: the CLI spawned (DHCP, MTU 1500, vnet_hdr negotiated: TSO/GSO super-frames),
 * the command in-process with --configure at MTU 65520, and --configure with vnet_hdr off (plain
 * frames, for the throughput comparison). Throughput is printed (console.log).
 *
 * Safety: every slirp here has `allow=127.0.0.0/8` and `dns-upstream=127.0.0.1#PORT`; the
 * namespaces are `gn-attach*-<pid>` and deleted in afterAll, processes are killed, temp dirs
 * removed. Needs root, /dev/net/tun, busybox, iperf3, ping (iputils), nsenter, and a built
 * @guestnet/tap; skips with the reason otherwise, fails under CI.
 *
 * Budget (2 cores): ~1-3 min, dominated by the 6 GB of iperf3 transfers. GUESTNET_E2E_IPERF_BYTES
 * (e.g. 200M) shortens them for local iteration.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeWith, needNetns, needTools, needTun, type Missing } from './lib/prereq.ts';
import { createNetns, deleteAllNetns, type Netns } from './lib/netns.ts';
import { Daemon, killAll, runOk } from './lib/proc.ts';
import { freePort, startDnsServer, startHttpServer, tcpRead, type DnsServer, type HttpServer } from './lib/servers.ts';
import { gbps, slaacIpv6, parseEnvFile, runIperf, startIperfServer, writeUdhcpcScript, type IperfResult } from './lib/kernel-guest.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'apps/cli/bin/guestnet.js');
const IPERF_BYTES = process.env.GUESTNET_E2E_IPERF_BYTES ?? '1G';
/** iperf3's size notation (K/M/G are powers of 1024) in bytes. */
function iperfBytes(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`GUESTNET_E2E_IPERF_BYTES=${s}: expected e.g. 1G or 200M`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}
const IPERF_MIN_BYTES = iperfBytes(IPERF_BYTES);
const IPERF_TIMEOUT = 240_000;
const NAME = 'host.guestnet.test';
const NAME_ADDR = '192.0.2.10'; // TEST-NET-1: only returned by our DNS server, never contacted
const BODY = 'hello from host 127.0.0.1\n';
const NS_REPLY = 'hello-from-ns';

async function needTapBackend(): Promise<Missing[]> {
  try {
    const { loadBackend } = await import('../../packages/core/src/index.ts');
    const { importer } = await import('../../apps/cli/src/commands/command.ts');
    await loadBackend('tap', { importer });
    return [];
  } catch (e) {
    return [{ what: `@guestnet/tap cannot be loaded (${(e as Error).message})`, fix: 'add @guestnet/tap to apps/cli and run pnpm install (builds the addon)' }];
  }
}

const missing = [...needNetns(), ...needTun(), ...needTools('nsenter', 'unshare', 'busybox', 'iperf3', 'ping'), ...(await needTapBackend())];

/** Throughput numbers collected for the summary printed at the end. */
const results: string[] = [];

function record(label: string, r: IperfResult): void {
  const line = `${label}: ${gbps(r.bitsPerSecond)} (${(r.sentBytes / 1024 ** 3).toFixed(2)} GiB in ${r.seconds.toFixed(1)} s, ${r.retransmits} retransmits)`;
  console.log(`iperf3 ${line}`);
  results.push(line);
}

/** All of -n was sent, and the receiver's tally (closed while the tail is in flight) has ≥ 98% of it. */
function expectMoved(r: IperfResult): void {
  expect(r.sentBytes).toBeGreaterThanOrEqual(IPERF_MIN_BYTES);
  expect(r.bytes).toBeGreaterThanOrEqual(IPERF_MIN_BYTES * 0.98);
}

describeWith('guestnet attach + slirp, the Linux kernel as guest', missing, () => {
  let dns: DnsServer;
  let web: HttpServer;
  let iperfPort: number;
  let tmp: string;

  const slirpConfig = (extra = ''): string => `backend=slirp,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8${extra}`;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'guestnet-attach-e2e-'));
    dns = await startDnsServer({ [NAME]: { a: NAME_ADDR } });
    web = await startHttpServer(BODY);
    iperfPort = await freePort();
    await startIperfServer(iperfPort);
  });

  afterAll(async () => {
    await killAll();
    await deleteAllNetns();
    await dns?.close();
    await web?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (results.length) console.log(`attach + slirp throughput summary:\n  ${results.join('\n  ')}`);
  });

  /** The checks every set-up runs once the namespace has IPv4 connectivity. */
  function commonChecks(get: () => { ns: Netns; hostfwdPort: number; label: string }) {
    it('pings the gateway 10.0.2.2', async () => {
      const { ns } = get();
      const r = await ns.execOk('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.0.2.2'], { timeoutMs: 15_000 });
      expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    });

    it('resolves a name through 10.0.2.3, answered by the test resolver on 127.0.0.1', async () => {
      const { ns } = get();
      const before = dns.queries.length;
      const r = await ns.execOk('busybox', ['nslookup', NAME, '10.0.2.3'], { timeoutMs: 15_000 });
      expect(r.stdout).toContain(NAME_ADDR);
      expect(dns.queries.slice(before)).toContain(`${NAME}/A`);
    });

    it('fetches a host 127.0.0.1 HTTP server through the gateway with wget', async () => {
      const { ns } = get();
      const before = web.requests;
      // No `-T`: Debian 12's busybox-static 1.35 wget segfaults with it; runOk bounds the time.
      const r = await ns.execOk('busybox', ['wget', '-q', '-O', '-', `http://10.0.2.2:${web.port}/`], { timeoutMs: 15_000 });
      expect(r.stdout).toBe(BODY);
      expect(web.requests).toBe(before + 1);
    });

    it('forwards host 127.0.0.1:hostport into a server in the namespace (hostfwd)', async () => {
      const { ns, hostfwdPort } = get();
      const srv = ns.spawn(process.execPath, [
        '-e',
        `require('net').createServer((s) => s.end('${NS_REPLY}\\n')).listen(8080, '0.0.0.0', () => console.log('LISTENING'))`,
      ]);
      try {
        await srv.waitFor(/LISTENING/);
        expect(await tcpRead(hostfwdPort)).toBe(`${NS_REPLY}\n`);
      } finally {
        await srv.stop('SIGKILL');
      }
    });

    it('gets an IPv6 address by SLAAC from our router advertisements and pings fec0::2', async () => {
      const { ns } = get();
      const addrs = await ns.waitFor('a SLAAC address in fec0::/64', async () => {
        const a = (await slaacIpv6(ns, 'tap0')).filter((x) => x.startsWith('fec0:'));
        return a.length ? a : undefined;
      }, 30_000);
      expect(addrs[0]).toMatch(/^fec0::/);
      const r = await ns.execOk('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', 'fec0::2'], { timeoutMs: 15_000 });
      expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    });

    it(`moves ${IPERF_BYTES} guest → host with iperf3 without error`, async () => {
      const { ns, label } = get();
      const r = await runIperf(ns, '10.0.2.2', iperfPort, IPERF_BYTES, false, IPERF_TIMEOUT);
      record(`${label} guest→host`, r);
      expectMoved(r);
    });

    it(`moves ${IPERF_BYTES} host → guest with iperf3 -R without error`, async () => {
      const { ns, label } = get();
      const r = await runIperf(ns, '10.0.2.2', iperfPort, IPERF_BYTES, true, IPERF_TIMEOUT);
      record(`${label} host→guest`, r);
      expectMoved(r);
    });
  }

  describe('spawned CLI, DHCP, MTU 1500, vnet_hdr auto', () => {
    let ns: Netns;
    let cli: Daemon;
    let hostfwdPort: number;
    let readyFd = '';
    let label = 'MTU 1500';

    beforeAll(async () => {
      ns = await createNetns('attach');
      hostfwdPort = await freePort();
      cli = new Daemon(
        process.execPath,
        [CLI, 'attach', '--netns', ns.path, '--tap', 'tap0', '--ready-fd', '3', slirpConfig(`,hostfwd=tcp:127.0.0.1:${hostfwdPort}-:8080`)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
      );
      const fd3 = cli.child.stdio[3] as NodeJS.ReadableStream;
      fd3.setEncoding('utf8');
      fd3.on('data', (d: string) => (readyFd += d));
      const m = await cli.waitFor(/^attached .*$/m, 30_000);
      const vnet = /vnet_hdr (\d+)/.exec(m[0]);
      label = `MTU 1500, ${vnet ? `vnet_hdr ${vnet[1]} (TSO/GSO)` : 'vnet_hdr off'}, spawned CLI`;
    });

    afterAll(async () => {
      await cli?.stop('SIGKILL');
      await ns?.delete();
    });

    it('prints one ready line and writes READY to --ready-fd', async () => {
      expect(cli.stdout).toMatch(new RegExp(`^attached tap0 in ${ns.path} to backend=slirp.*\\(mtu 1500, .*guest uses DHCP\\)\\n$`));
      await new Promise((r) => setTimeout(r, 100));
      expect(readyFd).toBe('READY\n');
      console.log(`attach: ${cli.stdout.trim()}`);
    });

    it('busybox udhcpc gets a lease from slirp DHCP and applies it', async () => {
      const { script, leaseFile } = writeUdhcpcScript(tmp);
      await ns.execOk('busybox', ['udhcpc', '-i', 'tap0', '-f', '-n', '-q', '-t', '10', '-T', '1', '-s', script], { timeoutMs: 30_000 });
      const lease = parseEnvFile(readFileSync(leaseFile, 'utf8'));
      expect(lease).toMatchObject({ ip: '10.0.2.15', router: '10.0.2.2', dns: '10.0.2.3' });
      expect(lease.mask === '24' || lease.subnet === '255.255.255.0').toBe(true);
      const addr = await ns.ip(['-4', '-o', 'addr', 'show', 'dev', 'tap0']);
      expect(addr.stdout).toContain('inet 10.0.2.15/24');
      const route = await ns.ip(['-4', 'route', 'show', 'default']);
      expect(route.stdout).toMatch(/default via 10\.0\.2\.2 dev tap0/);
    });

    commonChecks(() => ({ ns, hostfwdPort, label }));

    it('exits 0 on SIGTERM, and the TAP device goes away with it', async () => {
      const exit = await cli.stop('SIGTERM', 10_000);
      expect(exit).toEqual({ code: 0, signal: null });
      const link = await ns.exec('ip', ['link', 'show', 'tap0']);
      expect(link.code).not.toBe(0);
    });
  });

  describe('in-process attach, --configure, MTU 65520', () => {
    let ns: Netns;
    let hostfwdPort: number;
    let att: Awaited<ReturnType<typeof import('../../apps/cli/src/commands/attach.ts').startAttach>>;
    let label = 'MTU 65520';

    beforeAll(async () => {
      const { startAttach } = await import('../../apps/cli/src/commands/attach.ts');
      ns = await createNetns('attach65k');
      hostfwdPort = await freePort();
      att = await startAttach({
        netns: ns.path,
        tap: 'tap0',
        mtu: 65520,
        configure: true,
        config: slirpConfig(`,hostfwd=tcp:127.0.0.1:${hostfwdPort}-10.0.2.100:8080`),
      });
      const s = att.connection.stats();
      label = `MTU 65520, ${s.vnetHdrLen ? `vnet_hdr ${s.vnetHdrLen} (TSO/GSO)` : 'vnet_hdr off'}, in-process`;
      console.log(`attach: ${att.line}`);
    });

    afterAll(async () => {
      await att?.close();
      await ns?.delete();
    });

    it('configures the slirp defaults inside the namespace: .100/24, default via .2, MTU 65520', async () => {
      expect(att.configured).toEqual({ address: '10.0.2.100', prefixLen: 24, gateway: '10.0.2.2', dns: '10.0.2.3' });
      const addr = await ns.ip(['-4', '-o', 'addr', 'show', 'dev', 'tap0']);
      expect(addr.stdout).toContain('inet 10.0.2.100/24');
      const route = await ns.ip(['-4', 'route', 'show', 'default']);
      expect(route.stdout).toMatch(/default via 10\.0\.2\.2 dev tap0/);
      const link = await ns.ip(['-o', 'link', 'show', 'dev', 'tap0']);
      expect(link.stdout).toMatch(/<[^>]*\bUP\b[^>]*> mtu 65520 /);
      expect(att.line).toMatch(/^attached tap0 in .* \(mtu 65520, .*guest 10\.0\.2\.100\/24 via 10\.0\.2\.2, dns 10\.0\.2\.3\)$/);
    });

    commonChecks(() => ({ ns, hostfwdPort, label }));

    it('carried the traffic through the cable, dropping nothing beyond the start-up window', () => {
      const s = att.connection.stats();
      console.log(`attach stats (MTU 65520): tap→slirp ${JSON.stringify(s.aToB)}, slirp→tap ${JSON.stringify(s.bToA)}, tap drops ${JSON.stringify(s.a.drops)}, slirp drops ${JSON.stringify(s.b.drops)}`);
      expect(s.aToB.notReady + s.aToB.dropped).toBeLessThan(10);
      expect(s.aToB.frames).toBeGreaterThan(1000);
      expect(s.bToA.frames).toBeGreaterThan(1000);
    });
  });

  describe('spawned CLI, --netns PID of an unshare(1)d process, --configure', () => {
    let owner: Daemon;
    let cli: Daemon;
    let nsPath: string;

    beforeAll(async () => {
      // slirp4netns' use: a process in a fresh network namespace, networked by its PID.
      owner = new Daemon('unshare', ['--net', '--', 'sleep', '120']);
      const pid = owner.child.pid!;
      nsPath = `/proc/${pid}/ns/net`;
      cli = new Daemon(process.execPath, [CLI, 'attach', '--netns', String(pid), '--tap', 'tap0', '--configure', slirpConfig()], { cwd: ROOT });
      await cli.waitFor(/^attached .*$/m, 30_000);
    });

    afterAll(async () => {
      await cli?.stop('SIGKILL');
      await owner?.stop('SIGKILL');
    });

    it('reaches the gateway from inside the process namespace', async () => {
      expect(cli.stdout).toContain(`attached tap0 in ${nsPath} to backend=slirp`);
      const r = await runOk('nsenter', [`--net=${nsPath}`, '--', 'busybox', 'wget', '-q', '-O', '-', `http://10.0.2.2:${web.port}/`], { timeoutMs: 15_000 });
      expect(r.stdout).toBe(BODY);
    });

    it('exits 0 by itself once that process has exited', async () => {
      await owner.stop('SIGKILL');
      const t0 = Date.now();
      const exit = await Promise.race([cli.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(5_000);
    });
  });

  describe('in-process attach, --configure, MTU 1500, vnet_hdr off (plain frames, for comparison)', () => {
    let ns: Netns;
    let att: Awaited<ReturnType<typeof import('../../apps/cli/src/commands/attach.ts').startAttach>>;

    beforeAll(async () => {
      const { startAttach } = await import('../../apps/cli/src/commands/attach.ts');
      ns = await createNetns('attachplain');
      att = await startAttach({ netns: ns.path, tap: 'tap0', configure: true, vnetHdr: 'off', config: slirpConfig() });
      console.log(`attach: ${att.line}`);
    });

    afterAll(async () => {
      await att?.close();
      await ns?.delete();
    });

    it('runs without a virtio-net header', () => {
      expect(att.connection.stats().vnetHdrLen).toBe(0);
      expect(att.line).toContain('vnet_hdr off');
    });

    it(`moves ${IPERF_BYTES} each way with iperf3`, async () => {
      const up = await runIperf(ns, '10.0.2.2', iperfPort, IPERF_BYTES, false, IPERF_TIMEOUT);
      record('MTU 1500, vnet_hdr off, in-process guest→host', up);
      const down = await runIperf(ns, '10.0.2.2', iperfPort, IPERF_BYTES, true, IPERF_TIMEOUT);
      record('MTU 1500, vnet_hdr off, in-process host→guest', down);
      expectMoved(up);
      expectMoved(down);
    });
  });
});
