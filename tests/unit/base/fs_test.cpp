#include <gtest/gtest.h>

#include <filesystem>

#include "base/fs.hpp"
#include "base/random.hpp"
#include "support/power_loss.hpp"

namespace postern::base::fs {
namespace {

std::string temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("postern-fs-" + system_random().token(6));
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(Fs, DurableWriteReplacesContent) {
  auto d = temp_dir();
  ASSERT_TRUE(write_file_durable(d + "/f", "one"));
  ASSERT_TRUE(write_file_durable(d + "/f", "two"));
  EXPECT_EQ(*read_file(d + "/f"), "two");
  // No temp files are left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d), {}), 1);
  std::filesystem::remove_all(d);
}

TEST(Fs, InjectedErrorLeavesOldContent) {
  auto d = temp_dir();
  ASSERT_TRUE(write_file_durable(d + "/f", "old"));
  {
    testing::PowerLossSimulator sim;
    sim.fail_when([](const std::string& kind, const std::string&) { return kind == "write"; },
                  ENOSPC);
    auto r = write_file_durable(d + "/f", "new");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), std::errc::no_space_on_device);
  }
  EXPECT_EQ(*read_file(d + "/f"), "old");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d), {}), 1);
  std::filesystem::remove_all(d);
}

TEST(Fs, PowerLossUndoesWhatWasNotSynced) {
  auto d = temp_dir();
  testing::PowerLossSimulator sim;
  ASSERT_TRUE(write_file_durable(d + "/durable", "kept"));
  {
    auto f = File::open(d + "/unsynced", File::Mode::create_new);
    ASSERT_TRUE(f);
    std::string data = "lost";
    ASSERT_TRUE(f->append({reinterpret_cast<const unsigned char*>(data.data()), data.size()}));
  }
  {
    auto f = File::open(d + "/durable", File::Mode::read_write);
    std::string data = "XXXX";
    ASSERT_TRUE(f->write_at(0, {reinterpret_cast<const unsigned char*>(data.data()), 4}));
  }
  sim.cut_power();
  EXPECT_EQ(*read_file(d + "/durable"), "kept");
  EXPECT_FALSE(exists(d + "/unsynced"));
  std::filesystem::remove_all(d);
}

TEST(Fs, RenameWithoutDirectorySyncIsLost) {
  auto d = temp_dir();
  testing::PowerLossSimulator sim;
  {
    auto f = File::open(d + "/a.tmp", File::Mode::create_new);
    std::string data = "x";
    ASSERT_TRUE(f->append({reinterpret_cast<const unsigned char*>(data.data()), 1}));
    ASSERT_TRUE(f->sync());
  }
  ASSERT_TRUE(rename(d + "/a.tmp", d + "/a"));
  sim.cut_power();
  EXPECT_FALSE(exists(d + "/a"));
  std::filesystem::remove_all(d);
}

TEST(Fs, CrashFailsEverythingAfterward) {
  auto d = temp_dir();
  testing::PowerLossSimulator sim;
  sim.crash_after(2);
  EXPECT_FALSE(write_file_durable(d + "/f", "data"));
  EXPECT_TRUE(sim.crashed());
  EXPECT_FALSE(write_file_durable(d + "/g", "data"));
  sim.cut_power();
  EXPECT_TRUE(write_file_durable(d + "/h", "data"));
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace postern::base::fs
