/**
 * `guestnet serve` under a real hypervisor: QEMU (TCG, no KVM needed) boots a Debian cloud kernel
 * with a busybox initramfs (guest-image.ts) whose virtio-net NIC is connected to `guestnet serve`
 * — once over `-netdev stream` (unix socket), once over `-netdev dgram` (UDP on 127.0.0.1). The
 * guest checks DHCP, DNS through 10.0.2.3, UDP NAT (DNS and a TFTP echo), HTTP and a 50 MB
 * download checked by sha256, ping of the gateway, and hostfwd into a guest listener: one rule
 * from the config, one added (and removed) at run time through serve's control socket.
 *
 * Network safety: the guest only addresses 10.0.2.2 (→ host 127.0.0.1) and 10.0.2.3 (→ the
 * test's resolver on 127.0.0.1); the backend runs with allow=127.0.0.0/8 and the DNS name's
 * address is TEST-NET-1 (never contacted). Needs: qemu-system-x86_64, apt-get/dpkg (first build
 * of the guest only). About 12 s per protocol on 2 cores, ~24 s for the file once the image is cached.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage, defaultCacheDir, type GuestImage } from './guest-image.ts';
import { bootGuest, controlRequest, freeTcpPort, freeUdpPort, hostfwdExchange, killAll, portRefuses, startServe, type GuestResult, type GuestRun, type Serve } from './harness.ts';
import { startDnsServer, startHttpServer, startTftpEchoServer, type DnsServer, type HttpServer, type TftpEchoServer } from './host-services.ts';
import { checkPrereqs, onPath, requirePrereqs } from './prereq.ts';

const TEST_NAME = 'gn-e2e.test';
const TEST_ADDR = '192.0.2.55';
const BIG_BYTES = 50 * 1024 * 1024;
const GUEST_FWD_PORT = 2222;
// Boot ~2 s, all checks ~8 s under TCG on 2 cores; the guest's own timeouts (udhcpc, wget 60 s,
// nc 30 s) end a stuck check well before this.
const BOOT_TIMEOUT_MS = 120_000;

const pre = checkPrereqs(
  [
    { bin: 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
    { bin: 'dpkg', pkg: 'dpkg' },
  ],
  [onPath('apt-get') && onPath('apt-cache') ? null : 'apt-get/apt-cache are needed to build the guest image (Debian/Ubuntu host)', process.arch === 'x64' ? null : `host arch ${process.arch}: the guest is amd64`],
);
const canRun = requirePrereqs('qemu-serve.e2e', pre);

let image: GuestImage;
let dns: DnsServer;
let http: HttpServer;
let tftp: TftpEchoServer;
let workDir: string;

beforeAll(async () => {
  if (!canRun) return;
  workDir = await mkdtemp(join(tmpdir(), 'gn-qemu-'));
  const [img, d, h, t] = await Promise.all([
    buildGuestImage({ log: (m) => console.log(`[guest-image] ${m}`) }),
    startDnsServer(TEST_NAME, TEST_ADDR),
    startHttpServer(`token-${randomBytes(6).toString('hex')}`, BIG_BYTES),
    startTftpEchoServer(),
  ]);
  image = img;
  dns = d;
  http = h;
  tftp = t;
  console.log(`[timing] guest image ${image.built ? 'built' : 'from cache'} in ${image.ms} ms (${image.kernelPackage} ${image.kernelVersion}, cache ${defaultCacheDir()})`);
});

afterAll(async () => {
  killAll();
  await Promise.all([dns?.close(), http?.close(), tftp?.close()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

interface ControlCheck {
  /** The port serve bound for the rule added at run time (host_port 0). */
  port: number;
  reply: string;
  /** list_hostfwd after remove_hostfwd still showed the rule. */
  listedAfterRemove: boolean;
  /** Connecting to the port after remove_hostfwd was refused. */
  refusedAfterRemove: boolean;
}

interface ProtocolRun {
  run: GuestRun;
  serve: Serve;
  hostfwdReply: string | null;
  control: ControlCheck | null;
  nonce: string;
}

interface ListedRule {
  id: number;
  host_port?: number;
  guest_port: number;
  active: boolean;
}

