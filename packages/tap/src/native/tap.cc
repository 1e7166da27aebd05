// guestnet_tap: the native half of @guestnet/tap, kept small enough to audit in one sitting.
//
// What it does
//   - openTap: open /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC) and TUNSETIFF a TAP device
//     (IFF_TAP|IFF_NO_PI, optionally IFF_VNET_HDR and IFF_MULTI_QUEUE). With `netnsPath` the
//     calling thread enters that network namespace only around open+TUNSETIFF, so the device is
//     created there while the fd is used from ours (how slirp4netns and pasta attach).
//   - TUNGETIFF / TUNSETVNETHDRSZ / TUNSETOFFLOAD on a tap fd.
//   - Link configuration by ioctl on an AF_INET socket (optionally created inside a namespace):
//     up/down, MTU, MAC, an IPv4 address and an IPv4 default route.
//   - TapPoller: a uv_poll watcher on the tap fd (never the libuv threadpool). On readable it
//     read()s until EAGAIN or the batch is full into ONE preallocated ArrayBuffer of fixed slots
//     and calls onFrames(buffer, lengths, count) once per batch: no allocation per frame. The
//     same uv_poll handle waits for POLLOUT when a write hit EAGAIN. The handle is uv_unref'd,
//     so an idle tap never keeps the process alive. close() closes the poll handle first and
//     the fd only in the handle's close callback, so libuv never polls a closed (or reused) fd.
//
// Errors are JS Errors with `code` = the errno name (EPERM, ENOENT, ENODEV, EBUSY, EINVAL, …)
// and `syscall`; the TypeScript layer maps them to GuestnetError codes. The data-path calls
// (write, writeFrames) never throw: they return counts or -errno.
//
// Not here: TUNSETQUEUE (detach/attach queues), TUNSETSTEERINGEBPF, TUNSETPERSIST/OWNER (use
// `ip tuntap add … user`), IPv6 address configuration (the kernel's SLAAC does that), BSD tap.

#ifndef __linux__
#error "@guestnet/tap builds on Linux only"
#endif

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>
#include <string>

namespace {

// The bytes of a typed array, whether its buffer is an ArrayBuffer or a SharedArrayBuffer
// (ta.ArrayBuffer().Data() fails for the latter: napi_get_arraybuffer_info rejects a SAB).
const uint8_t* ViewBytes(napi_env env, napi_value v) {
  napi_typedarray_type t;
  size_t n;
  void* data = nullptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, &n, &data, &ab, &off) != napi_ok) return nullptr;
  return static_cast<const uint8_t*>(data);
}

const char* ErrnoName(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EBADFD: return "EBADFD";
    case EIO: return "EIO";
    case ENOTTY: return "ENOTTY";
    case EFAULT: return "EFAULT";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case ENETDOWN: return "ENETDOWN";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOTDIR: return "ENOTDIR";
    case ENOSYS: return "ENOSYS";
    case ENETUNREACH: return "ENETUNREACH";
    default: return "EUNKNOWN";
  }
}

// Throw a JS error shaped like Node's system errors and return undefined for the caller.
Napi::Value ThrowErrno(Napi::Env env, int e, const char* syscall, const std::string& what) {
  std::string msg = std::string(syscall);
  if (!what.empty()) msg += " " + what;
  msg += ": ";
  msg += strerror(e);
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, ErrnoName(e)));
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("syscall", Napi::String::New(env, syscall));
  if (!what.empty()) err.Set("path", Napi::String::New(env, what));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// Moves the calling thread into a network namespace for the lifetime of the guard. Network
// namespaces are per thread, so only the JS thread moves, and only for the few syscalls inside
// the guard's scope. Failing to move back would leave every later socket of this thread in the
// wrong namespace, so that is fatal rather than an exception.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  // Returns 0 or an errno; *failed names the step that failed.
  int Enter(const std::string& path, const char** failed) {
    if (path.empty()) return 0;
    orig_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig_ < 0) {
      *failed = "open /proc/thread-self/ns/net";
      return errno;
    }
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int e = errno;
      close(orig_);
      orig_ = -1;
      *failed = "open netns";
      return e;
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int e = errno;
      close(target);
      close(orig_);
      orig_ = -1;
      *failed = "setns";
      return e;
    }
    close(target);
    return 0;
  }
  ~NetnsGuard() {
    if (orig_ < 0) return;
    if (setns(orig_, CLONE_NEWNET) < 0) {
      Napi::Error::Fatal("guestnet_tap", "cannot return to the original network namespace");
    }
    close(orig_);
  }

 private:
  int orig_ = -1;
};

