/**
 * `guestnet attach` + uip with the Linux kernel as the guest (test tier 3): a network namespace
 * gets a TAP device connected to a uip backend, and the kernel's own tools use it — busybox
 * udhcpc (a lease of 192.168.33.15, router and DNS 192.168.33.1), ping of the gateway, nslookup
 * through 192.168.33.1 (relayed to a DNS server this test runs on 127.0.0.1, never the host's
 * resolver), wget of a host HTTP server through 192.168.33.1, a 100 MiB download verified by
 * sha256, 100 MiB uploaded with iperf3, and a hostfwd from host 127.0.0.1 into the namespace.
 * A second set-up runs the command in-process with --configure (uip's fixed addresses).
 *
 * Safety: every uip here has `allow=127.0.0.0/8` and `dns-upstream=127.0.0.1#PORT`; namespaces
 * are `gn-uip*-<pid>` and deleted in afterAll, processes killed, temp dirs removed. Needs root,
 * /dev/net/tun, busybox, iperf3, ping (iputils), nsenter, and a built @guestnet/tap; skips with
 * the reason otherwise, fails under CI.
 *
 * Budget (2 cores): ~10-30 s (two 100 MiB transfers through a TypeScript proxy at MTU 1500).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeWith, needNetns, needTools, needTun, type Missing } from './lib/prereq.ts';
import { createNetns, deleteAllNetns, type Netns } from './lib/netns.ts';
import { Daemon, killAll } from './lib/proc.ts';
import { freePort, startDnsServer, startHttpServer, tcpRead, type DnsServer, type HttpServer } from './lib/servers.ts';
import { gbps, parseEnvFile, runIperf, startIperfServer, writeUdhcpcScript } from './lib/kernel-guest.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'apps/cli/bin/guestnet.js');
const NAME = 'host.guestnet.test';
const NAME_ADDR = '192.0.2.10'; // TEST-NET-1: only returned by our DNS server, never contacted
const BODY = 'hello from host 127.0.0.1\n';
const NS_REPLY = 'hello-from-ns';
const BIG = 100 * 1024 * 1024;

async function needBackends(): Promise<Missing[]> {
  try {
    const { loadBackend } = await import('../../packages/core/src/index.ts');
    const { importer } = await import('../../apps/cli/src/commands/command.ts');
    await loadBackend('tap', { importer });
    await loadBackend('uip', { importer });
    return [];
  } catch (e) {
    return [{ what: `@guestnet/tap or @guestnet/uip cannot be loaded (${(e as Error).message})`, fix: 'add them to apps/cli and run pnpm install (builds the tap addon)' }];
  }
}

const missing = [...needNetns(), ...needTun(), ...needTools('nsenter', 'busybox', 'iperf3', 'ping'), ...(await needBackends())];

/** An HTTP server on 127.0.0.1 serving `data` at /big. */
async function startBigServer(data: Uint8Array): Promise<{ port: number; close(): Promise<void> }> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
    res.end(data);
  });
  const port = await new Promise<number>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve((srv.address() as AddressInfo).port));
  });
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