/** Add a forward at run time through the control socket, use it, remove it, check it is gone. */
async function controlHostfwd(path: string, nonce: string): Promise<ControlCheck> {
  const added = (await controlRequest(path, 'add_hostfwd', { proto: 'tcp', host_addr: '127.0.0.1', host_port: 0, guest_port: GUEST_FWD_PORT })) as { id: number };
  const listed = ((await controlRequest(path, 'list_hostfwd')) as { entries: ListedRule[] }).entries;
  const mine = listed.find((e) => e.id === added.id);
  if (!mine?.host_port || !mine.active) throw new Error(`list_hostfwd does not show rule ${added.id} bound: ${JSON.stringify(listed)}`);
  const reply = await hostfwdExchange(mine.host_port, `${nonce}-ctl`, 20_000);
  await controlRequest(path, 'remove_hostfwd', { id: added.id });
  const after = ((await controlRequest(path, 'list_hostfwd')) as { entries: ListedRule[] }).entries;
  return {
    port: mine.host_port,
    reply,
    listedAfterRemove: after.some((e) => e.id === added.id),
    refusedAfterRemove: await portRefuses(mine.host_port),
  };
}

async function runProtocol(protocol: 'stream' | 'dgram'): Promise<ProtocolRun> {
  const hostFwdPort = await freeTcpPort();
  const config = `backend=slirp,dns-upstream=127.0.0.1#${dns.port},allow=127.0.0.0/8,hostfwd=tcp:127.0.0.1:${hostFwdPort}-:${GUEST_FWD_PORT}`;
  let listen: string;
  let qemuPort: number | undefined;
  if (protocol === 'stream') {
    listen = `unix:${join(workDir, `serve-${protocol}.sock`)}`;
  } else {
    // The real serve picks QEMU's local port itself (--remote); the stand-in is given one.
    listen = `udp:127.0.0.1:${await freeUdpPort()}`;
    qemuPort = await freeUdpPort();
  }
  const serve = await startServe({ protocol, listen, config, qemuPort, control: join(workDir, `control-${protocol}.sock`) });
  console.log(`[timing] ${protocol}: guestnet serve (${serve.real ? 'real' : 'stand-in'}) ready in ${serve.startMs} ms; -netdev ${serve.netdev}`);
  const nonce = randomBytes(8).toString('hex');
  let hostfwdReply: string | null = null;
  let control: ControlCheck | null = null;
  try {
    const run = await bootGuest({
      image,
      netdev: serve.netdev,
      netdevId: serve.netdevId,
      params: {
        http: http.port,
        token: http.token,
        bigsha: http.bigSha256,
        name: TEST_NAME,
        addr: TEST_ADDR,
        dnsport: dns.port,
        tftp: tftp.port,
        fwdport: GUEST_FWD_PORT,
        fwdn: serve.controlPath ? 2 : 1,
        nonce,
      },
      timeoutMs: BOOT_TIMEOUT_MS,
      onReady: async (name) => {
        if (name !== 'hostfwd') return;
        hostfwdReply = await hostfwdExchange(hostFwdPort, `${nonce}-cfg`, 20_000);
        if (serve.controlPath) control = await controlHostfwd(serve.controlPath, nonce);
      },
      echo: process.env.GUESTNET_E2E_VERBOSE ? (l) => console.log(`[guest ${protocol}] ${l}`) : undefined,
    });
    const checks = [...run.results.values()].map((r) => `${r.name}=${r.ok ? 'ok' : 'FAIL'}@${r.t}s`).join(' ');
    console.log(`[timing] ${protocol}: qemu wall ${run.wallMs} ms, /init at ${run.bootT}s, checks done at ${run.doneT}s guest uptime; ${checks}`);
    const dl = run.results.get('download');
    if (dl) console.log(`[timing] ${protocol}: 50 MB download: ${dl.detail}`);
    if (!run.doneT || [...run.results.values()].some((r) => !r.ok) || run.readyErrors.length) {
      console.log(`[guest ${protocol}] console:\n${run.lines.join('\n')}\n[serve]\n${serve.output.join('\n')}`);
    }
    return { run, serve, hostfwdReply, control, nonce };
  } finally {
    const code = await serve.stop();
    if (code !== 0 && code !== null) console.log(`[serve ${protocol}] exited ${code}:\n${serve.output.join('\n')}`);
  }
}

