#include "ods/common/vcpu_idle.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace ods {
namespace {

// A fake sysfs root in a temp dir; Write puts one file under it.
class VcpuIdleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = std::filesystem::temp_directory_path() / "ods-vcpu-idle-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    root_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::string& relative, const std::string& text) {
    const std::filesystem::path path = root_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  void WriteDriver(const std::string& text) {
    Write("devices/system/cpu/cpuidle/current_driver", text);
  }
  void WritePollNs(const std::string& text) {
    Write("module/haltpoll/parameters/guest_halt_poll_ns", text);
  }

  std::filesystem::path root_;
};

TEST_F(VcpuIdleTest, HaltpollWithZeroPollingHaltsAtOnce) {
  WriteDriver("haltpoll\n");
  WritePollNs("0\n");
  const VcpuIdle idle = ReadVcpuIdle(root_);
  EXPECT_EQ(idle.cpuidle_driver, "haltpoll");
  ASSERT_TRUE(idle.halt_poll_ns.has_value());
  EXPECT_EQ(*idle.halt_poll_ns, 0);
  EXPECT_TRUE(idle.HaltsWithoutPolling());
  EXPECT_EQ(idle.Describe(), "vCPU halt polling off (cpuidle haltpoll, guest_halt_poll_ns=0)");
}

TEST_F(VcpuIdleTest, HaltpollThatPollsDoesNotHaltAtOnce) {
  WriteDriver("haltpoll\n");
  WritePollNs("200000\n");
  const VcpuIdle idle = ReadVcpuIdle(root_);
  ASSERT_TRUE(idle.halt_poll_ns.has_value());
  EXPECT_EQ(*idle.halt_poll_ns, 200000);
  EXPECT_FALSE(idle.HaltsWithoutPolling());
  EXPECT_EQ(idle.Describe(), "vCPU halt polling on (cpuidle haltpoll, guest_halt_poll_ns=200000)");
}

TEST_F(VcpuIdleTest, OtherDriversAreNamedAndNeverWarned) {
  WriteDriver("intel_idle\n");
  WritePollNs("0\n");  // the module may be loaded without being the driver
  const VcpuIdle idle = ReadVcpuIdle(root_);
  EXPECT_FALSE(idle.HaltsWithoutPolling());
  EXPECT_EQ(idle.Describe(), "cpuidle driver intel_idle");
}

TEST_F(VcpuIdleTest, MissingFilesLeaveEverythingUnknown) {
  const VcpuIdle idle = ReadVcpuIdle(root_);
  EXPECT_EQ(idle.cpuidle_driver, "");
  EXPECT_FALSE(idle.halt_poll_ns.has_value());
  EXPECT_FALSE(idle.HaltsWithoutPolling());
  EXPECT_EQ(idle.Describe(), "cpuidle driver unknown");
}

TEST_F(VcpuIdleTest, UnparsablePollingIsUnknownNotZero) {
  WriteDriver("haltpoll");
  for (const char* text : {"", "abc", "-5", "12x", "99999999999999999999999"}) {
    WritePollNs(text);
    const VcpuIdle idle = ReadVcpuIdle(root_);
    EXPECT_FALSE(idle.halt_poll_ns.has_value()) << "'" << text << "'";
    EXPECT_FALSE(idle.HaltsWithoutPolling()) << "'" << text << "'";
    EXPECT_EQ(idle.Describe(), "vCPU halt polling unknown (cpuidle haltpoll)") << text;
  }
}

}  // namespace
}  // namespace ods
