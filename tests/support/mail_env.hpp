// A store, blob directory and one account in a temp directory, for delivery tests.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "base/clock.hpp"
#include "base/random.hpp"
#include "keys/keys.hpp"
#include "mime/mime.hpp"
#include "server/server.hpp"
#include "store/store.hpp"

namespace postern::testing {

struct MailEnv {
  std::filesystem::path dir;
  std::string address = "rcpt@example.test";
  std::string password = "pw";
  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::BlobStore> blobs;
  base::SystemClock clock;
  int64_t account_id = 0;

  MailEnv() {
    dir =
        std::filesystem::temp_directory_path() / ("postern-env-" + base::system_random().token(6));
    std::filesystem::create_directories(dir);
    open();
    (void)store->add_domain("example.test");
    auto k = keys::create_account_keys(address, password, crypto::Argon2Params{1, 8192 * 1024});
    account_id = *store->create_account(address, 0, k->keyring.storage_public,
                                        k->keyring.serialize(), {{"INBOX", ""}});
  }
  ~MailEnv() {
    close();
    std::filesystem::remove_all(dir);
  }
  Result<void> open() {
    auto s = store::open_sqlite((dir / "postern.db").string(), {});
    if (!s) return s.error();
    store = std::move(*s);
    blobs = std::make_unique<store::BlobStore>((dir / "blobs").string());
    return blobs->open();
  }
  void close() {
    store.reset();
    blobs.reset();
  }
  server::Services services() const {
    server::Services svc;
    svc.store = store.get();
    svc.blobs = blobs.get();
    svc.clock = &clock;
    return svc;
  }
  server::DeliveryRequest request(const std::string& subject) const {
    server::DeliveryRequest r;
    r.envelope.helo = "client.example.org";
    r.envelope.esmtp = true;
    r.envelope.sender = *mime::parse_mailbox("from@example.org", false);
    r.envelope.recipients.push_back(*mime::parse_mailbox(address, false));
    r.accounts[address] = account_id;
    r.message = "Subject: " + subject + "\r\n\r\nbody " + subject + "\r\n";
    r.client_ip = "192.0.2.1";
    r.queue_id = "q";
    r.hostname = "mx.example.test";
    return r;
  }
  // Subjects of every stored INBOX message, decrypted with the account password.
  std::vector<std::string> subjects() const {
    std::vector<std::string> out;
    auto acc = store->account_by_id(account_id);
    auto ring = keys::Keyring::parse((*acc)->keyring);
    auto u = keys::unlock_with_password(address, *ring, password);
    auto inbox = *store->find_mailbox(account_id, "INBOX");
    for (const auto& m : *store->messages(inbox->id)) {
      auto key = keys::open_content_key(*u, m.sealed_key);
      auto blob = blobs->get(m.blob_id);
      if (!key || !blob || !keys::open_blob(*key, *blob)) {
        out.push_back("<unreadable>");
        continue;
      }
      auto sum = mime::Summary::parse(*keys::open_summary(*key, m.summary));
      auto hs = mime::parse_header_section(sum->header_section, {});
      out.push_back(mime::unfold(hs->find("Subject")->raw_value));
    }
    return out;
  }
};

}  // namespace postern::testing
