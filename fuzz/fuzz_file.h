// For fuzz targets whose parser reads a file: writes the input to a per-process file
// under /dev/shm (or /tmp) and returns its path.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace specserve::fuzz {

inline std::string WriteInput(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/specserve_fuzz_" + std::to_string(getpid()) + "_" + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace specserve::fuzz
