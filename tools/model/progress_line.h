// A one-line progress display on stderr for commands that write large files:
// "\r<verb> F: 42.0% (12.3 of 29.3 MB, 180.2 MB/s)", redrawn at most every 0.2 s and
// ended with a newline at 100%.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace specserve::model_tool {

class ProgressLine {
 public:
  ProgressLine(std::string verb, std::string path, uint64_t total_bytes);

  void Update(double fraction);
  // Average MB/s so far.
  double MegabytesPerSecond() const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string verb_;
  std::string path_;
  uint64_t total_;
  Clock::time_point start_;
  Clock::time_point last_;
  double fraction_ = 0.0;
  bool done_ = false;
};

}  // namespace specserve::model_tool