describeWith('guestnet attach + uip, the Linux kernel as guest', missing, () => {
  let dns: DnsServer;
  let web: HttpServer;
  let big: { port: number; close(): Promise<void> };
  let bigSha: string;
  let iperfPort: number;
  let tmp: string;

  const uipConfig = (extra = ''): string => `backend=uip,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8${extra}`;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'guestnet-uip-e2e-'));
    dns = await startDnsServer({ [NAME]: { a: NAME_ADDR } });
    web = await startHttpServer(BODY);
    const data = randomBytes(BIG);
    bigSha = createHash('sha256').update(data).digest('hex');
    big = await startBigServer(data);
    iperfPort = await freePort();
    await startIperfServer(iperfPort);
  });

  afterAll(async () => {
    await killAll();
    await deleteAllNetns();
    await dns?.close();
    await web?.close();
    await big?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('spawned CLI, DHCP, hostfwd', () => {
    let ns: Netns;
    let cli: Daemon;
    let hostfwdPort: number;

    beforeAll(async () => {
      ns = await createNetns('uip');
      hostfwdPort = await freePort();
      cli = new Daemon(process.execPath, [CLI, 'attach', '--netns', ns.path, '--tap', 'tap0', uipConfig(`,hostfwd=tcp:127.0.0.1:${hostfwdPort}-:8080`)], { cwd: ROOT });
      await cli.waitFor(/^attached .*$/m, 30_000);
    });

    afterAll(async () => {
      await cli?.stop('SIGKILL');
      await ns?.delete();
    });

    it('prints the ready line for backend=uip', () => {
      expect(cli.stdout).toMatch(new RegExp(`^attached tap0 in ${ns.path} to backend=uip.*\\(mtu 1500, vnet_hdr off, guest uses DHCP\\)\\n$`));
      console.log(`attach: ${cli.stdout.trim()}`);
    });

    it('busybox udhcpc gets the fixed lease 192.168.33.15, router and DNS 192.168.33.1', async () => {
      const { script, leaseFile } = writeUdhcpcScript(tmp);
      await ns.execOk('busybox', ['udhcpc', '-i', 'tap0', '-f', '-n', '-q', '-t', '10', '-T', '1', '-s', script], { timeoutMs: 30_000 });
      const lease = parseEnvFile(readFileSync(leaseFile, 'utf8'));
      expect(lease).toMatchObject({ ip: '192.168.33.15', router: '192.168.33.1', dns: '192.168.33.1' });
      expect(lease.mask === '24' || lease.subnet === '255.255.255.0').toBe(true);
      const addr = await ns.ip(['-4', '-o', 'addr', 'show', 'dev', 'tap0']);
      expect(addr.stdout).toContain('inet 192.168.33.15/24');
      await ns.ip(['link', 'set', 'lo', 'up']);
    });

    it('pings the gateway 192.168.33.1', async () => {
      const r = await ns.execOk('ping', ['-c', '3', '-i', '0.2', '-W', '2', '192.168.33.1'], { timeoutMs: 15_000 });
      expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    });

    it('resolves a name through 192.168.33.1, answered by the test resolver on 127.0.0.1', async () => {
      const before = dns.queries.length;
      const r = await ns.execOk('busybox', ['nslookup', NAME, '192.168.33.1'], { timeoutMs: 15_000 });
      expect(r.stdout).toContain(NAME_ADDR);
      expect(dns.queries.slice(before)).toContain(`${NAME}/A`);
    });

    it('fetches a host 127.0.0.1 HTTP server through 192.168.33.1 with wget', async () => {
      const before = web.requests;
      const r = await ns.execOk('busybox', ['wget', '-q', '-O', '-', `http://192.168.33.1:${web.port}/`], { timeoutMs: 15_000 });
      expect(r.stdout).toBe(BODY);
      expect(web.requests).toBe(before + 1);
    });

    it('downloads 100 MiB host → guest with wget, sha256 verified', async () => {
      const t0 = Date.now();
      const r = await ns.execOk('sh', ['-c', `busybox wget -q -O - http://192.168.33.1:${big.port}/big | busybox sha256sum`], { timeoutMs: 120_000 });
      const s = (Date.now() - t0) / 1000;
      console.log(`uip: 100 MiB host → guest in ${s.toFixed(1)} s (${gbps((BIG * 8) / s)})`);
      expect(r.stdout.split(/\s+/)[0]).toBe(bigSha);
    });

    it('moves 100 MiB guest → host with iperf3 -n 100M', async () => {
      const r = await runIperf(ns, '192.168.33.1', iperfPort, '100M', false, 120_000);
      console.log(`uip: iperf3 guest → host ${gbps(r.bitsPerSecond)} (${(r.sentBytes / 2 ** 20).toFixed(0)} MiB in ${r.seconds.toFixed(1)} s)`);
      expect(r.sentBytes).toBeGreaterThanOrEqual(BIG);
      expect(r.bytes).toBeGreaterThanOrEqual(BIG * 0.98);
    });

    it('forwards host 127.0.0.1:hostport into a server in the namespace (hostfwd)', async () => {
      const srv = ns.spawn(process.execPath, ['-e', `require('net').createServer((s) => s.end('${NS_REPLY}\\n')).listen(8080, '0.0.0.0', () => console.log('LISTENING'))`]);
      try {
        await srv.waitFor(/LISTENING/);
        expect(await tcpRead(hostfwdPort)).toBe(`${NS_REPLY}\n`);
      } finally {
        await srv.stop('SIGKILL');
      }
    });

    it('exits 0 on SIGTERM', async () => {
      expect(await cli.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null });
    });
  });

  describe('in-process attach, --configure', () => {
    let ns: Netns;
    let att: Awaited<ReturnType<typeof import('../../apps/cli/src/commands/attach.ts').startAttach>>;

    beforeAll(async () => {
      const { startAttach } = await import('../../apps/cli/src/commands/attach.ts');
      ns = await createNetns('uipcfg');
      att = await startAttach({ netns: ns.path, tap: 'tap0', configure: true, config: uipConfig() });
      console.log(`attach: ${att.line}`);
    });

    afterAll(async () => {
      await att?.close();
      await ns?.delete();
    });

    it('configures uip\'s fixed addresses: 192.168.33.15/24 via 192.168.33.1', async () => {
      expect(att.configured).toEqual({ address: '192.168.33.15', prefixLen: 24, gateway: '192.168.33.1', dns: '192.168.33.1' });
      const route = await ns.ip(['-4', 'route', 'show', 'default']);
      expect(route.stdout).toMatch(/default via 192\.168\.33\.1 dev tap0/);
    });

    it('fetches the host HTTP server through the gateway', async () => {
      const r = await ns.execOk('busybox', ['wget', '-q', '-O', '-', `http://192.168.33.1:${web.port}/`], { timeoutMs: 15_000 });
      expect(r.stdout).toBe(BODY);
    });
  });
});