std::string OptString(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

bool OptBool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : std::string();
}

bool FillIfName(struct ifreq* ifr, const std::string& name) {
  if (name.size() >= IFNAMSIZ) return false;
  memcpy(ifr->ifr_name, name.c_str(), name.size() + 1);
  return true;
}

// openTap({ ifname?, vnetHdr, multiQueue, netnsPath?, tunPath? }) → { fd, ifname }
Napi::Value OpenTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return ThrowType(env, "openTap(options) expects an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::string ifname = OptString(o, "ifname");
  std::string netns = OptString(o, "netnsPath");
  std::string tunPath = OptString(o, "tunPath");
  if (tunPath.empty()) tunPath = "/dev/net/tun";

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (!FillIfName(&ifr, ifname)) return ThrowErrno(env, EINVAL, "TUNSETIFF", ifname);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (OptBool(o, "vnetHdr")) ifr.ifr_flags |= IFF_VNET_HDR;
  if (OptBool(o, "multiQueue")) ifr.ifr_flags |= IFF_MULTI_QUEUE;

  int fd = -1;
  int err = 0;
  const char* failed = "";
  std::string failedPath;
  {
    NetnsGuard guard;
    err = guard.Enter(netns, &failed);
    if (err != 0) {
      failedPath = netns;
    } else {
      fd = open(tunPath.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        err = errno;
        failed = "open";
        failedPath = tunPath;
      } else if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        err = errno;
        failed = "TUNSETIFF";
        failedPath = ifname;
        close(fd);
        fd = -1;
      }
    }
  }  // back in our namespace here
  if (err != 0) return ThrowErrno(env, err, failed, failedPath);

  Napi::Object res = Napi::Object::New(env);
  res.Set("fd", Napi::Number::New(env, fd));
  res.Set("ifname", Napi::String::New(env, ifr.ifr_name));
  return res;
}

// tapInfo(fd) → { ifname, flags } (TUNGETIFF), for fds opened by someone else.
Napi::Value TapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "tapInfo(fd) expects a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) return ThrowErrno(env, errno, "TUNGETIFF", "");
  // Our poller needs a non-blocking fd; an inherited fd may be blocking.
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return ThrowErrno(env, errno, "fcntl", "");
  Napi::Object res = Napi::Object::New(env);
  res.Set("ifname", Napi::String::New(env, ifr.ifr_name));
  res.Set("flags", Napi::Number::New(env, static_cast<uint16_t>(ifr.ifr_flags)));
  return res;
}

// setVnetHdrSize(fd, 10|12)
Napi::Value SetVnetHdrSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) return ThrowType(env, "setVnetHdrSize(fd, size)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int sz = info[1].As<Napi::Number>().Int32Value();
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) return ThrowErrno(env, errno, "TUNSETVNETHDRSZ", "");
  return env.Undefined();
}

// setOffload(fd, TUN_F_* flags)
Napi::Value SetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) return ThrowType(env, "setOffload(fd, flags)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long flags = info[1].As<Napi::Number>().Uint32Value();
  if (ioctl(fd, TUNSETOFFLOAD, flags) < 0) return ThrowErrno(env, errno, "TUNSETOFFLOAD", "");
  return env.Undefined();
}

// closeFd(fd): for an fd that never reached a poller (setup failed half way).
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (info.Length() >= 1 && info[0].IsNumber()) close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// Runs `op(sock, ifr)` with an AF_INET datagram socket created inside the (optional) namespace:
// interface ioctls act on the socket's namespace. Returns 0 or an errno (*failed says where).
template <typename Op>
int WithIfSocket(const std::string& netns, const std::string& ifname, struct ifreq* ifr, const char** failed, Op op) {
  memset(ifr, 0, sizeof *ifr);
  if (!FillIfName(ifr, ifname)) {
    *failed = "ifname";
    return EINVAL;
  }
  NetnsGuard guard;
  int err = guard.Enter(netns, failed);
  if (err != 0) return err;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *failed = "socket";
    return errno;
  }
  err = op(s, ifr, failed);
  close(s);
  return err;
}

