// The configuration syntax on its own: how text splits into entries and list items, what is
// tolerated (whitespace, one trailing comma) and where a malformed text is reported.
#include "allocator/api/config_syntax.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

std::vector<ConfigEntry> Split(std::string_view text) {
  absl::StatusOr<std::vector<ConfigEntry>> entries = SplitConfigText("TEST_VAR", text);
  EXPECT_TRUE(entries.ok()) << text << ": " << entries.status();
  return entries.ok() ? *entries : std::vector<ConfigEntry>{};
}

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<std::vector<ConfigEntry>> entries = SplitConfigText("TEST_VAR", text);
  EXPECT_FALSE(entries.ok()) << text << " was accepted";
  return entries.ok() ? "" : std::string(entries.status().message());
}

TEST(ConfigSyntaxTest, SplitsScalarEntriesInOrderWithoutWhitespace) {
  const std::vector<ConfigEntry> entries = Split(" a : 1 ,\tb:two words , a:3");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].key, "a");
  EXPECT_EQ(entries[0].scalar, "1");
  EXPECT_FALSE(entries[0].is_list);
  EXPECT_EQ(entries[1].key, "b");
  EXPECT_EQ(entries[1].scalar, "two words");
  EXPECT_EQ(entries[1].text, "two words");
  EXPECT_EQ(entries[2].key, "a");  // repeated keys are kept; the caller decides (later wins)
  EXPECT_EQ(entries[2].scalar, "3");
}

TEST(ConfigSyntaxTest, SplitsListValuesIntoItems) {
  const std::vector<ConfigEntry> entries = Split("k:[ 1:2 , >:8 ],x:y");
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_TRUE(entries[0].is_list);
  EXPECT_EQ(entries[0].text, "[ 1:2 , >:8 ]");
  ASSERT_EQ(entries[0].items.size(), 2u);
  EXPECT_EQ(entries[0].items[0].key, "1");
  EXPECT_EQ(entries[0].items[0].value, "2");
  EXPECT_EQ(entries[0].items[1].key, ">");
  EXPECT_EQ(entries[0].items[1].value, "8");
  EXPECT_EQ(entries[1].scalar, "y");
}

TEST(ConfigSyntaxTest, ToleratesEmptyTextEmptyListsAndOneTrailingComma) {
  EXPECT_TRUE(Split("").empty());
  EXPECT_TRUE(Split("  \n ").empty());
  EXPECT_EQ(Split("a:1,").size(), 1u);
  const std::vector<ConfigEntry> lists = Split("k:[1:2,],e:[]");
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0].items.size(), 1u);
  EXPECT_TRUE(lists[1].is_list);
  EXPECT_TRUE(lists[1].items.empty());
}

TEST(ConfigSyntaxTest, MalformedTextNamesTheVariableAndTheCharacterCountedFromOne) {
  EXPECT_THAT(ErrorOf("a:1,,b:2"), HasSubstr("TEST_VAR: malformed \"a:1,,b:2\" at character 5: "
                                             "empty entry (two commas in a row)"));
  EXPECT_THAT(ErrorOf(",a:1"), HasSubstr("at character 1: empty entry (a leading comma)"));
  EXPECT_THAT(ErrorOf("a"), HasSubstr("entry \"a\" has no ':' (write key:value)"));
  EXPECT_THAT(ErrorOf("a:"), HasSubstr("key \"a\" has no value"));
  EXPECT_THAT(ErrorOf(":1"), HasSubstr("empty key before ':'"));
  EXPECT_THAT(ErrorOf("a:1:2"), HasSubstr("a second ':' in the value of key \"a\""));
  EXPECT_THAT(ErrorOf("a:1]"), HasSubstr("unbalanced ']' in the value of key \"a\""));
  EXPECT_THAT(ErrorOf("a:x[1]"), HasSubstr("unexpected '[' inside the value of key \"a\""));
  EXPECT_THAT(ErrorOf("a:[1:2"), HasSubstr("unbalanced '[' in the value of key \"a\""));
  EXPECT_THAT(ErrorOf("a:[1:[2]]"), HasSubstr("unexpected '[' in list item \"1\" of key \"a\""));
  EXPECT_THAT(ErrorOf("a:[[1:2]]"), HasSubstr("nested '[' in key \"a\""));
  EXPECT_THAT(ErrorOf("a:[1]"), HasSubstr("list item \"1\" of key \"a\" has no ':'"));
  EXPECT_THAT(ErrorOf("a:[1:]"), HasSubstr("list item \"1\" of key \"a\" has no value"));
  EXPECT_THAT(ErrorOf("a:[:1]"), HasSubstr("empty item key in the list of key \"a\""));
  EXPECT_THAT(ErrorOf("a:1 b:2"), HasSubstr("a second ':' in the value of key \"a\""));
  EXPECT_THAT(ErrorOf("a:1"
                      "]"),
              HasSubstr("(expected key:value entries separated by commas, a list as "
                        "key:[a:b,c:d])"));
}

TEST(ConfigSyntaxTest, TrimRemovesEveryKindOfWhitespaceAroundOnly) {
  EXPECT_EQ(TrimConfigSpace(" \t\n\r\f\va b\v"), "a b");
  EXPECT_EQ(TrimConfigSpace(""), "");
  EXPECT_EQ(TrimConfigSpace("   "), "");
}

TEST(ConfigSyntaxTest, QuotedForMessageCutsLongTextAfter160Characters) {
  EXPECT_EQ(QuotedForMessage("abc"), "\"abc\"");
  const std::string exact(160, 'x');
  EXPECT_EQ(QuotedForMessage(exact), "\"" + exact + "\"");
  const std::string longer(161, 'y');
  EXPECT_EQ(QuotedForMessage(longer), "\"" + std::string(160, 'y') + "...\"");
}

}  // namespace
}  // namespace vramcache
