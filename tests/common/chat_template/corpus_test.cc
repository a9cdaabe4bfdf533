// Real chat templates (tests/common/chat_template/templates: llama.cpp's
// models/templates and the templates of its chat-template tests, and a public
// collection of chat templates; see templates/README.md) rendered with several
// conversations by the C++ engine and by Python's Jinja2 configured as Hugging Face
// transformers configures it: the outputs must be byte-identical, or both must refuse
// (raise_exception, a missing variable). Templates the engine refuses when parsing are
// listed, with the construct named.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/chat_template/chat_template.h"
#include "gtest/gtest.h"
#include "tests/common/chat_template/jinja_reference.h"

namespace specserve {
namespace {

using nlohmann::ordered_json;

ordered_json Msg(const std::string& role, const ordered_json& content) {
  return {{"role", role}, {"content", content}};
}

std::vector<std::pair<std::string, ordered_json>> Conversations() {
  return {
      {"system-multi-turn",
       {Msg("system", "You are a helpful assistant"), Msg("user", "Hello"),
        Msg("assistant", "Hi there"), Msg("user", "Who are you"),
        Msg("assistant", "   I am an assistant   "), Msg("user", "Another question")}},
      {"one-user", {Msg("user", "Hello")}},
      {"no-system", {Msg("user", "What is 2+2?"), Msg("assistant", "4"), Msg("user", "And 3+3?")}},
      {"special-characters",
       {Msg("system", "Réponds en français. \"quotes\" & <tags> \\ backslash 'single'"),
        Msg("user", "Ünïcödé 你好 🙂\nline2\ttab {{ not a tag }} {% neither %}")}},
      {"text-parts",
       {Msg("user", ordered_json::array({{{"type", "text"}, {"text", "Part one."}},
                                         {{"type", "text"}, {"text", "Part two."}}}))}},
      {"ends-with-assistant", {Msg("user", "Hi"), Msg("assistant", "Hello! How can I help?")}},
  };
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Templates this engine refuses at load, and the construct it names.
const std::map<std::string, std::string>& ExpectedRefusals() {
  static const std::map<std::string, std::string> refused = {};
  return refused;
}

TEST(ChatTemplateCorpus, MatchesJinja2ByteForByte) {
  if (!testing::HaveJinja2()) {
    GTEST_SKIP()
        << "python3-jinja2 is not installed (scripts/setup.d/40-http-clients.sh installs it)";
  }
  const std::filesystem::path dir = testing::ChatTemplateTestDir() + "/templates";
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".jinja") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 60u) << "the corpus is missing from " << dir;

  std::vector<testing::ReferenceCase> cases;
  std::vector<std::shared_ptr<const ChatTemplate>> templates;
  std::vector<ChatTemplateInputs> inputs;
  std::map<std::string, std::string> refused;
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    const std::string source = ReadFile(file);
    auto parsed = ChatTemplate::Parse(source);
    if (!parsed.ok()) {
      refused[name] = std::string(parsed.status().message());
      continue;
    }
    for (const auto& [conversation, messages] : Conversations()) {
      for (bool add_generation_prompt : {true, false}) {
        ChatTemplateInputs in;
        in.messages = messages;
        in.add_generation_prompt = add_generation_prompt;
        in.bos_token = "<s>";
        in.eos_token = "</s>";
        in.extra = {{"date_string", "26 Jul 2024"}};
        ordered_json context = {{"messages", messages},
                                {"add_generation_prompt", add_generation_prompt},
                                {"bos_token", "<s>"},
                                {"eos_token", "</s>"},
                                {"tools", nullptr},
                                {"documents", nullptr},
                                {"date_string", "26 Jul 2024"}};
        cases.push_back({name + " / " + conversation + (add_generation_prompt ? " / gen" : ""),
                         source, context});
        templates.push_back(*parsed);
        inputs.push_back(in);
      }
    }
  }
  const auto reference = testing::RenderWithJinja2(cases, "corpus");
  ASSERT_EQ(reference.size(), cases.size()) << "render_reference.py failed";

  int identical = 0, both_refused = 0;
  std::set<std::string> rendered_templates;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ours = templates[i]->Render(inputs[i]);
    if (reference[i].output) {
      ASSERT_TRUE(ours.ok()) << cases[i].name
                             << ": Jinja2 renders it, the engine fails: " << ours.status();
      ASSERT_EQ(*ours, *reference[i].output) << cases[i].name;
      ++identical;
      rendered_templates.insert(cases[i].name.substr(0, cases[i].name.find(" / ")));
    } else {
      EXPECT_FALSE(ours.ok()) << cases[i].name << ": Jinja2 refuses (" << reference[i].error
                              << ") but the engine renders:\n"
                              << *ours;
      ++both_refused;
    }
  }
  for (const auto& [name, why] : refused) {
    auto it = ExpectedRefusals().find(name);
    EXPECT_TRUE(it != ExpectedRefusals().end()) << name << " is refused: " << why;
    if (it != ExpectedRefusals().end()) {
      EXPECT_NE(why.find(it->second), std::string::npos) << why;
    }
  }
  EXPECT_EQ(refused.size(), ExpectedRefusals().size());
  std::printf(
      "chat templates: %zu files, %zu parsed, %zu rendered at least once; %d renders "
      "byte-identical to Jinja2, %d refused by both\n",
      files.size(), files.size() - refused.size(), rendered_templates.size(), identical,
      both_refused);
  EXPECT_GE(rendered_templates.size(), 55u);
}

}  // namespace
}  // namespace specserve
