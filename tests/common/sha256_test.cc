#include "ods/common/sha256.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace ods {
namespace {

std::string Hex(const Sha256Digest& d) {
  std::string out;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

// FIPS 180-2 test vectors.
TEST(Sha256Test, MatchesTheStandardVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, BytesAfterANulCount) { EXPECT_NE(Sha256(std::string("a\0b", 3)), Sha256("a")); }

}  // namespace
}  // namespace ods
