// The configuration's value readers and writers, each pair with a round trip: what a writer
// prints reads back, through its reader, as the value it printed. Also what each reader rejects.
#include "allocator/api/config_values.h"

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "allocator/api/config_key_setters.h"
#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache::config_values {
namespace {

TEST(ConfigValuesTest, SizesRoundTripThroughFormatAndRead) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    // Multiples of every unit, plain numbers, and the extremes.
    const int shift = static_cast<int>(rng() % 41);
    const std::size_t bytes =
        i == 0 ? std::numeric_limits<std::size_t>::max() : (rng() >> (shift + 1)) << shift;
    const std::string text = FormatSize(bytes);
    absl::StatusOr<std::size_t> read = ReadSize(text);
    ASSERT_TRUE(read.ok()) << text << ": " << read.status();
    EXPECT_EQ(*read, bytes) << text;
  }
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatSize(3 * kGiB), "3GiB");
  EXPECT_EQ(FormatSize(1536 * kMiB), "1536MiB");
  EXPECT_EQ(FormatSize(4097), "4097");
}

TEST(ConfigValuesTest, ReadSizeTakesEveryUnitSpellingAsBinaryAndExactFractions) {
  EXPECT_EQ(*ReadSize("3221225472"), 3 * kGiB);
  EXPECT_EQ(*ReadSize("3GB"), 3 * kGiB);
  EXPECT_EQ(*ReadSize("3 gib"), 3 * kGiB);
  EXPECT_EQ(*ReadSize("1.5GiB"), 1536 * kMiB);
  EXPECT_EQ(*ReadSize("64k"), 64 * kKiB);
  EXPECT_EQ(*ReadSize("2T"), 2048 * kGiB);
  EXPECT_EQ(*ReadSize("0.5KiB"), 512u);
  EXPECT_EQ(*ReadSize(".5K"), 512u);
  EXPECT_EQ(*ReadSize("18446744073709551615"), std::numeric_limits<std::size_t>::max());
}

TEST(ConfigValuesTest, ReadSizeRejectsWithAReason) {
  EXPECT_EQ(ReadSize("x").status().message(), "not a number");
  EXPECT_EQ(ReadSize(".").status().message(), "not a number");
  EXPECT_EQ(ReadSize("1..5G").status().message(), "not a number");
  EXPECT_EQ(ReadSize("3 xb").status().message(), "unknown unit \"xb\"");
  EXPECT_EQ(ReadSize("1.5").status().message(), "not a whole number of bytes");
  EXPECT_EQ(ReadSize("0.3K").status().message(), "not a whole number of bytes");
  EXPECT_EQ(ReadSize("18446744073709551616").status().message(), "larger than 2^64 - 1 bytes");
  EXPECT_EQ(ReadSize("17179869184GiB").status().message(), "larger than 2^64 - 1 bytes");
  EXPECT_EQ(ReadSize("1.00000000000000000001K").status().message(), "too many decimal places");
}

TEST(ConfigValuesTest, NumbersRoundTripAndAreNeverWrittenAsBareIntegers) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < 2000; ++i) {
    const double value = i == 0 ? 1.0 : unit(rng);
    const std::string text = FormatNumber(value);
    EXPECT_FALSE(AllDigits(text)) << text;
    const std::optional<double> read = ReadNumber(text);
    ASSERT_TRUE(read.has_value()) << text;
    EXPECT_EQ(*read, value) << text;
  }
  EXPECT_EQ(FormatNumber(1.0), "1.0");
  EXPECT_EQ(FormatNumber(0.5), "0.5");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
}

TEST(ConfigValuesTest, ReadNumberRejectsNonFiniteSignedAndPartialText) {
  EXPECT_EQ(ReadNumber("5e-1"), 0.5);
  EXPECT_EQ(ReadNumber("-1"), -1.0);
  EXPECT_FALSE(ReadNumber("+1").has_value());
  EXPECT_FALSE(ReadNumber("").has_value());
  EXPECT_FALSE(ReadNumber("inf").has_value());
  EXPECT_FALSE(ReadNumber("nan").has_value());
  EXPECT_FALSE(ReadNumber("0.5x").has_value());
}

