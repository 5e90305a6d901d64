#include "ods/common/check.h"

#include <gtest/gtest.h>

namespace ods {
namespace {

TEST(CheckDeathTest, FailedCheckAbortsNamingTheCondition) {
  const int answer = 41;
  EXPECT_DEATH(ODS_CHECK(answer == 42), "ODS_CHECK failed: answer == 42");
}

TEST(CheckTest, PassingCheckContinues) {
  int evaluated = 0;
  ODS_CHECK(++evaluated == 1);
  EXPECT_EQ(evaluated, 1);
}

}  // namespace
}  // namespace ods
