// Internal to server/: libunbound's asynchronous lookups driven by the Asio loop.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dns/dns.hpp"
#include "server/asio_util.hpp"

namespace postern::server {

// One per process, shared by every coroutine that resolves: the resolver's descriptor becomes
// readable when answers arrive and process() runs their callbacks. All state lives on the
// pump's strand, so lookups may start from any thread.
class DnsPump {
 public:
  using Query = std::pair<std::string, dns::Type>;
  using Answers = std::vector<Result<dns::Answer>>;

  DnsPump(asio::io_context& io, dns::Resolver& resolver);
  ~DnsPump();
  DnsPump(const DnsPump&) = delete;
  DnsPump& operator=(const DnsPump&) = delete;

  // Starts every query at once; `done` gets the answers in the same order (on the strand).
  void start(std::vector<Query> queries, std::function<void(Answers)> done);

  auto lookup_all(std::vector<Query> queries) {
    return await_callback<Answers>(
        [this, q = std::move(queries)](auto cb) mutable { start(std::move(q), std::move(cb)); });
  }
  auto lookup(std::string name, dns::Type type) {
    return await_callback<Result<dns::Answer>>(
        [this, q = Query{std::move(name), type}](auto cb) mutable {
          start({std::move(q)}, [cb = std::move(cb)](Answers a) mutable { cb(std::move(a[0])); });
        });
  }

 private:
  void pump();

  asio::strand<asio::io_context::executor_type> strand_;
  asio::posix::stream_descriptor sd_;
  dns::Resolver& resolver_;
  std::size_t pending_ = 0;
  bool waiting_ = false;
};

}  // namespace postern::server
