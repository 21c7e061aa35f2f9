#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <sqlite3.h>
#include "base/fs.hpp"
#include "base/random.hpp"

#include "store/sqlite/migrations.hpp"
#include "store/store.hpp"

namespace postern::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("postern-store-" + base::system_random().token(6));
    std::filesystem::create_directories(dir_);
    auto s = open_sqlite((dir_ / "db").string(), {});
    ASSERT_TRUE(s) << s.error().describe();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  int64_t account(const std::string& addr) {
    auto id =
        store_->create_account(addr, 1000, "pub", "ring", {{"INBOX", ""}, {"Sent", "\\Sent"}});
    EXPECT_TRUE(id);
    return *id;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, DomainsAccountsAliases) {
  ASSERT_TRUE(store_->add_domain("example.test"));
  EXPECT_EQ(store_->add_domain("example.test").error().code(), Errc::exists);
  EXPECT_TRUE(*store_->is_local_domain("example.test"));
  EXPECT_FALSE(*store_->is_local_domain("other.test"));
  int64_t id = account("a@example.test");
  EXPECT_FALSE(store_->create_account("a@example.test", 1, "p", "r", {}));
  ASSERT_TRUE(store_->add_alias("alias@example.test", id));
  EXPECT_FALSE(store_->add_alias("a@example.test", id));  // shadows an account
  EXPECT_EQ(**store_->resolve_address("a@example.test"), id);
  EXPECT_EQ(**store_->resolve_address("alias@example.test"), id);
  EXPECT_FALSE(store_->resolve_address("nobody@example.test")->has_value());
  auto acc = store_->find_account("a@example.test");
  ASSERT_TRUE(acc && *acc);
  EXPECT_EQ((*acc)->keyring, "ring");
  ASSERT_TRUE(store_->update_keyring(id, "ring2"));
  EXPECT_EQ((*store_->account_by_id(id))->keyring, "ring2");
  EXPECT_EQ(store_->update_keyring(id + 100, "x").error().code(), Errc::not_found);
}

TEST_F(StoreTest, AppendAssignsUidsAndModseqs) {
  int64_t id = account("a@example.test");
  auto inbox = store_->find_mailbox(id, "INBOX");
  ASSERT_TRUE(inbox && *inbox);
  EXPECT_EQ((*inbox)->uidnext, 1u);
  std::vector<NewMessage> batch(3);
  for (int i = 0; i < 3; ++i) {
    batch[i].mailbox_id = (*inbox)->id;
    batch[i].blob_id = "b/" + std::to_string(i);
    batch[i].size = 10;
    batch[i].sealed_key = "k";
    batch[i].summary = "s";
  }
  auto uids = store_->append_messages(batch);
  ASSERT_TRUE(uids);
  ASSERT_EQ(uids->size(), 3u);
  EXPECT_EQ((*uids)[0].uid, 1u);
  EXPECT_EQ((*uids)[2].uid, 3u);
  EXPECT_LT((*uids)[0].modseq, (*uids)[2].modseq);
  auto again = store_->find_mailbox(id, "INBOX");
  EXPECT_EQ((*again)->uidnext, 4u);
  EXPECT_EQ(store_->messages((*inbox)->id)->size(), 3u);
  // A batch with one bad row commits nothing.
  batch[1].mailbox_id = 9999;
  EXPECT_FALSE(store_->append_messages(batch));
  EXPECT_EQ(store_->messages((*inbox)->id)->size(), 3u);
  EXPECT_TRUE(store_->check_integrity());
}

TEST_F(StoreTest, DeleteAccountRemovesEverything) {
  int64_t id = account("a@example.test");
  auto inbox = *store_->find_mailbox(id, "INBOX");
  NewMessage m;
  m.mailbox_id = inbox->id;
  m.blob_id = "x/y";
  ASSERT_TRUE(store_->append_messages(std::span(&m, 1)));
  auto blobs = store_->delete_account(id);
  ASSERT_TRUE(blobs);
  EXPECT_EQ(*blobs, std::vector<std::string>{"x/y"});
  EXPECT_FALSE(store_->find_account("a@example.test")->has_value());
  EXPECT_TRUE(store_->mailboxes(id)->empty());
  EXPECT_TRUE(store_->check_integrity());
}

TEST_F(StoreTest, ReopenKeepsSchemaAndData) {
  account("a@example.test");
  store_.reset();
  auto s = open_sqlite((dir_ / "db").string(), {});
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)->accounts()->size(), 1u);
}

