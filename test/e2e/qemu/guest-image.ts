/**
 * Builds the QEMU e2e guest: a Debian cloud kernel plus a busybox initramfs whose /init loads the
 * virtio-net modules, runs /test.sh (the network checks) and powers off.
 *
 * Inputs are Debian packages fetched with `apt-get download` (the only network access, through
 * apt's configured mirrors): the package `linux-image-cloud-amd64` depends on (a metapackage; the
 * real one is e.g. `linux-image-6.1.0-56-cloud-amd64`) and `busybox-static`. Both are unpacked
 * with `dpkg -x`; the initramfs is written here as a newc cpio archive and gzipped with node:zlib,
 * so neither `cpio` nor `gzip` is needed on the host. Compressed modules (.ko.xz / .ko.zst) are
 * decompressed at build time with `xz` / `zstd`, since busybox insmod cannot be relied on to.
 *
 * Cache: `$GUESTNET_E2E_CACHE` or `~/.cache/guestnet-e2e/<key>/{vmlinuz,initrd.gz,meta.json}`,
 * the key hashing the two package versions, /init, /test.sh and the builder's format version.
 * A rerun costs two `apt-cache` queries; with apt unusable (offline), the newest cached build
 * with the same scripts is used.
 *
 * The guest's checks are parameterised on the kernel command line (`gn.KEY=VALUE`, read from
 * /proc/cmdline), so ports and checksums change per run without rebuilding. It prints
 * machine-readable lines on the serial console:
 *   GN-BOOT t=SECS                       /init started
 *   GN-READY name=hostfwd port=N t=SECS  the guest listens; the host may connect now
 *   GN-RESULT name=N ok=0|1 t=SECS detail=REST-OF-LINE
 *   GN-DONE t=SECS                       all checks ran; poweroff follows
 * (t = guest uptime.) Not done: IPv6 checks, disks, anything but amd64.
 *
 * Standalone: `npx tsx test/e2e/qemu/guest-image.ts` builds (or finds) the image and prints paths.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const run = promisify(execFile);

/** Bumped when the image layout changes in a way the scripts' hash does not capture. */
const FORMAT_VERSION = 1;

const KERNEL_META = 'linux-image-cloud-amd64';
const BUSYBOX_PKG = 'busybox-static';

/** virtio-net and what it needs, in load order (each after its dependencies). */
export const VIRTIO_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_legacy_dev',
  'virtio_pci_modern_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
] as const;

/** PID 1. Failures of module loading are logged, not fatal: /test.sh then reports what broke. */
export const GUEST_INIT = `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
up() { cut -d' ' -f1 /proc/uptime; }
echo "GN-BOOT t=$(up)"
for m in ${VIRTIO_MODULES.join(' ')}; do
  insmod /lib/modules/$m.ko || echo "GN-LOG insmod $m failed"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done
ip link set lo up
ip link set eth0 up || echo "GN-LOG no eth0"
[ -x /test.sh ] && /test.sh
echo "GN-DONE t=$(up)"
poweroff -f
`;

/** udhcpc's event script: configure eth0 and record the lease for /test.sh. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via \${router%% *} dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "ip=$ip router=\${router%% *} dns=$(echo $dns | tr ' ' ',') mask=$mask lease=$lease" > /tmp/lease
    ;;
esac
exit 0
`;

/**
 * The checks. Parameters (kernel command line): gn.http (host HTTP port), gn.token (body of
 * /hello), gn.bigsha (sha256 of /big), gn.name / gn.addr (test DNS name and its A record),
 * gn.dnsport (the host DNS server's port, queried directly through UDP NAT), gn.tftp (host TFTP
 * echo port), gn.fwdport (guest port for the hostfwd check), gn.fwdn (hostfwd connections to
 * wait for), gn.nonce (per-run prefix of what the host sends).
 */
