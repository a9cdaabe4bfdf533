// A floor under the stack size that libraries ask for their threads: civetweb (the
// /metrics HTTP server of prometheus-cpp) creates its threads with 100 KiB stacks,
// and glibc puts every library's static thread-local storage on each thread's
// stack. The CUDA libraries hold more than that (cuBLASLt alone 92 KiB), so in a
// build with CUDA, pthread_create fails and /metrics cannot start ("null context
// when constructing CivetServer"). This definition, in the executable, comes first
// in symbol lookup; it raises requests below kStackFloor and calls glibc's.
// Linked into every service binary (CMake: specserve_stack_floor, exported with
// --export-dynamic-symbol so that shared libraries bind to it).
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

constexpr size_t kStackFloor = size_t{1} << 20;  // 1 MiB: static TLS + the thread's own use

using SetStackSize = int (*)(pthread_attr_t*, size_t);

SetStackSize Real() {
  static const SetStackSize real =
      reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  return Real()(attr, size < kStackFloor ? kStackFloor : size);
}