function result(p: ProtocolRun, name: string): GuestResult {
  const r = p.run.results.get(name);
  expect(r, `guest printed no result for ${name} (timed out: ${p.run.timedOut})`).toBeDefined();
  return r!;
}

for (const protocol of ['stream', 'dgram'] as const) {
  describe.skipIf(!canRun)(`QEMU guest on guestnet serve --protocol ${protocol}`, () => {
    let p: ProtocolRun;
    beforeAll(async () => {
      p = await runProtocol(protocol);
    });

    it('boots, runs every check and powers off within the time limit', () => {
      expect(p.run.timedOut).toBe(false);
      expect(p.run.doneT).not.toBeNull();
      expect(p.run.exitCode).toBe(0);
    });

    it('gets DHCP lease 10.0.2.15 with router .2 and DNS .3 from the backend', () => {
      const r = result(p, 'dhcp');
      expect(r.ok, r.detail).toBe(true);
      expect(r.detail).toContain('ip=10.0.2.15');
      expect(r.detail).toContain('router=10.0.2.2');
      expect(r.detail).toContain('dns=10.0.2.3');
    });

    it('resolves the test name through 10.0.2.3, relayed to the host resolver', () => {
      const r = result(p, 'dns');
      expect(r.ok, r.detail).toBe(true);
      expect(dns.queries).toContain(`${TEST_NAME}/1`);
    });

    it('reaches a host UDP service through the gateway (DNS query to 10.0.2.2:port)', () => {
      const r = result(p, 'udp-dns');
      expect(r.ok, r.detail).toBe(true);
    });

    it('fetches /hello over HTTP from host 127.0.0.1 via 10.0.2.2', () => {
      const r = result(p, 'http');
      expect(r.ok, r.detail).toBe(true);
      expect(r.detail).toBe(`body=${http.token}`);
    });

    it('downloads 50 MB with the sha256 the host computed', () => {
      const r = result(p, 'download');
      expect(r.ok, r.detail).toBe(true);
      expect(r.detail).toContain(`sha256=${http.bigSha256}`);
    });

    it('round-trips 256 KiB over UDP (TFTP put then get) with the host seeing the same bytes', () => {
      const r = result(p, 'udp');
      expect(r.ok, r.detail).toBe(true);
      const sha = /sha256=([0-9a-f]{64})/.exec(r.detail)?.[1];
      const stored = tftp.files.get(`echo-${p.nonce}.bin`);
      expect(stored?.length).toBe(262144);
      expect(createHash('sha256').update(stored!).digest('hex')).toBe(sha);
    });

    it('pings the gateway 10.0.2.2', () => {
      const r = result(p, 'ping');
      expect(r.ok, r.detail).toBe(true);
      expect(r.detail).toMatch(/3 packets received/);
    });

    it('forwards host 127.0.0.1:port (config hostfwd=) to a listener in the guest, both directions', () => {
      expect(p.run.readyErrors).toEqual([]);
      expect(p.hostfwdReply).toBe(`pong ${p.nonce}-cfg`);
      const r = result(p, 'hostfwd');
      expect(r.ok, r.detail).toBe(true);
      expect(r.detail).toContain(`${p.nonce}-cfg,`);
    });

    it('adds, uses, lists and removes a hostfwd at run time through the control socket', (ctx) => {
      if (!p.serve.controlPath) {
        console.warn('the stand-in serve has no control socket: skipped');
        ctx.skip();
      }
      expect(p.run.readyErrors).toEqual([]);
      expect(p.control).not.toBeNull();
      expect(p.control!.reply).toBe(`pong ${p.nonce}-ctl`);
      expect(result(p, 'hostfwd').detail).toContain(`${p.nonce}-ctl,`);
      expect(p.control!.listedAfterRemove).toBe(false);
      expect(p.control!.refusedAfterRemove).toBe(true);
    });
  });
}