#define IOCTL_OR_FAIL(s, req, arg, name) \
  do {                                   \
    if (ioctl((s), (req), (arg)) < 0) {  \
      *failed = (name);                  \
      return errno;                      \
    }                                    \
  } while (0)

// getLink(ifname, netnsPath?) → { flags, mtu, mac, index }
Napi::Value GetLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  std::string netns = ArgString(info, 1);
  struct ifreq ifr;
  const char* failed = "";
  int flags = 0, mtu = 0, index = 0;
  unsigned char mac[6] = {0};
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    IOCTL_OR_FAIL(s, SIOCGIFFLAGS, r, "SIOCGIFFLAGS");
    flags = static_cast<uint16_t>(r->ifr_flags);
    IOCTL_OR_FAIL(s, SIOCGIFMTU, r, "SIOCGIFMTU");
    mtu = r->ifr_mtu;
    IOCTL_OR_FAIL(s, SIOCGIFHWADDR, r, "SIOCGIFHWADDR");
    memcpy(mac, r->ifr_hwaddr.sa_data, 6);
    IOCTL_OR_FAIL(s, SIOCGIFINDEX, r, "SIOCGIFINDEX");
    index = r->ifr_ifindex;
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, ifname);
  char buf[18];
  snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  Napi::Object res = Napi::Object::New(env);
  res.Set("flags", Napi::Number::New(env, flags));
  res.Set("up", Napi::Boolean::New(env, (flags & IFF_UP) != 0));
  res.Set("mtu", Napi::Number::New(env, mtu));
  res.Set("mac", Napi::String::New(env, buf));
  res.Set("index", Napi::Number::New(env, index));
  return res;
}

// setLinkUp(ifname, up, netnsPath?)
Napi::Value SetLinkUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  bool up = info.Length() > 1 && info[1].ToBoolean().Value();
  std::string netns = ArgString(info, 2);
  struct ifreq ifr;
  const char* failed = "";
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    IOCTL_OR_FAIL(s, SIOCGIFFLAGS, r, "SIOCGIFFLAGS");
    bool isUp = (r->ifr_flags & IFF_UP) != 0;
    if (isUp == up) return 0;  // nothing to change: works without CAP_NET_ADMIN
    if (up) r->ifr_flags |= IFF_UP; else r->ifr_flags &= ~IFF_UP;
    IOCTL_OR_FAIL(s, SIOCSIFFLAGS, r, "SIOCSIFFLAGS");
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, ifname);
  return env.Undefined();
}

// setMtu(ifname, mtu, netnsPath?)
Napi::Value SetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  if (info.Length() < 2 || !info[1].IsNumber()) return ThrowType(env, "setMtu(ifname, mtu, netnsPath?)");
  int mtu = info[1].As<Napi::Number>().Int32Value();
  std::string netns = ArgString(info, 2);
  struct ifreq ifr;
  const char* failed = "";
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    IOCTL_OR_FAIL(s, SIOCGIFMTU, r, "SIOCGIFMTU");
    if (r->ifr_mtu == mtu) return 0;
    r->ifr_mtu = mtu;
    IOCTL_OR_FAIL(s, SIOCSIFMTU, r, "SIOCSIFMTU");
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, ifname);
  return env.Undefined();
}

// setMac(ifname, mac: Uint8Array(6), netnsPath?)
Napi::Value SetMac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  if (info.Length() < 2 || !info[1].IsTypedArray()) return ThrowType(env, "setMac(ifname, mac: Uint8Array(6), netnsPath?)");
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array || ta.ElementLength() != 6) return ThrowType(env, "mac must be a Uint8Array of 6 bytes");
  unsigned char mac[6];
  memcpy(mac, static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), 6);
  std::string netns = ArgString(info, 2);
  struct ifreq ifr;
  const char* failed = "";
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    IOCTL_OR_FAIL(s, SIOCGIFHWADDR, r, "SIOCGIFHWADDR");
    if (memcmp(r->ifr_hwaddr.sa_data, mac, 6) == 0) return 0;
    r->ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(r->ifr_hwaddr.sa_data, mac, 6);
    IOCTL_OR_FAIL(s, SIOCSIFHWADDR, r, "SIOCSIFHWADDR");
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, ifname);
  return env.Undefined();
}

