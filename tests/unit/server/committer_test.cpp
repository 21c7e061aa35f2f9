#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "support/mail_env.hpp"

namespace postern::server {
namespace {

TEST(Committer, GroupsConcurrentSubmissionsIntoFewCommits) {
  testing::MailEnv env;
  Services svc = env.services();
  Committer committer(*env.store, *env.blobs, 512, env.clock, std::chrono::seconds(600));
  constexpr int n = 200;
  std::vector<std::vector<PreparedMessage>> prepared;
  for (int i = 0; i < n; ++i) {
    auto p = prepare_delivery(svc, env.request("m" + std::to_string(i)));
    ASSERT_TRUE(p) << p.error().describe();
    prepared.push_back(std::move(*p));
  }
  std::vector<std::promise<bool>> done(n);
  for (int i = 0; i < n; ++i)
    committer.submit(std::move(prepared[i]),
                     [&done, i](Result<void> r) { done[i].set_value(bool(r)); });
  for (auto& d : done) EXPECT_TRUE(d.get_future().get());
  EXPECT_LT(committer.commits(), static_cast<uint64_t>(n));
  auto subjects = env.subjects();
  EXPECT_EQ(subjects.size(), static_cast<std::size_t>(n));
  committer.stop();
  bool refused = false;
  committer.submit({}, [&](Result<void> r) { refused = !r; });
  EXPECT_TRUE(refused);
}

TEST(Delivery, AddsTraceHeadersAndEncryptsEverything) {
  testing::MailEnv env;
  Services svc = env.services();
  auto p = prepare_delivery(svc, env.request("SECRET-SUBJECT"));
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 1u);
  const auto& rec = (*p)[0].record;
  auto blob = env.blobs->get(rec.blob_id);
  EXPECT_EQ(blob->find("SECRET-SUBJECT"), std::string::npos);
  EXPECT_EQ(rec.summary.find("SECRET-SUBJECT"), std::string::npos);
  EXPECT_EQ(blob->find("from@example.org"), std::string::npos);
  Committer c(*env.store, *env.blobs, 8, env.clock, std::chrono::seconds(600));
  std::promise<bool> ok;
  c.submit(std::move(*p), [&](Result<void> r) { ok.set_value(bool(r)); });
  ASSERT_TRUE(ok.get_future().get());
  EXPECT_EQ(env.subjects(), std::vector<std::string>{"SECRET-SUBJECT"});
}

TEST(Delivery, FailureRepliesAreTemporary) {
  EXPECT_EQ(delivery_failure_reply(errno_error(ENOSPC, "x")).code, 452);
  EXPECT_EQ(delivery_failure_reply(errno_error(ENOSPC, "x")).enhanced, "4.3.1");
  EXPECT_EQ(delivery_failure_reply(Error(store::Errc::full)).code, 452);
  EXPECT_EQ(delivery_failure_reply(errno_error(EIO, "x")).code, 451);
}

}  // namespace
}  // namespace postern::server

namespace postern::server {
namespace {

bool deliver(Committer& c, const Services& svc, const DeliveryRequest& req) {
  auto p = prepare_delivery(svc, req);
  if (!p) return false;
  std::promise<bool> ok;
  c.submit(std::move(*p), [&](Result<void> r) { ok.set_value(bool(r)); });
  return ok.get_future().get();
}

TEST(Delivery, RetriedMessageIsStoredOnce) {
  testing::MailEnv env;
  Services svc = env.services();
  auto key = crypto::SecretBytes::copy_of(std::string(32, 'k'));
  svc.dedupe_key = &key;
  Committer c(*env.store, *env.blobs, 8, env.clock, std::chrono::seconds(600));
  auto req = env.request("retried");
  EXPECT_TRUE(deliver(c, svc, req));
  EXPECT_TRUE(deliver(c, svc, req));  // acknowledged again, not stored again
  auto other = env.request("retried");
  other.envelope.sender = *mime::parse_mailbox("someone-else@example.org", false);
  EXPECT_TRUE(deliver(c, svc, other));  // same content, another sender: a new message
  EXPECT_EQ(env.subjects(), (std::vector<std::string>{"retried", "retried"}));
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(env.dir / "blobs"))
    files += e.is_regular_file();
  EXPECT_EQ(files, 2u);  // the duplicate's blob was removed
  // Past the window the digest is forgotten.
  ASSERT_TRUE(env.store->prune_recent_deliveries(env.clock.unix_seconds() + 1));
  EXPECT_TRUE(deliver(c, svc, req));
  EXPECT_EQ(env.subjects().size(), 3u);
}

}  // namespace
}  // namespace postern::server
