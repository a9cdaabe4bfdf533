// Renders templates with Python's Jinja2 (python3-jinja2), set up as Hugging Face
// transformers sets it up (render_reference.py next to this file), for the tests that
// compare the C++ engine with it byte for byte. Header-only: tests/CMakeLists.txt
// compiles only *_test.cc files of a folder.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace specserve::testing {

struct ReferenceCase {
  std::string name;
  std::string template_source;
  nlohmann::ordered_json context;
};

struct ReferenceResult {
  std::optional<std::string> output;  // empty when Jinja2 raised
  std::string error;
};

// True when /usr/bin/python3 can import jinja2.
inline bool HaveJinja2() {
  return std::system("/usr/bin/python3 -c 'import jinja2' >/dev/null 2>&1") == 0;
}

inline std::string ChatTemplateTestDir() {
  return std::string(SPECSERVE_SOURCE_DIR) + "/tests/common/chat_template";
}

// Runs all cases through one Python process; empty on failure to run it.
inline std::vector<ReferenceResult> RenderWithJinja2(const std::vector<ReferenceCase>& cases,
                                                     const std::string& scratch_name) {
  nlohmann::ordered_json in = nlohmann::ordered_json::array();
  for (const ReferenceCase& c : cases) {
    in.push_back({{"template", c.template_source}, {"context", c.context}});
  }
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string tag = scratch_name + "." + std::to_string(::getpid());
  const std::string in_path = (dir / (tag + ".in.json")).string();
  const std::string out_path = (dir / (tag + ".out.json")).string();
  std::ofstream(in_path) << in.dump();
  const std::string cmd = "/usr/bin/python3 " + ChatTemplateTestDir() + "/render_reference.py < " +
                          in_path + " > " + out_path;
  const int rc = std::system(cmd.c_str());
  std::ifstream out_file(out_path);
  std::stringstream ss;
  ss << out_file.rdbuf();
  std::filesystem::remove(in_path);
  std::filesystem::remove(out_path);
  std::vector<ReferenceResult> results;
  if (rc != 0) return results;
  const auto out = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!out.is_array() || out.size() != cases.size()) return results;
  for (const auto& r : out) {
    ReferenceResult result;
    if (r.contains("output")) {
      result.output = r["output"].get<std::string>();
    } else {
      result.error = r.value("error", "");
    }
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace specserve::testing