TEST(BlobStore, WriteMakeDurableGetRemove) {
  auto dir =
      std::filesystem::temp_directory_path() / ("postern-blobs-" + base::system_random().token(6));
  BlobStore b(dir.string());
  ASSERT_TRUE(b.open());
  std::vector<PendingBlob> pending;
  for (const char* data : {"one", "two"}) {
    auto p = b.write(data);
    ASSERT_TRUE(p);
    pending.push_back(std::move(*p));
  }
  EXPECT_EQ(pending[0].id.substr(0, 6), pending[1].id.substr(0, 6));  // same bucket
  ASSERT_TRUE(b.make_durable(pending));
  EXPECT_EQ(*b.get(pending[0].id), "one");
  EXPECT_EQ(*b.get(pending[1].id), "two");
  EXPECT_FALSE(b.get("../etc/passwd"));
  EXPECT_FALSE(b.get("a/b/c"));
  auto listed = b.list();
  ASSERT_TRUE(listed);
  std::sort(listed->begin(), listed->end());
  std::vector<std::string> ids{pending[0].id, pending[1].id};
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(*listed, ids);
  ASSERT_TRUE(b.remove(pending[0].id));
  EXPECT_FALSE(b.get(pending[0].id));
  EXPECT_EQ(b.list()->size(), 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace postern::store

namespace postern::store {
namespace {

TEST_F(StoreTest, MailboxIdsAreNeverReused) {
  int64_t a = account("a@example.test");
  auto x = store_->create_mailbox(a, {"X", ""}, 5);
  ASSERT_TRUE(x);
  ASSERT_TRUE(store_->delete_mailbox(x->id));
  auto y = store_->create_mailbox(a, {"Y", ""}, 5);
  ASSERT_TRUE(y);
  EXPECT_GT(y->id, x->id);
  int64_t b = account("b@example.test");
  auto boxes = store_->mailboxes(b);
  ASSERT_TRUE(boxes);
  for (const auto& m : *boxes) EXPECT_GT(m.id, y->id);
}

TEST_F(StoreTest, DkimKeysPerDomainNewestFirst) {
  ASSERT_TRUE(store_->add_dkim_key({"example.test", "s1e", "ed25519-sha256", "sec", "pub", 10}));
  ASSERT_TRUE(store_->add_dkim_key({"example.test", "s2e", "ed25519-sha256", "sec2", "pub2", 20}));
  ASSERT_TRUE(store_->add_dkim_key({"other.test", "s1e", "rsa-sha256", "sec3", "pub3", 30}));
  auto r = store_->add_dkim_key({"example.test", "s1e", "rsa-sha256", "x", "y", 40});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::exists);
  auto keys = store_->dkim_keys("example.test");
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].selector, "s2e");
  EXPECT_EQ((*keys)[0].secret, "sec2");
  EXPECT_EQ((*keys)[1].public_key, "pub");
}

TEST_F(StoreTest, InstanceSecretIsCreatedOnce) {
  EXPECT_EQ(*store_->instance_secret("k", "first"), "first");
  EXPECT_EQ(*store_->instance_secret("k", "second"), "first");
}

TEST_F(StoreTest, DuplicateDigestsAreNotStoredTwice) {
  int64_t id = account("a@example.test");
  auto inbox = *store_->find_mailbox(id, "INBOX");
  NewMessage m;
  m.mailbox_id = inbox->id;
  m.blob_id = "x/1";
  m.internal_date = 100;
  m.dedupe_digest = "digest";
  std::vector<NewMessage> batch{m, m};
  batch[1].blob_id = "x/2";
  auto r = store_->append_messages(batch);
  ASSERT_TRUE(r);
  EXPECT_FALSE((*r)[0].duplicate);
  EXPECT_TRUE((*r)[1].duplicate);
  EXPECT_EQ((*r)[1].uid, (*r)[0].uid);
  EXPECT_EQ(store_->messages(inbox->id)->size(), 1u);
  ASSERT_TRUE(store_->prune_recent_deliveries(101));
  m.blob_id = "x/3";
  auto again = store_->append_messages(std::span(&m, 1));
  EXPECT_FALSE((*again)[0].duplicate);
  EXPECT_EQ(store_->messages(inbox->id)->size(), 2u);
}

// A database made by an earlier version (schema 5, ciphertext in `messages`) upgrades with its
// messages intact: the data moves to message_data, copies and expunges keep working.
TEST(StoreMigration, Version5MessagesSurviveTheSplit) {
  auto dir = std::filesystem::temp_directory_path() /
             ("postern-migrate-" + base::system_random().token(6));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "db").string();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::string sql = "CREATE TABLE schema_version(version INTEGER NOT NULL);";
    for (int v = 0; v < 5; ++v) sql += sqlite::migrations[static_cast<std::size_t>(v)];
    sql +=
        "INSERT INTO schema_version VALUES (5);"
        "INSERT INTO accounts(id, address, created, storage_public, keyring) "
        "VALUES (1, 'a@x.test', 1, 'pub', 'ring');"
        "INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq) "
        "VALUES (1, 1, 'INBOX', 9, 3, 3), (2, 1, 'Archive', 9, 1, 1);"
        "INSERT INTO messages(mailbox_id, uid, modseq, flags, internal_date, size, blob_id, "
        "sealed_key, summary, wrapped_key) VALUES (1, 1, 2, '\\Seen', 100, 10, 'b1', 'k1', "
        "'s1', ''), (1, 2, 3, '', 200, 20, 'b2', 'k2', 's2', 'w2');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto s = open_sqlite(path, {});
  ASSERT_TRUE(s) << s.error().describe();
  auto& store = **s;
  std::vector<uint32_t> both = {1, 2};
  auto recs = store.messages_by_uid(1, both);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].sealed_key, "k1");
  EXPECT_EQ((*recs)[0].summary, "s1");
  EXPECT_EQ((*recs)[0].flags, "\\Seen");
  EXPECT_EQ((*recs)[1].wrapped_key, "w2");
  EXPECT_EQ((*recs)[1].blob_id, "b2");
  auto copied = store.copy_messages(1, both, 2, true);
  ASSERT_TRUE(copied);
  EXPECT_TRUE(copied->removed.unreferenced_blobs.empty());  // the copies still use them
  auto moved = store.messages(2);
  ASSERT_TRUE(moved);
  ASSERT_EQ(moved->size(), 2u);
  EXPECT_EQ((*moved)[1].summary, "s2");
  EXPECT_TRUE(store.check_integrity());
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace postern::store