export const GUEST_TEST_SCRIPT = `#!/bin/sh
up() { cut -d' ' -f1 /proc/uptime; }
res() { n=$1; ok=$2; shift 2; echo "GN-RESULT name=$n ok=$ok t=$(up) detail=$*"; }
for w in $(cat /proc/cmdline); do
  case "$w" in gn.*=*) k=\${w%%=*}; k=\${k#gn.}; eval "GN_$k=\\\${w#*=}" ;; esac
done

# DHCP: a lease from the backend's server, applied by /udhcpc.script.
if udhcpc -i eth0 -f -n -q -t 5 -T 1 -s /udhcpc.script >/tmp/udhcpc.log 2>&1 && [ -s /tmp/lease ]; then
  res dhcp 1 "$(cat /tmp/lease)"
else
  res dhcp 0 "$(tail -n 3 /tmp/udhcpc.log | tr '\\n' ' ')"
fi

# DNS through the virtual resolver .3 (relayed to the test's resolver on host loopback).
out=$(nslookup "$GN_name" 10.0.2.3 2>&1)
if echo "$out" | grep -q "Address:[[:space:]]*$GN_addr\\$"; then res dns 1 "$GN_name=$GN_addr"; else res dns 0 "$(echo "$out" | tr '\\n' ' ')"; fi

# UDP NAT with a second client: the same resolver queried directly at gateway:port.
out=$(nslookup "$GN_name" "10.0.2.2:$GN_dnsport" 2>&1)
if echo "$out" | grep -q "Address:[[:space:]]*$GN_addr\\$"; then res udp-dns 1 "$GN_name=$GN_addr via 10.0.2.2:$GN_dnsport"; else res udp-dns 0 "$(echo "$out" | tr '\\n' ' ')"; fi

# HTTP GET from the host through the gateway. (busybox 1.35 wget -T segfaults: use timeout.)
body=$(timeout 20 wget -q -O - "http://10.0.2.2:$GN_http/hello" 2>&1)
if [ -n "$GN_token" ] && [ "$body" = "$GN_token" ]; then res http 1 "body=$body"; else res http 0 "got=$body"; fi

# Bulk TCP: the 50 MB file, checked by sha256, streamed (no copy kept in guest RAM).
t0=$(up)
sum=$(timeout 60 wget -q -O - "http://10.0.2.2:$GN_http/big" | sha256sum | cut -d' ' -f1)
t1=$(up)
if [ -n "$GN_bigsha" ] && [ "$sum" = "$GN_bigsha" ]; then res download 1 "sha256=$sum secs=$(echo "$t1 $t0" | awk '{print $1-$2}')"; else res download 0 "sha256=$sum want=$GN_bigsha"; fi

# UDP round trip: TFTP put of random bytes to the host's echo server, get them back, compare.
dd if=/dev/urandom of=/tmp/u.out bs=1024 count=256 2>/dev/null
s1=$(sha256sum /tmp/u.out | cut -d' ' -f1)
if tftp -p -l /tmp/u.out -r "echo-$GN_nonce.bin" -b 1400 10.0.2.2 "$GN_tftp" >/tmp/tftp.log 2>&1 \\
  && tftp -g -l /tmp/u.in -r "echo-$GN_nonce.bin" -b 1400 10.0.2.2 "$GN_tftp" >>/tmp/tftp.log 2>&1; then
  s2=$(sha256sum /tmp/u.in | cut -d' ' -f1)
  if [ "$s1" = "$s2" ]; then res udp 1 "sha256=$s1 bytes=262144"; else res udp 0 "sent=$s1 back=$s2"; fi
else
  res udp 0 "sent=$s1 $(tr '\\n' ' ' < /tmp/tftp.log)"
fi

# ICMP echo to the gateway (answered by the backend itself).
out=$(ping -c 3 -W 2 10.0.2.2 2>&1)
if [ $? -eq 0 ]; then res ping 1 "$(echo "$out" | grep -E 'received|round-trip' | tr '\\n' ' ')"; else res ping 0 "$(echo "$out" | tail -n 2 | tr '\\n' ' ')"; fi

# hostfwd: the host connects to its forwarded port(s) and sends "NONCE-tag"; the guest answers
# "pong NONCE-tag" and records the line. gn.fwdn connections are expected (config rule, and the
# one the host adds through serve's control socket), 30 s at most.
cat > /tmp/hf.sh <<'EOF'
#!/bin/sh
read -r line
echo "pong $line"
echo "$line" >> /tmp/hf.got
EOF
chmod +x /tmp/hf.sh
: > /tmp/hf.got
nc -ll -p "$GN_fwdport" -e /tmp/hf.sh &
nc_pid=$!
usleep 200000
echo "GN-READY name=hostfwd port=$GN_fwdport t=$(up)"
want=\${GN_fwdn:-1}
i=0
while [ "$(wc -l < /tmp/hf.got)" -lt "$want" ] && [ $i -lt 300 ]; do usleep 100000; i=$((i+1)); done
usleep 200000
kill $nc_pid 2>/dev/null
got=$(tr '\\n' ',' < /tmp/hf.got)
n=$(wc -l < /tmp/hf.got)
bad=$(grep -cv "^$GN_nonce-" /tmp/hf.got)
if [ -n "$GN_nonce" ] && [ "$n" -ge "$want" ] && [ "$bad" = 0 ]; then res hostfwd 1 "n=$n got=$got"; else res hostfwd 0 "n=$n want=$want got=$got"; fi
`;

