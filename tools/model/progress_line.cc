#include "tools/model/progress_line.h"

#include <cstdio>

namespace specserve::model_tool {

ProgressLine::ProgressLine(std::string verb, std::string path, uint64_t total_bytes)
    : verb_(std::move(verb)),
      path_(std::move(path)),
      total_(total_bytes),
      start_(Clock::now()),
      last_(start_) {}

double ProgressLine::MegabytesPerSecond() const {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  return seconds > 0 ? fraction_ * static_cast<double>(total_) / 1e6 / seconds : 0.0;
}

void ProgressLine::Update(double fraction) {
  if (done_) return;
  const Clock::time_point now = Clock::now();
  if (fraction < 1.0 && now - last_ < std::chrono::milliseconds(200)) return;
  done_ = fraction >= 1.0;
  last_ = now;
  fraction_ = fraction;
  const double mb = fraction * static_cast<double>(total_) / 1e6;
  std::fprintf(stderr, "\r%s %s: %5.1f%% (%.1f of %.1f MB, %.1f MB/s)", verb_.c_str(),
               path_.c_str(), 100.0 * fraction, mb, total_ / 1e6, MegabytesPerSecond());
  if (fraction >= 1.0) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace specserve::model_tool
