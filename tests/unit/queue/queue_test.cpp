// The outbound queue over a real SQLite store and blob directory, with a test clock: durable
// enqueue, encryption at rest, retry schedule, bounces, delay notices, expiry, removal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/random.hpp"
#include "queue/queue.hpp"

namespace postern::queue {
namespace {

class TestClock final : public base::Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return t; }
  std::chrono::system_clock::time_point t{std::chrono::seconds(1'800'000'000)};
};

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::init();
    dir_ = std::filesystem::temp_directory_path() /
           ("postern-queue-" + base::system_random().token(6));
    std::filesystem::create_directories(dir_);
    auto s = store::open_sqlite((dir_ / "db").string(), {});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    blobs_ = std::make_unique<store::BlobStore>((dir_ / "blobs").string());
    ASSERT_TRUE(blobs_->open());
    policy_.lifetime = std::chrono::seconds(3600);
    policy_.warn_after = std::chrono::seconds(600);
    policy_.first_retry = std::chrono::seconds(60);
    policy_.max_retry = std::chrono::seconds(300);
    q_ = std::make_unique<Queue>(*store_, *blobs_, crypto::random_secret(32), clock_, policy_,
                                 "mail.example.test");
  }
  void TearDown() override {
    q_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string enqueue(std::string sender, std::vector<std::string> rcpts) {
    NewMessage m;
    m.sender = std::move(sender);
    m.recipients = std::move(rcpts);
    m.content = "From: ann@example.test\r\nSubject: secret-subject-marker\r\n\r\nhello\r\n";
    auto id = q_->enqueue(m);
    EXPECT_TRUE(id);
    return id ? *id : "";
  }
  store::QueuedMessage get(const std::string& id) {
    auto m = store_->queued(id);
    EXPECT_TRUE(m && *m);
    return **m;
  }
  void advance(int seconds) { clock_.t += std::chrono::seconds(seconds); }
  Attempt attempt(const store::QueuedMessage& m, std::size_t i, int code, std::string enhanced) {
    return Attempt{m.recipients.at(i).id, smtp::Reply{code, enhanced, "text"}, "mx.example.org"};
  }
  // Queued notifications (sender <>), newest last.
  std::vector<store::QueuedMessage> notices() {
    std::vector<store::QueuedMessage> out;
    for (auto& m : *store_->queue_all())
      if (m.sender.empty()) out.push_back(m);
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::BlobStore> blobs_;
  TestClock clock_;
  Policy policy_;
  std::unique_ptr<Queue> q_;
};

TEST_F(QueueTest, RetryScheduleDoublesUpToTheMaximum) {
  EXPECT_EQ(next_attempt(policy_, 0, 1), 60);
  EXPECT_EQ(next_attempt(policy_, 0, 2), 120);
  EXPECT_EQ(next_attempt(policy_, 0, 3), 240);
  EXPECT_EQ(next_attempt(policy_, 0, 4), 300);
  EXPECT_EQ(next_attempt(policy_, 0, 60), 300);
}

TEST_F(QueueTest, ContentIsEncryptedAtRestAndReadBack) {
  auto id = enqueue("ann@example.test", {"bob@example.org"});
  auto m = get(id);
  EXPECT_EQ(m.recipients.size(), 1u);
  EXPECT_EQ(m.recipients[0].domain, "example.org");
  EXPECT_EQ(m.blob_id, "");  // small: in the row
  // A big one goes to a blob file.
  NewMessage big;
  big.sender = "ann@example.test";
  big.recipients = {"bob@example.org"};
  big.content = "Subject: secret-subject-marker\r\n\r\n" + std::string(300 * 1024, 'x');
  auto big_id = q_->enqueue(big);
  ASSERT_TRUE(big_id);
  EXPECT_NE(get(*big_id).blob_id, "");
  ASSERT_TRUE(q_->content(get(*big_id)));
  EXPECT_EQ(*q_->content(get(*big_id)), big.content);
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str().find("secret-subject-marker"), std::string::npos);
  }
  auto content = q_->content(m);
  ASSERT_TRUE(content);
  EXPECT_NE(content->find("secret-subject-marker"), std::string::npos);
  // Another message's id as associated data does not open it.
  auto other = m;
  other.id = "someotherid";
  EXPECT_FALSE(q_->content(other));
  auto blobs = store_->blob_ids();
  ASSERT_TRUE(blobs);
  EXPECT_EQ(*blobs, std::vector<std::string>{get(*big_id).blob_id});  // kept by the sweep
  ASSERT_TRUE(q_->remove(*big_id));
  EXPECT_TRUE(store_->blob_ids()->empty());
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
    files += e.is_regular_file();
  EXPECT_EQ(files, 0u);
}

