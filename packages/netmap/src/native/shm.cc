// guestnet_shm: the native half of @guestnet/netmap's cross-process transport. Node has no mmap,
// so this maps a file with mmap(MAP_SHARED) and hands the mapping to JavaScript as a
// SharedArrayBuffer, on which Atomics (wait/notify/load/store) work across processes because
// every process that maps the file sees the same physical pages.
//
// What it does
//   - createShm(path, size, mode): open(O_CREAT|O_EXCL|O_RDWR|O_CLOEXEC), posix_fallocate the
//     whole size (tmpfs reserves the pages now, so a full /dev/shm fails here with ENOSPC instead
//     of a SIGBUS on first touch later), mmap, close the fd. On failure the half-made file is
//     unlinked. Returns the SharedArrayBuffer (zero-filled, as a new file is).
//   - openShm(path): open(O_RDWR|O_CLOEXEC), fstat for the size, mmap, close the fd.
//   - unlinkShm(path): unlink; false when it was already gone.
//   - liveMappings(): how many mappings this process still holds (for leak tests).
//
// Lifetime: the SharedArrayBuffer's BackingStore owns the mapping; its deleter munmaps when V8
// frees the last reference (GC, in whichever thread drops it last: munmap is thread-safe). There
// is deliberately no explicit unmap: JS may still hold views, and touching an unmapped page
// would crash the process. No fd stays open after a call returns.
//
// N-API cannot create a SharedArrayBuffer over foreign memory, so this uses v8.h directly
// (v8::SharedArrayBuffer::New with a BackingStore built by NewBackingStore(data, len, deleter)).
// That needs a Node without the V8 sandbox (Node 20/22 builds; Electron is not supported).
//
// Errors are JS Errors with `code` = errno name, `errno`, `syscall` and `path`; src/shm.ts maps
// them to GuestnetError codes with a hint.
//
// Not here: huge pages, mlock, memfd/fd passing (the file name is the rendezvous), other OSes.

#ifndef __linux__
#error "@guestnet/netmap's shared-memory helper builds on Linux only"
#endif

#include <napi.h>
#include <uv.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

namespace {

std::atomic<int64_t> g_live_mappings{0};

// The largest region we map: far above anything a port needs (a 1024×2048 ring pair is ~4 MiB)
// and below what a 32-bit length could wrap.
constexpr double kMaxSize = 1024.0 * 1024.0 * 1024.0;

Napi::Value ThrowErrno(Napi::Env env, int e, const char* syscall, const std::string& path) {
  const char* name = uv_err_name(-e);
  std::string msg = std::string(syscall) + " " + path + ": " + strerror(e);
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, name != nullptr ? name : "EUNKNOWN"));
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("syscall", Napi::String::New(env, syscall));
  err.Set("path", Napi::String::New(env, path));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

void Unmap(void* data, size_t length, void* /*deleter_data*/) {
  munmap(data, length);
  g_live_mappings.fetch_sub(1, std::memory_order_relaxed);
}

// napi_value and v8::Local<v8::Value> have the same representation (a pointer to a handle slot);
// Node's own napi implementation converts between them the same way.
napi_value ToNapi(v8::Local<v8::Value> local) {
  napi_value v;
  static_assert(sizeof(v) == sizeof(local), "napi_value and v8::Local differ in size");
  std::memcpy(static_cast<void*>(&v), static_cast<const void*>(&local), sizeof(local));
  return v;
}

// Wraps a fresh mapping in a SharedArrayBuffer; on success the BackingStore owns the mapping.
Napi::Value WrapMapping(Napi::Env env, void* data, size_t size) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store =
      v8::SharedArrayBuffer::NewBackingStore(data, size, Unmap, nullptr);
  g_live_mappings.fetch_add(1, std::memory_order_relaxed);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  return Napi::Value(env, ToNapi(sab));
}

bool GetPath(const Napi::CallbackInfo& info, std::string* out) {
  if (info.Length() < 1 || !info[0].IsString()) return false;
  *out = info[0].As<Napi::String>().Utf8Value();
  return !out->empty() && out->find('\0') == std::string::npos;
}

Napi::Value CreateShm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetPath(info, &path)) return ThrowType(env, "createShm(path, size, mode): path must be a non-empty string");
  if (info.Length() < 2 || !info[1].IsNumber()) return ThrowType(env, "createShm(path, size, mode): size must be a number");
  double dsize = info[1].As<Napi::Number>().DoubleValue();
  if (!(dsize >= 1 && dsize <= kMaxSize) || dsize != static_cast<double>(static_cast<size_t>(dsize))) {
    return ThrowType(env, "createShm: size must be an integer between 1 and 1 GiB");
  }
  size_t size = static_cast<size_t>(dsize);
  mode_t mode = 0600;
  if (info.Length() >= 3 && info[2].IsNumber()) mode = static_cast<mode_t>(info[2].As<Napi::Number>().Uint32Value() & 0777);

  int fd = open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
  if (fd < 0) return ThrowErrno(env, errno, "open", path);
  // posix_fallocate returns the error instead of setting errno.
  int e = posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (e == EOPNOTSUPP || e == EINVAL) {
    // A filesystem without fallocate: a sparse file still works, only without the reservation.
    e = ftruncate(fd, static_cast<off_t>(size)) < 0 ? errno : 0;
  }
  if (e != 0) {
    close(fd);
    unlink(path.c_str());
    return ThrowErrno(env, e, "posix_fallocate", path);
  }
  void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  e = errno;
  close(fd);
  if (data == MAP_FAILED) {
    unlink(path.c_str());
    return ThrowErrno(env, e, "mmap", path);
  }
  return WrapMapping(env, data, size);
}

Napi::Value OpenShm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetPath(info, &path)) return ThrowType(env, "openShm(path): path must be a non-empty string");
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "open", path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, e, "fstat", path);
  }
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || static_cast<double>(st.st_size) > kMaxSize) {
    close(fd);
    return ThrowErrno(env, EINVAL, "fstat", path);
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (data == MAP_FAILED) return ThrowErrno(env, e, "mmap", path);
  return WrapMapping(env, data, size);
}

Napi::Value UnlinkShm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetPath(info, &path)) return ThrowType(env, "unlinkShm(path): path must be a non-empty string");
  if (unlink(path.c_str()) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    return ThrowErrno(env, errno, "unlink", path);
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value LiveMappings(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_live_mappings.load(std::memory_order_relaxed)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("createShm", Napi::Function::New(env, CreateShm, "createShm"));
  exports.Set("openShm", Napi::Function::New(env, OpenShm, "openShm"));
  exports.Set("unlinkShm", Napi::Function::New(env, UnlinkShm, "unlinkShm"));
  exports.Set("liveMappings", Napi::Function::New(env, LiveMappings, "liveMappings"));
  return exports;
}

}  // namespace

NODE_API_MODULE(guestnet_shm, Init)
