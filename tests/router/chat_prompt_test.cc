// Chat prompts: the template renders with the vocabulary's BOS/EOS pieces, and special
// pieces in the rendered text become their tokens (the text between stays plain).
#include "router/http/chat_prompt.h"

#include "gtest/gtest.h"

namespace specserve {
namespace {

Vocabulary TestVocabulary() {
  Vocabulary v;
  v.pieces = {
      "<unk>", "<s>", "</s>", "<|im_start|>", "▁", "a", "b", "▁a", "<", "|", ">", "i", "m", "_",
      "s",     "t",   "r"};
  v.types.assign(v.pieces.size(), TokenType::kNormal);
  v.types[0] = TokenType::kUnknown;
  v.types[1] = v.types[2] = TokenType::kControl;
  v.types[3] = TokenType::kUserDefined;
  v.scores.assign(v.pieces.size(), 0.0f);
  return v;
}

TEST(ChatPrompt, SpecialPiecesBecomeTheirTokens) {
  Tokenizer tokenizer(TestVocabulary());
  ChatPromptBuilder builder(tokenizer, nullptr);
  const std::vector<int32_t> ids = builder.Encode("<s><|im_start|>a</s>");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids[1], 3);
  EXPECT_EQ(ids.back(), 2);
  // Plain text stays plain: no special token inside "a b".
  for (int32_t id : builder.Encode("a b")) EXPECT_GT(id, 3);
}

TEST(ChatPrompt, RendersWithBosAndEosPieces) {
  Tokenizer tokenizer(TestVocabulary());
  auto t = ChatTemplate::Parse(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor "
      "%}"
      "{% if add_generation_prompt %}[assistant]{% endif %}");
  ASSERT_TRUE(t.ok()) << t.status();
  ChatPromptBuilder builder(tokenizer, *t);
  auto text =
      builder.Render(nlohmann::ordered_json::parse(R"([{"role":"user","content":"ab"}])"), true);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "<s>[user]ab</s>[assistant]");
  auto no_gen =
      builder.Render(nlohmann::ordered_json::parse(R"([{"role":"user","content":"ab"}])"), false);
  EXPECT_EQ(*no_gen, "<s>[user]ab</s>");
}

TEST(ChatPrompt, NoTemplateIsAClearError) {
  Tokenizer tokenizer(TestVocabulary());
  ChatPromptBuilder builder(tokenizer, nullptr);
  auto text = builder.Render(nlohmann::ordered_json::array(), true);
  ASSERT_FALSE(text.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(text.status()));
  EXPECT_NE(text.status().message().find("--chat-template"), std::string::npos);
}

}  // namespace
}  // namespace specserve