bool ParseIPv4(const std::string& s, struct sockaddr_in* sin) {
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  return inet_pton(AF_INET, s.c_str(), &sin->sin_addr) == 1;
}

// setIPv4(ifname, addr, prefixLen, netnsPath?): SIOCSIFADDR + SIOCSIFNETMASK (replaces the
// interface's primary IPv4 address, as ifconfig does).
Napi::Value SetIPv4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  std::string addr = ArgString(info, 1);
  if (info.Length() < 3 || !info[2].IsNumber()) return ThrowType(env, "setIPv4(ifname, addr, prefixLen, netnsPath?)");
  int prefix = info[2].As<Napi::Number>().Int32Value();
  std::string netns = ArgString(info, 3);
  struct sockaddr_in sin, mask;
  if (!ParseIPv4(addr, &sin) || prefix < 0 || prefix > 32) return ThrowErrno(env, EINVAL, "SIOCSIFADDR", addr);
  memset(&mask, 0, sizeof mask);
  mask.sin_family = AF_INET;
  mask.sin_addr.s_addr = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
  struct ifreq ifr;
  const char* failed = "";
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    memcpy(&r->ifr_addr, &sin, sizeof sin);
    IOCTL_OR_FAIL(s, SIOCSIFADDR, r, "SIOCSIFADDR");
    memcpy(&r->ifr_netmask, &mask, sizeof mask);
    IOCTL_OR_FAIL(s, SIOCSIFNETMASK, r, "SIOCSIFNETMASK");
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, ifname);
  return env.Undefined();
}

// addDefaultRoute4(ifname, gateway, netnsPath?): SIOCADDRT 0.0.0.0/0 via gateway dev ifname.
// EEXIST when a default route is already there.
Napi::Value AddDefaultRoute4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ifname = ArgString(info, 0);
  std::string gw = ArgString(info, 1);
  std::string netns = ArgString(info, 2);
  struct sockaddr_in gwa, any;
  if (!ParseIPv4(gw, &gwa)) return ThrowErrno(env, EINVAL, "SIOCADDRT", gw);
  ParseIPv4("0.0.0.0", &any);
  struct ifreq ifr;
  const char* failed = "";
  int err = WithIfSocket(netns, ifname, &ifr, &failed, [&](int s, struct ifreq* r, const char** failed) -> int {
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    memcpy(&rt.rt_dst, &any, sizeof any);
    memcpy(&rt.rt_genmask, &any, sizeof any);
    memcpy(&rt.rt_gateway, &gwa, sizeof gwa);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = r->ifr_name;
    IOCTL_OR_FAIL(s, SIOCADDRT, &rt, "SIOCADDRT");
    return 0;
  });
  if (err != 0) return ThrowErrno(env, err, failed, gw);
  return env.Undefined();
}

// ---- TapPoller -------------------------------------------------------------------------------

const uint8_t kZeroHdr[16] = {0};
const int kMaxRoundsPerWakeup = 8;  // batches per readable event before yielding to the loop