TEST(ConfigValuesTest, ReadUnsignedTakesDigitsUpToTwoToTheSixtyFourMinusOne) {
  EXPECT_EQ(ReadUnsigned("0"), 0u);
  EXPECT_EQ(ReadUnsigned("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_FALSE(ReadUnsigned("18446744073709551616").has_value());
  EXPECT_FALSE(ReadUnsigned("-1").has_value());
  EXPECT_FALSE(ReadUnsigned("1 ").has_value());
  EXPECT_FALSE(ReadUnsigned("").has_value());
}

TEST(ConfigValuesTest, BooleansRoundTripInBothSpellings) {
  for (const bool value : {false, true}) {
    for (const bool pytorch : {false, true}) {
      EXPECT_EQ(ReadBool(BoolText(value, pytorch), pytorch), value);
    }
  }
  EXPECT_EQ(BoolText(true, false), "true");
  EXPECT_EQ(BoolText(false, true), "False");
  for (const char* yes : {"true", "TRUE", "on", "Yes", "1"}) EXPECT_EQ(ReadBool(yes, false), true);
  for (const char* no : {"false", "Off", "no", "0"}) EXPECT_EQ(ReadBool(no, false), false);
  // PyTorch's variable takes only PyTorch's spelling, exactly.
  EXPECT_FALSE(ReadBool("true", true).has_value());
  EXPECT_FALSE(ReadBool("1", true).has_value());
  EXPECT_FALSE(ReadBool("maybe", false).has_value());
}

TEST(ConfigValuesTest, SizeOrFractionRoundTrips) {
  for (const char* text : {"20GiB", "4096", "0.5", "1.0", "0.25", "3MiB"}) {
    absl::StatusOr<SizeOrFraction> read = ReadSizeOrFraction(text);
    ASSERT_TRUE(read.ok()) << text << ": " << read.status();
    const std::string written = FormatSizeOrFraction(read->bytes, read->fraction);
    absl::StatusOr<SizeOrFraction> again = ReadSizeOrFraction(written);
    ASSERT_TRUE(again.ok()) << written;
    EXPECT_EQ(again->bytes, read->bytes) << text << " -> " << written;
    EXPECT_EQ(again->fraction, read->fraction) << text << " -> " << written;
  }
  EXPECT_EQ(FormatSizeOrFraction(std::nullopt, std::nullopt), "none");
  EXPECT_EQ(FormatSizeOrFraction(std::nullopt, 0.0), "none");
  EXPECT_EQ(FormatSizeOrFraction(kGiB, 0.5), "1GiB");  // the byte form wins
}

TEST(ConfigValuesTest, SizeOrFractionRejectsZeroAndFractionsOutOfRange) {
  EXPECT_EQ(ReadSizeOrFraction("0").status().message(), "0 bytes (write none for no limit)");
  EXPECT_EQ(ReadSizeOrFraction("1.5").status().message(), "a fraction must be in (0, 1]");
  EXPECT_EQ(ReadSizeOrFraction("0.0").status().message(), "a fraction must be in (0, 1]");
  EXPECT_FALSE(ReadSizeOrFraction("none").ok());  // "none" is the keys' business
}

template <typename Value, std::size_t N>
void ExpectChoicesRoundTrip(const std::array<Choice<Value>, N>& choices) {
  for (const Choice<Value>& choice : choices) {
    EXPECT_EQ(ReadChoice(ChoiceText(choice.value, choices), choices), choice.value) << choice.name;
    std::string upper(choice.name);
    for (char& c : upper) c = static_cast<char>(c - 'a' + 'A');
    EXPECT_EQ(ReadChoice(upper, choices), choice.value) << upper;
  }
  EXPECT_FALSE(ReadChoice("not-a-choice", choices).has_value());
}

TEST(ConfigValuesTest, EveryEnumChoiceRoundTripsInAnyCase) {
  ExpectChoicesRoundTrip(kDeviceChoices);
  ExpectChoicesRoundTrip(kSimAccountingOnlyChoices);
  ExpectChoicesRoundTrip(kVmmChoices);
  ExpectChoicesRoundTrip(kCrossStreamChoices);
}

TEST(ConfigValuesTest, ChoiceListSpellsTheChoicesForMessages) {
  EXPECT_EQ(ChoiceList(kDeviceChoices), "cuda, sim or auto");
  EXPECT_EQ(ChoiceList(kSimAccountingOnlyChoices), "accounting or memory");
  constexpr std::array<Choice<int>, 1> kOne = {{{"only", 1}}};
  EXPECT_EQ(ChoiceList(kOne), "only");
}

TEST(ConfigValuesTest, LowerAndAllDigits) {
  EXPECT_EQ(Lower("MiB-X_1"), "mib-x_1");
  EXPECT_TRUE(AllDigits("0123"));
  EXPECT_FALSE(AllDigits(""));
  EXPECT_FALSE(AllDigits("1.0"));
  EXPECT_EQ(BadValue("why").message(), "why");
  EXPECT_TRUE(absl::IsInvalidArgument(BadValue("why")));
}

}  // namespace
}  // namespace vramcache::config_values
