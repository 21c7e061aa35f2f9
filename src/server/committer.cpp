// The group committer thread. Why a single thread: SQLite has one writer anyway, and batching
// every message that arrived during the previous commit into the next one turns N fsyncs into
// one, which is what lets throughput exceed the disk's fsync rate.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "base/log.hpp"
#include "server/server.hpp"

namespace postern::server {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "server"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::shutting_down:
          return "server shutting down";
        case Errc::no_mailbox:
          return "recipient has no INBOX";
      }
      return "server error";
    }
  } cat;
  return cat;
}

struct Committer::Impl {
  struct Job {
    std::vector<PreparedMessage> messages;
    std::function<void(Result<void>)> done;
    std::vector<store::Assigned>* assigned = nullptr;
    std::size_t count = 0;
  };
  store::Store& store;
  store::BlobStore& blobs;
  std::size_t max_batch;
  const base::Clock& clock;
  std::chrono::seconds dedupe_window;
  int64_t last_prune = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  bool stopping = false;
  std::atomic<uint64_t> commits{0};
  std::thread thread;

  Impl(store::Store& s, store::BlobStore& b, std::size_t m, const base::Clock& c,
       std::chrono::seconds w)
      : store(s), blobs(b), max_batch(m), clock(c), dedupe_window(w) {
    thread = std::thread([this] { loop(); });
  }

  void loop() {
    while (true) {
      std::vector<Job> batch;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping and drained
        std::size_t n = 0;
        while (!queue.empty() &&
               (batch.empty() || n + queue.front().messages.size() <= max_batch)) {
          n += queue.front().messages.size();
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      commit(batch);
    }
  }

  // At most once a minute: forget digests older than the window.
  void prune() {
    int64_t now = clock.unix_seconds();
    if (now - last_prune < 60) return;
    last_prune = now;
    if (auto r = store.prune_recent_deliveries(now - dedupe_window.count()); !r)
      base::log::warn("delivery.prune.failed", {{"error", r.error().describe()}});
  }

  void commit(std::vector<Job>& batch) {
    std::vector<store::NewMessage> records;
    std::vector<store::PendingBlob> pending;
    for (auto& j : batch)
      for (auto& m : j.messages) {
        ++j.count;
        records.push_back(std::move(m.record));
        pending.push_back(std::move(m.blob));
      }
    // Blobs and their directory entries become durable before any row points at them.
    Result<void> result = blobs.make_durable(pending);
    pending.clear();  // closes the files
    if (result) {
      auto r = store.append_messages(records);
      if (!r) {
        result = r.error();
      } else {
        for (std::size_t i = 0; i < r->size(); ++i)
          if ((*r)[i].duplicate) (void)blobs.remove(records[i].blob_id);
        std::size_t first = 0;
        for (auto& j : batch) {
          if (j.assigned)
            j.assigned->assign(r->begin() + static_cast<std::ptrdiff_t>(first),
                               r->begin() + static_cast<std::ptrdiff_t>(first + j.count));
          first += j.count;
        }
      }
    }
    commits.fetch_add(1);
    prune();
    if (!result) {
      base::log::error("delivery.commit.failed",
                       {{"messages", records.size()}, {"error", result.error().describe()}});
      for (const auto& rec : records) (void)blobs.remove(rec.blob_id);
    }
    for (auto& j : batch) j.done(result);
  }
};

Committer::Committer(store::Store& store, store::BlobStore& blobs, std::size_t max_batch,
                     const base::Clock& clock, std::chrono::seconds dedupe_window)
    : impl_(std::make_unique<Impl>(store, blobs, max_batch, clock, dedupe_window)) {}

Committer::~Committer() {
  stop();
}

void Committer::submit(std::vector<PreparedMessage> messages,
                       std::function<void(Result<void>)> done,
                       std::vector<store::Assigned>* assigned) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->queue.push_back({std::move(messages), std::move(done), assigned});
      impl_->cv.notify_one();
      return;
    }
  }
  done(Error(Errc::shutting_down));
}

void Committer::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint64_t Committer::commits() const {
  return impl_->commits.load();
}

}  // namespace postern::server