TEST_F(QueueTest, TemporaryFailureRetriesLater) {
  auto id = enqueue("ann@example.test", {"bob@example.org"});
  auto m = get(id);
  auto due = q_->due(10);
  ASSERT_TRUE(due);
  EXPECT_EQ(due->size(), 1u);
  auto left = q_->record(m, {attempt(m, 0, 451, "4.7.1")});
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1u);
  EXPECT_TRUE(q_->due(10)->empty());
  m = get(id);
  EXPECT_EQ(m.recipients[0].attempts, 1);
  EXPECT_EQ(m.recipients[0].last_reply, "451 4.7.1 text");
  advance(61);
  EXPECT_EQ(q_->due(10)->size(), 1u);
  ASSERT_TRUE(q_->record(get(id), {attempt(m, 0, 250, "2.0.0")}));
  EXPECT_FALSE(*store_->queued(id));  // finished: rows and blob gone
  EXPECT_TRUE(store_->blob_ids()->empty());
  EXPECT_TRUE(notices().empty());
}

TEST_F(QueueTest, PermanentFailureBouncesToTheSender) {
  auto id = enqueue("ann@example.test", {"bob@example.org", "carol@example.org"});
  auto m = get(id);
  auto left = q_->record(m, {attempt(m, 0, 550, "5.1.1"), attempt(m, 1, 451, "4.3.0")});
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1u);
  auto n = notices();
  ASSERT_EQ(n.size(), 1u);
  ASSERT_EQ(n[0].recipients.size(), 1u);
  EXPECT_EQ(n[0].recipients[0].address, "ann@example.test");
  auto dsn = q_->content(n[0]);
  ASSERT_TRUE(dsn);
  EXPECT_NE(dsn->find("Final-Recipient: rfc822; bob@example.org"), std::string::npos);
  EXPECT_NE(dsn->find("Status: 5.1.1"), std::string::npos);
  EXPECT_EQ(dsn->find("carol@example.org"), std::string::npos);
  EXPECT_NE(dsn->find("Subject: secret-subject-marker"), std::string::npos);  // headers returned
  EXPECT_EQ(dsn->find("hello"), std::string::npos);                           // body is not
}

TEST_F(QueueTest, NullSenderNeverGetsANotice) {
  auto id = enqueue("", {"bob@example.org"});
  auto m = get(id);
  ASSERT_TRUE(q_->record(m, {attempt(m, 0, 550, "5.1.1")}));
  EXPECT_FALSE(*store_->queued(id));
  EXPECT_TRUE(store_->queue_all()->empty());
}

TEST_F(QueueTest, DelayNoticeOnceThenBounceAtExpiry) {
  auto id = enqueue("ann@example.test", {"bob@example.org"});
  advance(700);
  auto m = get(id);
  ASSERT_TRUE(q_->record(m, {attempt(m, 0, 421, "4.4.2")}));
  auto n = notices();
  ASSERT_EQ(n.size(), 1u);
  auto text = q_->content(n[0]);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("Action: delayed"), std::string::npos);
  EXPECT_NE(text->find("Will-Retry-Until: "), std::string::npos);
  EXPECT_TRUE(get(id).warned);
  advance(400);
  m = get(id);
  ASSERT_TRUE(q_->record(m, {attempt(m, 0, 421, "4.4.2")}));
  EXPECT_EQ(notices().size(), 1u);  // no second delay notice
  advance(3600);
  m = get(id);
  ASSERT_TRUE(q_->record(m, {attempt(m, 0, 421, "4.4.2")}));
  EXPECT_FALSE(*store_->queued(id));
  n = notices();
  ASSERT_EQ(n.size(), 2u);
  bool bounced = false;
  for (auto& x : n) {
    auto t = q_->content(x);
    if (t && t->find("Action: failed") != std::string::npos) {
      bounced = true;
      EXPECT_NE(t->find("Status: 4.4.2"), std::string::npos);
    }
  }
  EXPECT_TRUE(bounced);
}

TEST_F(QueueTest, HoldReleaseRetryDelete) {
  auto id = enqueue("ann@example.test", {"bob@example.org"});
  ASSERT_TRUE(q_->hold(id, true));
  EXPECT_TRUE(q_->due(10)->empty());
  ASSERT_TRUE(q_->hold(id, false));
  auto m = get(id);
  ASSERT_TRUE(q_->record(m, {attempt(m, 0, 451, "4.0.0")}));
  EXPECT_TRUE(q_->due(10)->empty());
  ASSERT_TRUE(q_->retry_now(id));
  EXPECT_EQ(q_->due(10)->size(), 1u);
  auto removed = q_->remove(id);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(*q_->remove(id));
  EXPECT_FALSE(q_->hold("nope", true));
  EXPECT_TRUE(store_->blob_ids()->empty());
}

TEST_F(QueueTest, HopCount) {
  EXPECT_EQ(hop_count("Received: a\r\nreceived: b\r\nX: y\r\n\r\nReceived: body\r\n"), 2u);
}

}  // namespace
}  // namespace postern::queue
