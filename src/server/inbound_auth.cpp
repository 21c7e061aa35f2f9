#include "server/inbound_auth.hpp"

#include "server/dns_pump.hpp"

namespace postern::server {
namespace {

constexpr int max_rounds = 24;

struct Round {
  std::optional<mailauth::InboundVerdict> verdict;
  std::vector<mailauth::Query> missing;
};

}  // namespace

asio::awaitable<mailauth::InboundVerdict> authenticate_inbound(std::shared_ptr<InboundAuthJob> job,
                                                               DnsPump* dns,
                                                               asio::thread_pool* pool) {
  auto lookups = std::make_shared<mailauth::Lookups>();
  for (int round = 0; round < max_rounds; ++round) {
    auto step = [job, lookups]() -> Result<Round> {
      Round r;
      r.verdict = mailauth::check_inbound(job->request, job->options, *lookups);
      if (!r.verdict) r.missing = lookups->take_missing();
      return r;
    };
    auto r = co_await run_blocking<Result<Round>>(*pool, std::move(step));
    if (!r) break;
    if (r->verdict) co_return std::move(*r->verdict);
    if (r->missing.empty()) break;  // cannot happen: a check that waits names what it needs
    std::vector<DnsPump::Query> queries;
    for (const auto& q : r->missing) queries.emplace_back(q.name, q.type);
    auto answers = co_await dns->lookup_all(queries);
    for (std::size_t i = 0; i < r->missing.size(); ++i)
      lookups->add(r->missing[i], std::move(answers[i]));
  }
  mailauth::InboundVerdict deferred;
  deferred.action = mailauth::InboundVerdict::Action::defer;
  deferred.code = 451;
  deferred.enhanced = "4.4.3";
  deferred.text = "Message authentication could not complete, try again later";
  co_return deferred;
}

}  // namespace postern::server
