#include "server/dns_pump.hpp"

#include "base/log.hpp"

namespace postern::server {

DnsPump::DnsPump(asio::io_context& io, dns::Resolver& resolver)
    : strand_(asio::make_strand(io)), sd_(strand_, resolver.fd()), resolver_(resolver) {}

DnsPump::~DnsPump() {
  sd_.release();  // the descriptor belongs to the resolver
}

void DnsPump::start(std::vector<Query> queries, std::function<void(Answers)> done) {
  asio::dispatch(strand_, [this, queries = std::move(queries), done = std::move(done)]() mutable {
    struct Batch {
      Answers answers;
      std::size_t left = 0;
      std::function<void(Answers)> done;
    };
    auto batch = std::make_shared<Batch>();
    batch->answers.resize(queries.size(), Result<dns::Answer>(dns::Answer{}));
    batch->left = queries.size();
    batch->done = std::move(done);
    auto finish = [batch](std::size_t i, Result<dns::Answer> a) {
      batch->answers[i] = std::move(a);
      if (--batch->left == 0) batch->done(std::move(batch->answers));
    };
    if (queries.empty()) {
      batch->done({});
      return;
    }
    for (std::size_t i = 0; i < queries.size(); ++i) {
      // Callbacks run inside process(), on this strand.
      auto r = resolver_.resolve_async(queries[i].first, queries[i].second,
                                       [this, finish, i](Result<dns::Answer> a) {
                                         --pending_;
                                         finish(i, std::move(a));
                                       });
      if (!r) {
        finish(i, Result<dns::Answer>(r.error()));
        continue;
      }
      ++pending_;
    }
    pump();
  });
}

void DnsPump::pump() {
  if (waiting_ || pending_ == 0) return;
  waiting_ = true;
  sd_.async_wait(asio::posix::stream_descriptor::wait_read,
                 [this](const boost::system::error_code& ec) {
                   waiting_ = false;
                   if (ec) return;
                   if (auto r = resolver_.process(); !r)
                     base::log::warn("dns.process.failed", {{"error", r.error().describe()}});
                   pump();
                 });
}

}  // namespace postern::server
