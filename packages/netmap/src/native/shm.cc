// Placeholder translation unit so the package installs before the helper is written; replaced by
// the shared-memory helper (mmap of a file into a SharedArrayBuffer).
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(guestnet_shm, Init)
