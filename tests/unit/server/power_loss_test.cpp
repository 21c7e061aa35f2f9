// Durability under simulated power loss: the machine dies after a random number of disk
// operations, everything not fsync'd is undone, and the store must open consistent with every
// acknowledged message readable. Also ENOSPC and EIO during delivery: 4xx, store consistent.
#include <gtest/gtest.h>

#include <future>
#include <random>
#include <set>

#include "support/mail_env.hpp"
#include "support/power_loss.hpp"

namespace postern::server {
namespace {

struct Outcome {
  std::vector<std::string> acknowledged;
};

// Delivers messages in waves of 4 concurrent submissions until the simulated crash.
Outcome deliver_until_crash(testing::MailEnv& env, testing::PowerLossSimulator& sim, int cycle) {
  Outcome out;
  Services svc = env.services();
  Committer committer(*env.store, *env.blobs, 64, env.clock, std::chrono::seconds(600));
  for (int wave = 0; wave < 8 && !sim.crashed(); ++wave) {
    std::vector<std::pair<std::string, std::future<bool>>> pending;
    for (int j = 0; j < 4; ++j) {
      std::string subject =
          "c" + std::to_string(cycle) + "-w" + std::to_string(wave) + "-" + std::to_string(j);
      auto prepared = prepare_delivery(svc, env.request(subject));
      if (!prepared) continue;
      auto promise = std::make_shared<std::promise<bool>>();
      pending.emplace_back(subject, promise->get_future());
      committer.submit(std::move(*prepared),
                       [promise](Result<void> r) { promise->set_value(bool(r)); });
    }
    for (auto& [subject, f] : pending)
      if (f.get()) out.acknowledged.push_back(subject);
  }
  committer.stop();
  return out;
}

TEST(PowerLoss, AcknowledgedMessagesSurvive200Cycles) {
  testing::MailEnv env;
  testing::PowerLossSimulator sim;
  std::mt19937 rng(20261203);
  std::vector<std::string> all_acknowledged;
  int crashes = 0;
  for (int cycle = 0; cycle < 200; ++cycle) {
    sim.crash_after(std::uniform_int_distribution<std::size_t>(0, 150)(rng));
    if (env.open()) {
      auto out = deliver_until_crash(env, sim, cycle);
      all_acknowledged.insert(all_acknowledged.end(), out.acknowledged.begin(),
                              out.acknowledged.end());
    }
    crashes += sim.crashed();
    env.close();
    sim.cut_power();
    ASSERT_TRUE(env.open()) << "cycle " << cycle;
    ASSERT_TRUE(env.store->check_integrity()) << "cycle " << cycle;
    auto stored = env.subjects();
    std::set<std::string> have(stored.begin(), stored.end());
    EXPECT_EQ(have.count("<unreadable>"), 0u) << "cycle " << cycle;
    for (const auto& s : all_acknowledged)
      ASSERT_TRUE(have.count(s)) << "acknowledged message " << s << " lost at cycle " << cycle;
    env.close();
  }
  EXPECT_GT(crashes, 150);
  EXPECT_GT(all_acknowledged.size(), 200u);
  std::printf("power loss: 200 cycles, %d crashes, %zu acknowledged messages, none lost\n", crashes,
              all_acknowledged.size());
}

void expect_fault_gives_4xx(int err, const std::string& kind, int code, const std::string& where) {
  testing::MailEnv env;
  testing::PowerLossSimulator sim;
  Services svc = env.services();
  Committer committer(*env.store, *env.blobs, 8, env.clock, std::chrono::seconds(600));
  sim.fail_when(
      [&](const std::string& k, const std::string& path) {
        return k == kind && path.find(where) != std::string::npos;
      },
      err);
  Result<void> result;
  auto prepared = prepare_delivery(svc, env.request("fault"));
  if (!prepared) {
    result = prepared.error();
  } else {
    std::promise<Result<void>> p;
    committer.submit(std::move(*prepared), [&](Result<void> r) { p.set_value(r); });
    result = p.get_future().get();
  }
  ASSERT_FALSE(result) << kind << " " << where;
  EXPECT_EQ(delivery_failure_reply(result.error()).code, code) << result.error().describe();
  sim.fail_when(nullptr, 0);
  EXPECT_TRUE(env.store->check_integrity());
  EXPECT_TRUE(env.subjects().empty());
  // The next delivery works.
  auto again = prepare_delivery(svc, env.request("after"));
  ASSERT_TRUE(again);
  std::promise<bool> ok;
  committer.submit(std::move(*again), [&](Result<void> r) { ok.set_value(bool(r)); });
  EXPECT_TRUE(ok.get_future().get());
  EXPECT_EQ(env.subjects(), std::vector<std::string>{"after"});
}

TEST(Faults, EnospcOnBlobWriteIs452) {
  expect_fault_gives_4xx(ENOSPC, "write", 452, "blobs");
}
TEST(Faults, EioOnBlobSyncIs451) {
  expect_fault_gives_4xx(EIO, "sync", 451, "blobs");
}
TEST(Faults, EnospcOnDatabaseWriteIs452) {
  expect_fault_gives_4xx(ENOSPC, "write", 452, "postern.db");
}
TEST(Faults, EioOnDatabaseSyncIs451) {
  expect_fault_gives_4xx(EIO, "sync", 451, "postern.db");
}

}  // namespace
}  // namespace postern::server