class TapPoller : public Napi::ObjectWrap<TapPoller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "TapPoller",
                       {
                           InstanceMethod("pause", &TapPoller::Pause),
                           InstanceMethod("resume", &TapPoller::Resume),
                           InstanceMethod("wantWritable", &TapPoller::WantWritable),
                           InstanceMethod("write", &TapPoller::Write),
                           InstanceMethod("writeFrames", &TapPoller::WriteFrames),
                           InstanceMethod("setTxPad", &TapPoller::SetTxPad),
                           InstanceMethod("stats", &TapPoller::Stats),
                           InstanceMethod("close", &TapPoller::Close),
                           InstanceAccessor("fd", &TapPoller::Fd, nullptr),
                           InstanceAccessor("buffer", &TapPoller::Buffer, nullptr),
                           InstanceAccessor("lengths", &TapPoller::Lengths, nullptr),
                           InstanceAccessor("slotSize", &TapPoller::SlotSize, nullptr),
                       });
  }

  // new TapPoller(fd, { frameBufSize, batch, onWritable?, onError? }, onFrames)
  explicit TapPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TapPoller>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsFunction()) {
      ThrowType(env, "new TapPoller(fd, { frameBufSize, batch }, onFrames)");
      return;
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Value fb = o.Get("frameBufSize");
    Napi::Value bt = o.Get("batch");
    slot_ = fb.IsNumber() ? fb.As<Napi::Number>().Uint32Value() : 65568;
    batch_ = bt.IsNumber() ? bt.As<Napi::Number>().Uint32Value() : 64;
    if (slot_ < 64 || slot_ > (1u << 20) || batch_ < 1 || batch_ > 1024) {
      ThrowType(env, "frameBufSize must be 64..1048576 and batch 1..1024");
      return;
    }
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, slot_ * batch_);
    Napi::Uint32Array lens = Napi::Uint32Array::New(env, batch_);
    buf_ = static_cast<uint8_t*>(ab.Data());
    lens_ = lens.Data();
    bufRef_ = Napi::Persistent(ab);
    lensRef_ = Napi::Persistent(lens);
    onFrames_ = Napi::Persistent(info[2].As<Napi::Function>());
    Napi::Value w = o.Get("onWritable");
    if (w.IsFunction()) onWritable_ = Napi::Persistent(w.As<Napi::Function>());
    Napi::Value e = o.Get("onError");
    if (e.IsFunction()) onError_ = Napi::Persistent(e.As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "guestnet:tap");

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "no libuv loop").ThrowAsJavaScriptException();
      return;
    }
    h_ = new Handle();
    h_->fd = fd;
    h_->owner = this;
    int r = uv_poll_init(loop, &h_->poll, fd);
    if (r != 0) {
      delete h_;  // never initialised: no uv_close needed; the fd stays with the caller
      h_ = nullptr;
      ThrowErrno(env, -r, "uv_poll_init", "");
      return;
    }
    h_->poll.data = h_;
    // An idle tap must not keep the process alive: the handle never counts as a reference.
    uv_unref(reinterpret_cast<uv_handle_t*>(&h_->poll));
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hookAdded_ = true;
    Ref();  // alive while polling; released by close()
    Update();
  }

  ~TapPoller() override {
    DoClose();
  }

 private:
  struct Handle {
    uv_poll_t poll;  // first member: the uv_handle_t* is the Handle*
    int fd;
    TapPoller* owner;
  };

  static void CleanupHook(void* arg) { static_cast<TapPoller*>(arg)->DoClose(); }

  void Update() {
    if (h_ == nullptr) return;
    int want = 0;
    if (!paused_ && !failed_) want |= UV_READABLE;
    if (wantWrite_ && !failed_) want |= UV_WRITABLE;
    if (want == events_) return;
    if (want == 0) {
      uv_poll_stop(&h_->poll);
    } else if (uv_poll_start(&h_->poll, want, OnPoll) != 0) {
      failed_ = true;
      uv_poll_stop(&h_->poll);
      want = 0;
    }
    events_ = want;
  }

  // Calls fn(args…) as a top-level callback (microtasks run after it); an exception it throws
  // becomes an uncaughtException, as for any other event-loop callback.
  void CallJs(Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
    Napi::Env env(env_);
    fn.MakeCallback(Value(), args, *async_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env_, e.Value());
    }
  }

  void ReportError(int e) {
    if (onError_.IsEmpty()) return;
    Napi::Env env(env_);
    CallJs(onError_, {Napi::String::New(env, ErrnoName(e))});
  }

  static void OnPoll(uv_poll_t* p, int status, int events) {
    Handle* h = static_cast<Handle*>(p->data);
    TapPoller* self = h->owner;
    if (self == nullptr) return;
    Napi::HandleScope scope(Napi::Env(self->env_));
    if (status < 0) {
      // EPOLLERR/EPOLLHUP: the device went away under us. Stop polling and tell JS once.
      self->failed_ = true;
      self->Update();
      self->ReportError(-status);
      return;
    }
    if ((events & UV_WRITABLE) && self->wantWrite_) {
      self->wantWrite_ = false;  // one-shot: JS re-arms if it hits EAGAIN again
      self->Update();
      if (!self->onWritable_.IsEmpty()) self->CallJs(self->onWritable_, {});
    }
    if ((events & UV_READABLE) && self->h_ != nullptr) self->DrainReadable();
  }

  void DrainReadable() {
    Napi::Env env(env_);
    for (int round = 0; round < kMaxRoundsPerWakeup; round++) {
      if (h_ == nullptr || paused_ || failed_) return;
      int fd = h_->fd;
      size_t n = 0;
      int err = 0;
      bool empty = false;
      while (n < batch_) {
        ssize_t r = read(fd, buf_ + n * slot_, slot_);
        if (r > 0) {
          lens_[n++] = static_cast<uint32_t>(r);
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        empty = true;
        break;
      }
      if (n > 0) {
        Napi::HandleScope scope(env);
        CallJs(onFrames_, {bufRef_.Value(), lensRef_.Value(), Napi::Number::New(env, static_cast<double>(n))});
      }
      if (err != 0) {
        rxErrors_++;
        lastRxErrno_ = err;
        // A read error other than EAGAIN does not go away by itself (device removed): stop
        // polling so a level-triggered poll cannot spin, and let JS decide.
        failed_ = true;
        Update();
        ReportError(err);
        return;
      }
      if (empty) return;
    }
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    Update();
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    paused_ = false;
    Update();
    return info.Env().Undefined();
  }

  Napi::Value WantWritable(const Napi::CallbackInfo& info) {
    wantWrite_ = true;
    Update();
    return info.Env().Undefined();
  }

  // Prepend `n` zero bytes to every written frame: a device opened with IFF_VNET_HDR used by a
  // guest that negotiated no vnet header gets an all-zero header (no offloads) without a copy.
  Napi::Value SetTxPad(const Napi::CallbackInfo& info) {
    uint32_t n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    txPad_ = n > sizeof kZeroHdr ? sizeof kZeroHdr : n;
    return info.Env().Undefined();
  }

  // One frame: bytes written, or -errno. Never throws on I/O errors.
  ssize_t WriteOne(const uint8_t* p, size_t len) {
    if (h_ == nullptr) return -EBADF;
    for (;;) {
      ssize_t r;
      if (txPad_ > 0) {
        struct iovec iov[2] = {{const_cast<uint8_t*>(kZeroHdr), txPad_}, {const_cast<uint8_t*>(p), len}};
        r = writev(h_->fd, iov, 2);
      } else {
        r = write(h_->fd, p, len);
      }
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      return -errno;
    }
  }

  // write(u8, offset, length) → bytes written or -errno
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray()) return ThrowType(env, "write(u8, offset, length)");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    size_t off = info[1].As<Napi::Number>().Uint32Value();
    size_t len = info[2].As<Napi::Number>().Uint32Value();
    if (off + len > ta.ByteLength()) return Napi::Number::New(env, -EINVAL);
    const uint8_t* base = ViewBytes(env, ta);
    if (base == nullptr) return Napi::Number::New(env, -EINVAL);
    const uint8_t* p = base + off;
    ssize_t r = WriteOne(p, len);
    if (r < 0 && r != -EAGAIN) {
      txErrors_++;
      lastTxErrno_ = static_cast<int>(-r);
    }
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // writeFrames(frames: Uint8Array[], start, end) → index of the first frame NOT consumed.
  // Stops at EAGAIN; frames failing with another error are consumed and counted (txErrors).
  Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsArray()) return ThrowType(env, "writeFrames(frames, start, end)");
    Napi::Array arr = info[0].As<Napi::Array>();
    uint32_t i = info[1].As<Napi::Number>().Uint32Value();
    uint32_t end = info[2].As<Napi::Number>().Uint32Value();
    if (end > arr.Length()) end = arr.Length();
    for (; i < end; i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsTypedArray()) {
        txErrors_++;
        lastTxErrno_ = EINVAL;
        continue;
      }
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      const uint8_t* p = ViewBytes(env, ta);
      if (p == nullptr) {
        txErrors_++;
        lastTxErrno_ = EINVAL;
        continue;
      }
      ssize_t r = WriteOne(p, ta.ByteLength());
      if (r == -EAGAIN || r == -EWOULDBLOCK) break;
      if (r < 0) {
        txErrors_++;
        lastTxErrno_ = static_cast<int>(-r);
      }
    }
    return Napi::Number::New(env, i);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("txErrors", Napi::Number::New(env, txErrors_));
    o.Set("rxErrors", Napi::Number::New(env, rxErrors_));
    o.Set("lastTxError", Napi::String::New(env, lastTxErrno_ ? ErrnoName(lastTxErrno_) : ""));
    o.Set("lastRxError", Napi::String::New(env, lastRxErrno_ ? ErrnoName(lastRxErrno_) : ""));
    o.Set("polling", Napi::Number::New(env, events_));
    return o;
  }

  // Stop polling, close the poll handle, and close the fd in the handle's close callback: the
  // fd number must not be reused while libuv still has it in its epoll set.
  void DoClose() {
    if (hookAdded_) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      hookAdded_ = false;
    }
    if (h_ == nullptr) return;
    uv_poll_stop(&h_->poll);
    h_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->poll), OnClosed);
    h_ = nullptr;
    events_ = 0;
  }

  static void OnClosed(uv_handle_t* handle) {
    Handle* h = reinterpret_cast<Handle*>(handle);
    if (h->fd >= 0) close(h->fd);
    delete h;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool wasOpen = h_ != nullptr;
    DoClose();
    if (wasOpen) Unref();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), h_ ? h_->fd : -1);
  }
  Napi::Value Buffer(const Napi::CallbackInfo& info) { return bufRef_.Value(); }
  Napi::Value Lengths(const Napi::CallbackInfo& info) { return lensRef_.Value(); }
  Napi::Value SlotSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(slot_)); }

  napi_env env_ = nullptr;
  Handle* h_ = nullptr;
  bool hookAdded_ = false;
  int events_ = 0;
  bool paused_ = false;
  bool wantWrite_ = false;
  bool failed_ = false;
  size_t slot_ = 0;
  size_t batch_ = 0;
  uint32_t txPad_ = 0;
  uint8_t* buf_ = nullptr;
  uint32_t* lens_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> bufRef_;
  Napi::Reference<Napi::Uint32Array> lensRef_;
  Napi::FunctionReference onFrames_;
  Napi::FunctionReference onWritable_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> async_;
  double txErrors_ = 0;
  double rxErrors_ = 0;
  int lastTxErrno_ = 0;
  int lastRxErrno_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openTap", Napi::Function::New(env, OpenTap));
  exports.Set("tapInfo", Napi::Function::New(env, TapInfo));
  exports.Set("setVnetHdrSize", Napi::Function::New(env, SetVnetHdrSize));
  exports.Set("setOffload", Napi::Function::New(env, SetOffload));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("getLink", Napi::Function::New(env, GetLink));
  exports.Set("setLinkUp", Napi::Function::New(env, SetLinkUp));
  exports.Set("setMtu", Napi::Function::New(env, SetMtu));
  exports.Set("setMac", Napi::Function::New(env, SetMac));
  exports.Set("setIPv4", Napi::Function::New(env, SetIPv4));
  exports.Set("addDefaultRoute4", Napi::Function::New(env, AddDefaultRoute4));
  exports.Set("TapPoller", TapPoller::Init(env));
  Napi::Object c = Napi::Object::New(env);
  c.Set("IFF_TAP", Napi::Number::New(env, IFF_TAP));
  c.Set("IFF_NO_PI", Napi::Number::New(env, IFF_NO_PI));
  c.Set("IFF_VNET_HDR", Napi::Number::New(env, IFF_VNET_HDR));
  c.Set("IFF_MULTI_QUEUE", Napi::Number::New(env, IFF_MULTI_QUEUE));
  c.Set("TUN_F_CSUM", Napi::Number::New(env, TUN_F_CSUM));
  c.Set("TUN_F_TSO4", Napi::Number::New(env, TUN_F_TSO4));
  c.Set("TUN_F_TSO6", Napi::Number::New(env, TUN_F_TSO6));
  c.Set("TUN_F_TSO_ECN", Napi::Number::New(env, TUN_F_TSO_ECN));
  exports.Set("constants", c);
  return exports;
}

}  // namespace

NODE_API_MODULE(guestnet_tap, Init)