export interface GuestImage {
  /** Path of the kernel (bzImage). */
  kernel: string;
  /** Path of the gzipped newc initramfs. */
  initrd: string;
  /** The cache key (hex). */
  key: string;
  kernelPackage: string;
  kernelVersion: string;
  busyboxVersion: string;
  /** True when this call built the image, false when it came from the cache. */
  built: boolean;
  /** Wall time of this call, ms. */
  ms: number;
}

export interface BuildOptions {
  /** Cache directory. Default `$GUESTNET_E2E_CACHE` or `~/.cache/guestnet-e2e`. */
  cacheDir?: string;
  /** Progress messages. */
  log?: (msg: string) => void;
}

export function defaultCacheDir(): string {
  return process.env.GUESTNET_E2E_CACHE || join(homedir(), '.cache', 'guestnet-e2e');
}

const APT_OPTS = ['-o', 'APT::Sandbox::User=root', '-q'];

/** The real kernel package behind the metapackage, e.g. linux-image-6.1.0-56-cloud-amd64. */
async function resolveKernelPackage(): Promise<string> {
  const { stdout } = await run('apt-cache', ['depends', KERNEL_META]);
  const m = /Depends:\s+(linux-image-\S+-cloud-amd64)\b/.exec(stdout);
  if (!m) throw new Error(`apt-cache depends ${KERNEL_META}: no linux-image-*-cloud-amd64 dependency (run apt-get update?)`);
  return m[1];
}

async function candidateVersion(pkg: string): Promise<string> {
  const { stdout } = await run('apt-cache', ['policy', pkg]);
  const m = /Candidate:\s+(\S+)/.exec(stdout);
  if (!m || m[1] === '(none)') throw new Error(`apt-cache policy ${pkg}: no candidate version (run apt-get update?)`);
  return m[1];
}

function cacheKey(kernelPkg: string, kernelVer: string, busyboxVer: string): string {
  return createHash('sha256')
    .update(`v${FORMAT_VERSION}\0${kernelPkg}=${kernelVer}\0${BUSYBOX_PKG}=${busyboxVer}\0`)
    .update(scriptsHash())
    .digest('hex')
    .slice(0, 20);
}

function scriptsHash(): string {
  return createHash('sha256').update(GUEST_INIT).update('\0').update(UDHCPC_SCRIPT).update('\0').update(GUEST_TEST_SCRIPT).digest('hex');
}

interface Meta {
  kernelPackage: string;
  kernelVersion: string;
  busyboxVersion: string;
  scripts: string;
  builtAt: string;
}

async function readMeta(dir: string): Promise<Meta | null> {
  try {
    return JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Meta;
  } catch {
    return null;
  }
}

/** Offline fallback: the newest complete cached build made from the same scripts. */
async function findCachedBuild(cacheDir: string): Promise<{ dir: string; key: string; meta: Meta } | null> {
  let best: { dir: string; key: string; meta: Meta } | null = null;
  for (const key of await readdir(cacheDir).catch(() => [] as string[])) {
    const dir = join(cacheDir, key);
    const meta = await readMeta(dir);
    if (!meta || meta.scripts !== scriptsHash() || !isComplete(dir)) continue;
    if (!best || meta.builtAt > best.meta.builtAt) best = { dir, key, meta };
  }
  return best;
}

function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'vmlinuz')) && existsSync(join(dir, 'initrd.gz')) && existsSync(join(dir, 'meta.json'));
}

/** Build the guest image, or return the cached one. */
export async function buildGuestImage(opts: BuildOptions = {}): Promise<GuestImage> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await mkdir(cacheDir, { recursive: true });

  let kernelPkg: string, kernelVer: string, busyboxVer: string;
  try {
    kernelPkg = await resolveKernelPackage();
    [kernelVer, busyboxVer] = await Promise.all([candidateVersion(kernelPkg), candidateVersion(BUSYBOX_PKG)]);
  } catch (err) {
    const cached = await findCachedBuild(cacheDir);
    if (!cached) throw err;
    log(`apt unusable (${(err as Error).message}); using cached build ${cached.key}`);
    return {
      kernel: join(cached.dir, 'vmlinuz'),
      initrd: join(cached.dir, 'initrd.gz'),
      key: cached.key,
      kernelPackage: cached.meta.kernelPackage,
      kernelVersion: cached.meta.kernelVersion,
      busyboxVersion: cached.meta.busyboxVersion,
      built: false,
      ms: Date.now() - started,
    };
  }

  const key = cacheKey(kernelPkg, kernelVer, busyboxVer);
  const dir = join(cacheDir, key);
  const result = (built: boolean): GuestImage => ({
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.gz'),
    key,
    kernelPackage: kernelPkg,
    kernelVersion: kernelVer,
    busyboxVersion: busyboxVer,
    built,
    ms: Date.now() - started,
  });
  if (isComplete(dir)) {
    log(`guest image cached: ${dir}`);
    return result(false);
  }

  const work = await mkdtemp(join(tmpdir(), 'gn-guest-'));
  try {
    log(`apt-get download ${kernelPkg}=${kernelVer} ${BUSYBOX_PKG}=${busyboxVer}`);
    await run('apt-get', [...APT_OPTS, 'download', `${kernelPkg}=${kernelVer}`, `${BUSYBOX_PKG}=${busyboxVer}`], { cwd: work });
    const debs = (await readdir(work)).filter((f) => f.endsWith('.deb'));
    const kdeb = debs.find((f) => f.startsWith(`${kernelPkg}_`));
    const bdeb = debs.find((f) => f.startsWith(`${BUSYBOX_PKG}_`));
    if (!kdeb || !bdeb) throw new Error(`apt-get download left ${debs.join(', ') || 'nothing'}`);
    const kx = join(work, 'k');
    const bx = join(work, 'b');
    await run('dpkg', ['-x', join(work, kdeb), kx]);
    await run('dpkg', ['-x', join(work, bdeb), bx]);

    const vmlinuz = (await readdir(join(kx, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${kdeb}: no boot/vmlinuz-*`);
    const kver = vmlinuz.slice('vmlinuz-'.length);
    const modRoot = existsSync(join(kx, 'lib', 'modules', kver)) ? join(kx, 'lib', 'modules', kver) : join(kx, 'usr', 'lib', 'modules', kver);
    const modFiles = await indexModules(modRoot);

    const archive = new NewcArchive();
    for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'lib', 'lib/modules', 'root', 'run']) archive.dir(d);
    // The kernel opens /dev/console before running /init: without the node, init has no stdio.
    archive.chardev('dev/console', 5, 1);
    archive.chardev('dev/null', 1, 3);

    const busybox = join(bx, 'bin', 'busybox');
    archive.file('bin/busybox', await readFile(busybox), 0o755);
    const { stdout: applets } = await run(busybox, ['--list']);
    for (const a of applets.split('\n').map((s) => s.trim()).filter(Boolean)) {
      if (a === 'busybox') continue;
      archive.symlink(`bin/${a}`, 'busybox');
    }

    for (const m of VIRTIO_MODULES) {
      const src = modFiles.get(m);
      if (!src) throw new Error(`${kdeb}: module ${m} not found under ${modRoot}`);
      archive.file(`lib/modules/${m}.ko`, await readModule(src), 0o644);
    }
    archive.file('init', Buffer.from(GUEST_INIT), 0o755);
    archive.file('test.sh', Buffer.from(GUEST_TEST_SCRIPT), 0o755);
    archive.file('udhcpc.script', Buffer.from(UDHCPC_SCRIPT), 0o755);
    archive.file('etc/resolv.conf', Buffer.alloc(0), 0o644);

    const stage = `${dir}.tmp-${process.pid}`;
    await rm(stage, { recursive: true, force: true });
    await mkdir(stage, { recursive: true });
    await writeFile(join(stage, 'vmlinuz'), await readFile(join(kx, 'boot', vmlinuz)));
    await writeFile(join(stage, 'initrd.gz'), gzipSync(archive.finish(), { level: 6 }));
    const meta: Meta = { kernelPackage: kernelPkg, kernelVersion: kernelVer, busyboxVersion: busyboxVer, scripts: scriptsHash(), builtAt: new Date().toISOString() };
    await writeFile(join(stage, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    // Publish atomically so a concurrent or interrupted build never leaves a half image in place.
    await rm(dir, { recursive: true, force: true });
    await rename(stage, dir);
    log(`guest image built: ${dir}`);
    await pruneCache(cacheDir, 3);
    return result(true);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Keep the `keep` newest builds (each is ~30 MB); older ones are from older scripts or packages. */
async function pruneCache(cacheDir: string, keep: number): Promise<void> {
  const builds: { dir: string; at: string }[] = [];
  for (const key of await readdir(cacheDir).catch(() => [] as string[])) {
    const meta = await readMeta(join(cacheDir, key));
    if (meta) builds.push({ dir: join(cacheDir, key), at: meta.builtAt });
  }
  builds.sort((a, b) => (a.at < b.at ? 1 : -1));
  for (const b of builds.slice(keep)) await rm(b.dir, { recursive: true, force: true });
}

/** module name (as insmod names it, `-` and `_` equal) → path, for every .ko[.xz|.zst|.gz]. */
async function indexModules(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const ent of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!ent.isFile()) continue;
    const m = /^(.+)\.ko(\.xz|\.zst|\.gz)?$/.exec(ent.name);
    if (m) out.set(m[1].replace(/-/g, '_'), join(ent.parentPath, ent.name));
  }
  return out;
}

async function readModule(path: string): Promise<Buffer> {
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : null;
  if (!tool) return readFile(path);
  const { stdout } = await run(tool, ['-dc', path], { encoding: 'buffer', maxBuffer: 64 << 20 });
  return stdout;
}

/**
 * The "new ASCII" cpio format the kernel unpacks (Documentation/driver-api/early-userspace/
 * buffer-format.rst): a 110-byte hex header per entry, name and data each padded to 4 bytes.
 */
class NewcArchive {
  private readonly parts: Buffer[] = [];
  private ino = 1;

  dir(name: string): void {
    this.entry(name, 0o040755, Buffer.alloc(0));
  }
  file(name: string, data: Buffer, perm: number): void {
    this.entry(name, 0o100000 | perm, data);
  }
  symlink(name: string, target: string): void {
    this.entry(name, 0o120777, Buffer.from(target));
  }
  chardev(name: string, major: number, minor: number): void {
    this.entry(name, 0o020600, Buffer.alloc(0), major, minor);
  }
  finish(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0));
    return Buffer.concat(this.parts);
  }

  private entry(name: string, mode: number, data: Buffer, rdevMajor = 0, rdevMinor = 0): void {
    const nameBytes = Buffer.from(name + '\0');
    const fields = [
      this.ino++, mode, 0 /* uid */, 0 /* gid */, mode & 0o040000 ? 2 : 1 /* nlink */, 0 /* mtime: reproducible */,
      data.length, 0, 0 /* dev */, rdevMajor, rdevMinor, nameBytes.length, 0 /* check */,
    ];
    const header = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
    this.parts.push(Buffer.from(header, 'ascii'), nameBytes, pad4(110 + nameBytes.length), data, pad4(data.length));
  }
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const img = await buildGuestImage({ log: (m) => console.error(m) });
  console.log(JSON.stringify(img, null, 2));
}
