// Delivery of the outbound queue. Local recipients go through the same path as inbound mail
// (prepare_delivery + the committer, with the dedupe digest so a retry after a crash does not
// store a message twice); remote recipients are grouped by domain into lanes, each lane up to
// max_per_domain connections that are reused for the lane's next messages.
//
// Security: every reply comes from a host the DNS named; smtp::ReplyReader bounds them and a
// deadline bounds each wait. Outbound TLS is opportunistic (encrypts, does not authenticate)
// unless the message asked for REQUIRETLS, which needs a verified certificate and a next hop
// that supports REQUIRETLS itself. DNSSEC-bogus answers defer delivery.
#include "server/outbound.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "base/log.hpp"
#include "base/random.hpp"
#include "crypto/crypto.hpp"
#include "dns/dns.hpp"
#include "queue/queue.hpp"
#include "server/dns_pump.hpp"
#include "server/session_io.hpp"

namespace postern::server {

namespace {

smtp::Reply temp(std::string enhanced, std::string text) {
  return smtp::Reply{451, std::move(enhanced), std::move(text)};
}

// One recipient of one message, as a lane sees it.
struct Job {
  std::shared_ptr<const store::QueuedMessage> message;
  std::shared_ptr<const std::string> content;
  std::vector<const store::QueuedRecipient*> recipients;
  std::function<void(std::vector<queue::Attempt>)> done;
};

struct Lane {
  std::deque<Job> jobs;
  std::size_t workers = 0;
};

// An open SMTP connection to one MX host.
struct Connection {
  std::unique_ptr<Stream> stream;
  std::shared_ptr<Watchdog> watchdog;
  smtp::ReplyReader reader;
  smtp::Capabilities caps;
  std::string host;
  bool tls = false, verified = false;
  bool usable = false;
  ~Connection() {
    if (watchdog) watchdog->stop();
  }
};

}  // namespace

struct Outbound::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, asio::thread_pool& pool_, Services svc_, OutboundSettings s_,
       DnsPump* dns_)
      : io(io_),
        pool(pool_),
        strand(asio::make_strand(io_)),
        svc(std::move(svc_)),
        s(std::move(s_)),
        wake(strand),
        pace(strand),
        dns(dns_) {}

  asio::io_context& io;
  asio::thread_pool& pool;
  asio::strand<asio::io_context::executor_type> strand;
  Services svc;
  OutboundSettings s;
  asio::steady_timer wake;
  asio::steady_timer pace;
  DnsPump* dns;  // null without a resolver
  std::set<std::string> in_flight;
  std::map<std::string, Lane> lanes;
  std::deque<std::string> waiting_lanes;  // jobs queued, no worker: the connection limit was hit
  std::size_t connections = 0;
  bool stopping = false;
  bool rescan = false;  // woken while scanning: scan again before waiting
  std::atomic<std::size_t> active{0};

  asio::awaitable<void> scan_loop();
  asio::awaitable<void> deliver_message(store::QueuedMessage m);
  asio::awaitable<std::vector<queue::Attempt>> deliver_local(
      std::shared_ptr<const store::QueuedMessage> m, std::shared_ptr<const std::string> content,
      std::vector<const store::QueuedRecipient*> rcpts);
  void add_job(const std::string& domain, Job job);
  asio::awaitable<void> lane_worker(std::string domain);
  asio::awaitable<std::vector<queue::Attempt>> deliver_job(std::unique_ptr<Connection>& conn,
                                                           const std::string& domain,
                                                           const Job& job);
  // One transaction on an open connection; `unanswered`: MAIL got no reply at all.
  asio::awaitable<std::vector<queue::Attempt>> transact(Connection& c, const Job& job,
                                                        bool& unanswered);
  asio::awaitable<Result<std::vector<std::string>>> mx_hosts(const std::string& domain,
                                                             smtp::Reply& failure, bool& secure);
  asio::awaitable<std::unique_ptr<Connection>> open(const std::string& domain, bool require_tls,
                                                    smtp::Reply& failure);
  asio::awaitable<std::unique_ptr<Connection>> open_host(const std::string& host,
                                                         const tcp::endpoint& ep, bool use_tls,
                                                         bool require_tls, smtp::Reply& failure);
  asio::awaitable<std::optional<smtp::Reply>> read_reply(Connection& c,
                                                         std::chrono::seconds timeout);
  asio::awaitable<bool> send(Connection& c, std::string text,
                             std::chrono::seconds timeout = std::chrono::seconds(0));
  asio::awaitable<void> reset(Connection& c);
};

Outbound::Outbound(asio::io_context& io, asio::thread_pool& pool, Services services,
                   OutboundSettings settings, DnsPump* dns)
    : impl_(std::make_shared<Impl>(io, pool, std::move(services), std::move(settings), dns)) {}

Outbound::~Outbound() = default;

void Outbound::start() {
  auto m = impl_;
  asio::co_spawn(m->strand, m->scan_loop(), asio::detached);
}

void Outbound::kick() {
  asio::post(impl_->strand, [m = impl_] {
    m->rescan = true;
    m->wake.cancel();
  });
}

void Outbound::stop() {
  asio::post(impl_->strand, [m = impl_] {
    m->stopping = true;
    m->wake.cancel();
    m->pace.cancel();
  });
}

std::size_t Outbound::active() const {
  return impl_->active.load();
}

asio::awaitable<void> Outbound::Impl::scan_loop() {
  auto self = shared_from_this();
  while (!stopping) {
    queue::Queue* q = svc.queue;
    // Bounded: each message in flight holds its decrypted content.
    std::size_t room =
        2 * s.max_connections > in_flight.size() ? 2 * s.max_connections - in_flight.size() : 0;
    if (room == 0) {
      wake.expires_after(s.scan_interval);
      co_await wake.async_wait(nothrow_awaitable);
      continue;
    }
    std::size_t limit = room + in_flight.size();  // in-flight ones come back and are skipped
    auto scan = [q, limit] { return q->due(limit); };
    auto due =
        co_await run_blocking<Result<std::vector<store::QueuedMessage>>>(pool, std::move(scan));
    if (!due) {
      base::log::error("queue.scan.failed", {{"error", due.error().describe()}});
    } else {
      for (auto& m : *due) {
        if (stopping || in_flight.contains(m.id)) continue;
        in_flight.insert(m.id);
        ++active;
        asio::co_spawn(strand, deliver_message(std::move(m)), asio::detached);
      }
    }
    if (stopping) break;
    if (!rescan) {
      wake.expires_after(s.scan_interval);
      co_await wake.async_wait(nothrow_awaitable);
    }
    rescan = false;
    // Each scan reads the due rows again, so under a stream of submissions (each one wakes
    // the loop) scans are paced; what arrives meanwhile is taken by the next one.
    pace.expires_after(std::chrono::milliseconds(50));
    co_await pace.async_wait(nothrow_awaitable);
  }
}

asio::awaitable<void> Outbound::Impl::deliver_message(store::QueuedMessage msg) {
  auto self = shared_from_this();
  auto m = std::make_shared<const store::QueuedMessage>(std::move(msg));
  queue::Queue* q = svc.queue;
  store::Store* st = svc.store;
  auto read = [q, m] { return q->content(*m); };
  auto loaded = co_await run_blocking<Result<std::string>>(pool, std::move(read));
  std::vector<queue::Attempt> attempts;
  int64_t now = svc.clock->unix_seconds();
  std::vector<const store::QueuedRecipient*> due;
  for (const auto& r : m->recipients)
    if (r.state == store::RecipientState::pending && r.next_attempt <= now) due.push_back(&r);

  if (!loaded) {
    base::log::error("queue.read.failed", {{"id", m->id}, {"error", loaded.error().describe()}});
    for (const auto* r : due)
      attempts.push_back({r->id, temp("4.3.0", "Queue file unreadable"), ""});
  } else if (queue::hop_count(*loaded) > q->policy().max_hops) {
    for (const auto* r : due)
      attempts.push_back({r->id, smtp::Reply{554, "5.4.6", "Routing loop detected"}, ""});
  } else {
    // The plaintext is wiped when the last job holding it is done.
    std::shared_ptr<const std::string> content(new std::string(std::move(*loaded)),
                                               [](const std::string* p) {
                                                 crypto::wipe(*const_cast<std::string*>(p));
                                                 delete p;
                                               });
    // Group by domain; local domains are delivered here, the rest through the lanes.
    std::map<std::string, std::vector<const store::QueuedRecipient*>> by_domain;
    for (const auto* r : due) by_domain[r->domain].push_back(r);
    struct Collect {
      std::vector<queue::Attempt> results;
      std::size_t remaining = 0;
      std::function<void(std::vector<queue::Attempt>)> finish;
    };
    auto collect = std::make_shared<Collect>();
    std::vector<std::pair<std::string, std::vector<const store::QueuedRecipient*>>> remote;
    for (auto& [domain, rcpts] : by_domain) {
      auto is_local = [st, d = domain] { return st->is_local_domain(d); };
      auto local = co_await run_blocking<Result<bool>>(pool, std::move(is_local));
      if (!local) {
        for (const auto* r : rcpts) attempts.push_back({r->id, temp("4.3.0", "Lookup failed"), ""});
      } else if (*local) {
        auto got = co_await deliver_local(m, content, rcpts);
        attempts.insert(attempts.end(), got.begin(), got.end());
      } else {
        remote.emplace_back(domain, rcpts);
      }
    }
    if (!remote.empty()) {
      collect->remaining = remote.size();
      auto start = [this, collect, remote, m, content](auto cb) {
        auto shared_cb = std::make_shared<decltype(cb)>(std::move(cb));
        collect->finish = [shared_cb](std::vector<queue::Attempt> v) {
          (*shared_cb)(std::move(v));
        };
        for (const auto& [domain, rcpts] : remote) {
          Job job{m, content, rcpts, [collect](std::vector<queue::Attempt> got) {
                    collect->results.insert(collect->results.end(), got.begin(), got.end());
                    if (--collect->remaining == 0) collect->finish(std::move(collect->results));
                  }};
          add_job(domain, std::move(job));
        }
      };
      auto got = co_await await_callback<std::vector<queue::Attempt>>(std::move(start));
      attempts.insert(attempts.end(), got.begin(), got.end());
    }
  }
  auto record = [q, m, attempts] { return q->record(*m, attempts); };
  auto recorded = co_await run_blocking<Result<std::size_t>>(pool, std::move(record));
  if (!recorded) {
    base::log::error("queue.record.failed",
                     {{"id", m->id}, {"error", recorded.error().describe()}});
  } else {
    for (const auto& a : attempts) {
      const char* what = a.reply.code / 100 == 2   ? "queue.delivered"
                         : a.reply.code / 100 == 5 ? "queue.failed"
                                                   : "queue.deferred";
      auto it =
          std::find_if(m->recipients.begin(), m->recipients.end(),
                       [&](const store::QueuedRecipient& r) { return r.id == a.recipient_id; });
      base::log::info(what, {{"id", m->id},
                             {"to", it == m->recipients.end() ? "" : it->address},
                             {"relay", a.remote_mta.empty() ? "local" : a.remote_mta},
                             {"reply", std::to_string(a.reply.code) + " " + a.reply.enhanced}});
    }
    // Bounces and delay notices were queued by record(): look at the queue again now.
    if (*recorded == 0 || !attempts.empty()) {
      rescan = true;
      wake.cancel();
    }
  }
  in_flight.erase(m->id);
  --active;
}

asio::awaitable<std::vector<queue::Attempt>> Outbound::Impl::deliver_local(
    std::shared_ptr<const store::QueuedMessage> m, std::shared_ptr<const std::string> content,
    std::vector<const store::QueuedRecipient*> rcpts) {
  std::vector<queue::Attempt> out;
  auto in = std::make_shared<DeliveryRequest>();
  in->envelope.helo = s.hostname;
  in->envelope.esmtp = true;
  in->envelope.smtputf8 = m->smtputf8;
  in->client_ip = "127.0.0.1";
  in->queue_id = m->id;
  in->hostname = s.hostname;
  if (!m->sender.empty()) {
    auto sender = mime::parse_mailbox(m->sender, true);
    if (sender) in->envelope.sender = *sender;
  }
  store::Store* st = svc.store;
  std::vector<const store::QueuedRecipient*> accepted;
  for (const auto* r : rcpts) {
    auto mb = mime::parse_mailbox(r->address, true);
    if (!mb) {
      out.push_back({r->id, smtp::Reply{550, "5.1.3", "Bad recipient address syntax"}, ""});
      continue;
    }
    std::string postmaster = s.postmaster;
    auto lookup = [st, mb = *mb, postmaster] { return lookup_recipient(*st, mb, postmaster); };
    auto v = co_await run_blocking<Result<RecipientVerdict>>(pool, std::move(lookup));
    if (!v) {
      out.push_back({r->id, temp("4.3.0", "Lookup failed"), ""});
    } else if (v->rejection) {
      out.push_back({r->id, *v->rejection, ""});
    } else {
      in->accounts[mb->lookup_key()] = v->account_id;
      in->envelope.recipients.push_back(*mb);
      accepted.push_back(r);
    }
  }
  if (accepted.empty()) co_return out;
  in->message = *content;
  Services sv = svc;
  auto prepare = [sv, in] { return prepare_delivery(sv, *in); };
  auto prepared =
      co_await run_blocking<Result<std::vector<PreparedMessage>>>(pool, std::move(prepare));
  smtp::Reply reply{250, "2.0.0", "Delivered"};
  if (!prepared) {
    reply = delivery_failure_reply(prepared.error());
  } else {
    Committer* committer = svc.committer;
    auto submit = [committer, p = std::move(*prepared)](auto cb) mutable {
      committer->submit(std::move(p), std::move(cb));
    };
    auto committed = co_await await_callback<Result<void>>(std::move(submit));
    if (!committed) {
      reply = delivery_failure_reply(committed.error());
    } else if (svc.changes) {
      for (const auto& [addr, account] : in->accounts) svc.changes->notify(account);
    }
  }
  for (const auto* r : accepted) out.push_back({r->id, reply, ""});
  co_return out;
}

void Outbound::Impl::add_job(const std::string& domain, Job job) {
  Lane& lane = lanes[domain];
  lane.jobs.push_back(std::move(job));
  if (lane.workers >= s.max_per_domain || lane.workers >= lane.jobs.size()) return;
  if (connections >= s.max_connections) {
    if (lane.workers == 0 &&
        std::find(waiting_lanes.begin(), waiting_lanes.end(), domain) == waiting_lanes.end())
      waiting_lanes.push_back(domain);
    return;
  }
  ++lane.workers;
  ++connections;
  asio::co_spawn(strand, lane_worker(domain), asio::detached);
}

asio::awaitable<void> Outbound::Impl::lane_worker(std::string domain) {
  auto self = shared_from_this();
  std::unique_ptr<Connection> conn;
  while (true) {
    auto it = lanes.find(domain);
    if (it == lanes.end() || it->second.jobs.empty()) break;
    Job job = std::move(it->second.jobs.front());
    it->second.jobs.pop_front();
    auto results = co_await deliver_job(conn, domain, job);
    job.done(std::move(results));
  }
  if (conn && conn->usable) {
    std::string quit = "QUIT\r\n";
    bool sent = co_await send(*conn, std::move(quit));
    if (sent) (void)co_await read_reply(*conn, std::chrono::seconds(5));
  }
  conn.reset();
  --connections;
  auto it = lanes.find(domain);
  bool idle_with_jobs = false;
  if (it != lanes.end() && --it->second.workers == 0) {
    if (it->second.jobs.empty())
      lanes.erase(it);
    else
      idle_with_jobs = true;
  }
  // The freed connection slot goes to a lane that has been waiting for one, else back to this
  // lane if jobs arrived while this worker was closing.
  std::string next;
  while (!waiting_lanes.empty() && next.empty()) {
    auto w = lanes.find(waiting_lanes.front());
    waiting_lanes.pop_front();
    if (w != lanes.end() && !w->second.jobs.empty()) next = w->first;
  }
  if (next.empty() && idle_with_jobs) next = domain;
  if (!next.empty()) {
    ++lanes[next].workers;
    ++connections;
    asio::co_spawn(strand, lane_worker(next), asio::detached);
  }
}

asio::awaitable<std::optional<smtp::Reply>> Outbound::Impl::read_reply(
    Connection& c, std::chrono::seconds timeout) {
  c.watchdog->arm(timeout);
  std::array<char, 4096> buf;
  while (true) {
    if (auto r = c.reader.next()) co_return r;
    if (c.reader.failed()) {
      c.usable = false;
      co_return std::nullopt;
    }
    auto [ec, n] = co_await c.stream->read_some(asio::buffer(buf));
    if (ec || c.watchdog->expired()) {
      c.usable = false;
      co_return std::nullopt;
    }
    c.reader.feed(std::string_view(buf.data(), n));
  }
}

asio::awaitable<bool> Outbound::Impl::send(Connection& c, std::string text,
                                           std::chrono::seconds timeout) {
  c.watchdog->arm(timeout.count() > 0 ? timeout : s.command_timeout);
  auto ec = co_await c.stream->write(std::move(text));
  if (ec || c.watchdog->expired()) {
    c.usable = false;
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> Outbound::Impl::reset(Connection& c) {
  std::string rset = "RSET\r\n";
  bool sent = co_await send(c, std::move(rset));
  std::optional<smtp::Reply> r;
  if (sent) r = co_await read_reply(c, s.command_timeout);
  if (!r || r->code != 250) c.usable = false;
}

asio::awaitable<Result<std::vector<std::string>>> Outbound::Impl::mx_hosts(
    const std::string& domain, smtp::Reply& failure, bool& secure) {
  std::vector<std::string> hosts;
  if (!dns) {
    failure = temp("4.4.3", "No resolver configured");
    co_return hosts;
  }
  auto answer = co_await dns->lookup(domain, dns::Type::mx);
  if (!answer || answer->rcode == 2 || answer->security == dns::Security::bogus) {
    failure = temp(
        "4.4.3", "DNS lookup of MX for " + domain + " failed" +
                     (answer && answer->security == dns::Security::bogus ? " (DNSSEC bogus)" : ""));
    co_return hosts;
  }
  secure = answer->security == dns::Security::secure;
  if (answer->nxdomain) {
    failure = smtp::Reply{550, "5.1.2", "Domain " + domain + " does not exist"};
    co_return hosts;
  }
  std::vector<dns::Mx> mxs;
  for (const auto& rd : answer->rdata)
    if (auto mx = dns::parse_mx(rd)) mxs.push_back(*mx);
  if (mxs.size() == 1 && mxs[0].exchange.empty()) {  // RFC 7505 null MX
    failure = smtp::Reply{556, "5.1.10", "Domain " + domain + " accepts no mail (null MX)"};
    co_return hosts;
  }
  std::stable_sort(mxs.begin(), mxs.end(),
                   [](const dns::Mx& a, const dns::Mx& b) { return a.preference < b.preference; });
  for (const auto& mx : mxs)
    if (!mx.exchange.empty() && hosts.size() < s.max_mx_hosts) hosts.push_back(mx.exchange);
  if (mxs.empty()) hosts.push_back(domain);  // RFC 5321 5.1: the implicit MX
  co_return hosts;
}

asio::awaitable<std::unique_ptr<Connection>> Outbound::Impl::open(const std::string& domain,
                                                                  bool require_tls,
                                                                  smtp::Reply& failure) {
  bool secure = false;
  auto hosts = co_await mx_hosts(domain, failure, secure);
  if (!hosts || hosts->empty()) co_return nullptr;
  if (require_tls && !secure) {
    // RFC 8689 4.2.1: the MX names must come from a DNSSEC-validated answer (MTA-STS, the
    // other way, comes with the transport security work).
    failure = smtp::Reply{550, "5.7.30", "REQUIRETLS: MX of " + domain + " is not DNSSEC-signed"};
    co_return nullptr;
  }
  failure = temp("4.4.1", "No MX host of " + domain + " answered");
  for (const auto& host : *hosts) {
    std::vector<tcp::endpoint> eps;
    std::vector<dns::Type> types;
    if (s.ipv6) types.push_back(dns::Type::aaaa);
    types.push_back(dns::Type::a);
    bool bogus = false;
    for (auto type : types) {
      auto a = co_await dns->lookup(host, type);
      if (!a) continue;
      if (a->security == dns::Security::bogus) bogus = true;
      for (const auto& rd : a->rdata) {
        auto text = dns::parse_address(type, rd);
        if (!text) continue;
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(*text, ec);
        if (!ec) eps.emplace_back(addr, s.remote_port);
      }
    }
    if (bogus && eps.empty()) failure = temp("4.4.3", "DNSSEC validation failed for " + host);
    for (const auto& ep : eps) {
      auto c = co_await open_host(host, ep, true, require_tls, failure);
      if (!c && !require_tls && failure.enhanced == "4.7.5") {
        // The TLS handshake failed: opportunistic TLS falls back to plaintext (RFC 7435).
        c = co_await open_host(host, ep, false, false, failure);
      }
      if (c) co_return c;
    }
  }
  co_return nullptr;
}

asio::awaitable<std::unique_ptr<Connection>> Outbound::Impl::open_host(const std::string& host,
                                                                       const tcp::endpoint& ep,
                                                                       bool use_tls,
                                                                       bool require_tls,
                                                                       smtp::Reply& failure) {
  auto c = std::make_unique<Connection>();
  c->host = host;
  c->stream = std::make_unique<Stream>(tcp::socket(strand));
  c->watchdog = std::make_shared<Watchdog>(strand, c->stream->socket());
  c->watchdog->self = c->watchdog;
  asio::co_spawn(strand, Watchdog::watch(c->watchdog), asio::detached);
  c->watchdog->arm(s.connect_timeout);
  auto [cec] = co_await c->stream->socket().async_connect(ep, nothrow_awaitable);
  std::string where = host + "[" + ep.address().to_string() + "]";
  if (cec || c->watchdog->expired()) {
    failure = temp("4.4.1", "Connection to " + where + " failed");
    co_return nullptr;
  }
  boost::system::error_code ignored;
  c->stream->socket().set_option(tcp::no_delay(true), ignored);
  auto greeting = co_await read_reply(*c, s.command_timeout);
  if (!greeting || greeting->code != 220) {
    failure = greeting ? smtp::Reply{451, "4.4.0",
                                     where + " greeted with " + std::to_string(greeting->code)}
                       : temp("4.4.2", "No greeting from " + where);
    co_return nullptr;
  }
  for (int round = 0; round < 2; ++round) {
    std::string ehlo = "EHLO " + s.hostname + "\r\n";
    if (!co_await send(*c, std::move(ehlo))) break;
    auto r = co_await read_reply(*c, s.command_timeout);
    if (!r || r->code != 250) {
      failure = temp("4.4.0", "EHLO refused by " + where);
      co_return nullptr;
    }
    c->caps = smtp::parse_ehlo(c->reader.lines());
    if (c->tls || !use_tls || !c->caps.starttls) break;
    std::string starttls = "STARTTLS\r\n";
    if (!co_await send(*c, std::move(starttls))) break;
    auto sr = co_await read_reply(*c, s.command_timeout);
    if (!sr || sr->code != 220 || !svc.client_tls) {
      if (!require_tls) {
        c->usable = true;  // keep going in plaintext: the server offered and then refused
        break;
      }
      failure = smtp::Reply{451, "4.7.5", "STARTTLS refused by " + where};
      co_return nullptr;
    }
    c->watchdog->arm(s.command_timeout);
    auto hec = co_await c->stream->start_tls_client(*svc.client_tls, host, require_tls);
    if (hec || c->watchdog->expired()) {
      failure = smtp::Reply{451, "4.7.5", "TLS handshake with " + where + " failed"};
      co_return nullptr;
    }
    c->tls = true;
    c->verified = require_tls;
    c->reader = smtp::ReplyReader();
  }
  if (require_tls && (!c->tls || !c->caps.requiretls)) {
    failure = smtp::Reply{550, "5.7.30", "REQUIRETLS not supported by " + where};
    co_return nullptr;
  }
  c->usable = true;
  base::log::info("queue.connected",
                  {{"host", where}, {"tls", c->tls ? c->stream->cipher() : "none"}});
  co_return c;
}

asio::awaitable<std::vector<queue::Attempt>> Outbound::Impl::deliver_job(
    std::unique_ptr<Connection>& conn, const std::string& domain, const Job& job) {
  const auto& m = *job.message;
  std::vector<queue::Attempt> out;
  auto fail_all = [&](const smtp::Reply& r, const std::string& mta) {
    for (const auto* rc : job.recipients) out.push_back({rc->id, r, mta});
  };
  // REQUIRETLS messages get a connection of their own that verified the peer.
  std::unique_ptr<Connection> own;
  if (m.requiretls && !(conn && conn->verified && conn->caps.requiretls)) {
    smtp::Reply failure;
    own = co_await open(domain, true, failure);
    if (!own) {
      fail_all(failure, "");
      co_return out;
    }
  }
  bool reused = !own && conn && conn->usable;
  if (!own && (!conn || !conn->usable)) {
    smtp::Reply failure;
    conn = co_await open(domain, false, failure);
    if (!conn) {
      fail_all(failure, "");
      co_return out;
    }
  }
  for (int round = 0;; ++round) {
    Connection& c = own ? *own : *conn;
    bool unanswered = false;
    out = co_await transact(c, job, unanswered);
    if (!unanswered || !reused || round > 0) co_return out;
    // A reused connection the server had closed while idle: once more on a new one, so the
    // attempt counts only when it really happened.
    out.clear();
    reused = false;
    smtp::Reply failure;
    conn = co_await open(domain, false, failure);
    if (!conn) {
      fail_all(failure, "");
      co_return out;
    }
  }
}

asio::awaitable<std::vector<queue::Attempt>> Outbound::Impl::transact(Connection& c, const Job& job,
                                                                      bool& unanswered) {
  const auto& m = *job.message;
  std::vector<queue::Attempt> out;
  auto fail_all = [&](const smtp::Reply& r, const std::string& mta) {
    for (const auto* rc : job.recipients) out.push_back({rc->id, r, mta});
  };
  const std::string& mta = c.host;
  if (m.smtputf8 && !c.caps.smtputf8) {
    fail_all(smtp::Reply{553, "5.6.7", mta + " does not support SMTPUTF8"}, mta);
    co_return out;
  }
  if (m.eight_bit && !c.caps.eight_bit_mime) {
    fail_all(smtp::Reply{554, "5.6.3", mta + " does not accept 8-bit content"}, mta);
    co_return out;
  }
  if (c.caps.size > 0 && m.size > c.caps.size) {
    fail_all(smtp::Reply{552, "5.3.4", "Message too big for " + mta}, mta);
    co_return out;
  }
  std::string mail = "MAIL FROM:<" + m.sender + ">";
  if (c.caps.size > 0) mail += " SIZE=" + std::to_string(m.size);
  if (m.eight_bit) mail += " BODY=8BITMIME";
  if (m.smtputf8) mail += " SMTPUTF8";
  if (m.requiretls) mail += " REQUIRETLS";
  mail += "\r\n";
  std::vector<std::string> rcpts;
  for (const auto* rc : job.recipients) rcpts.push_back("RCPT TO:<" + rc->address + ">\r\n");

  auto lost = [&]() {
    c.usable = false;
    for (const auto* rc : job.recipients)
      if (std::none_of(out.begin(), out.end(),
                       [&](const queue::Attempt& a) { return a.recipient_id == rc->id; }))
        out.push_back({rc->id, temp("4.4.2", "Connection to " + mta + " lost"), mta});
  };
  // With PIPELINING, MAIL, every RCPT and DATA go in one write (RFC 2920 3.1).
  std::optional<smtp::Reply> mail_reply;
  std::vector<std::optional<smtp::Reply>> rcpt_replies;
  std::optional<smtp::Reply> data_reply;
  if (c.caps.pipelining) {
    std::string batch = mail;
    for (const auto& r : rcpts) batch += r;
    batch += "DATA\r\n";
    if (!co_await send(c, std::move(batch))) {
      unanswered = true;
      lost();
      co_return out;
    }
    // A missing reply (timeout, closed connection) ends the connection: a late reply would be
    // taken for the next command's.
    mail_reply = co_await read_reply(c, s.command_timeout);
    unanswered = !mail_reply;
    for (std::size_t i = 0; mail_reply && i < rcpts.size(); ++i) {
      auto reply = co_await read_reply(c, s.command_timeout);
      if (!reply) break;
      rcpt_replies.push_back(reply);
    }
    if (mail_reply && rcpt_replies.size() == rcpts.size())
      data_reply = co_await read_reply(c, s.command_timeout);
    if (!data_reply) {
      lost();
      co_return out;
    }
  } else {
    std::string mail_line = mail;
    if (!co_await send(c, std::move(mail_line))) {
      unanswered = true;
      lost();
      co_return out;
    }
    mail_reply = co_await read_reply(c, s.command_timeout);
    if (!mail_reply) {
      unanswered = true;
      lost();
      co_return out;
    }
    if (mail_reply->code / 100 == 2) {
      for (const auto& r : rcpts) {
        std::string line = r;
        if (!co_await send(c, std::move(line))) break;
        auto reply = co_await read_reply(c, s.command_timeout);
        rcpt_replies.push_back(reply);
        if (!reply) break;
      }
      if (rcpt_replies.size() != rcpts.size() || !rcpt_replies.back()) {
        lost();
        co_return out;
      }
      bool any = std::any_of(rcpt_replies.begin(), rcpt_replies.end(),
                             [](const auto& r) { return r->code / 100 == 2; });
      if (any) {
        std::string data = "DATA\r\n";
        if (!co_await send(c, std::move(data))) {
          lost();
          co_return out;
        }
        data_reply = co_await read_reply(c, s.command_timeout);
        if (!data_reply) {
          lost();
          co_return out;
        }
      }
    }
  }
  if (data_reply && data_reply->code == 354 &&
      (mail_reply->code / 100 != 2 ||
       std::none_of(rcpt_replies.begin(), rcpt_replies.end(),
                    [](const auto& r) { return r->code / 100 == 2; }))) {
    // The server started DATA although nothing was accepted: send an empty message it will
    // refuse, so the connection is back at the command stage.
    std::string dot = ".\r\n";
    bool sent = co_await send(c, std::move(dot));
    std::optional<smtp::Reply> r;
    if (sent) r = co_await read_reply(c, s.data_timeout);
    if (!r) c.usable = false;
    data_reply.reset();
  }
  if (mail_reply->code / 100 != 2) {
    fail_all(*mail_reply, mta);
    if (mail_reply->code == 421) {
      c.usable = false;
      co_return out;
    }
    co_await reset(c);
    co_return out;
  }
  std::vector<const store::QueuedRecipient*> accepted;
  for (std::size_t i = 0; i < job.recipients.size(); ++i) {
    const auto& r = rcpt_replies[i];
    if (r->code / 100 == 2)
      accepted.push_back(job.recipients[i]);
    else
      out.push_back({job.recipients[i]->id, *r, mta});
  }
  if (!data_reply || data_reply->code != 354) {
    // No recipient accepted (or DATA refused): end the transaction, keep the connection.
    if (data_reply && !accepted.empty())
      for (const auto* rc : accepted) out.push_back({rc->id, *data_reply, mta});
    co_await reset(c);
    co_return out;
  }
  std::string body = smtp::dot_stuff(*job.content);
  // RFC 5321 4.5.3.2.5: the deadline is per block sent, so a big message on a slow path is
  // not cut off while it keeps moving.
  constexpr std::size_t chunk = 64 * 1024;
  bool body_sent = true;
  for (std::size_t off = 0; off < body.size() && body_sent; off += chunk) {
    std::string piece = body.substr(off, chunk);
    body_sent = co_await send(c, std::move(piece), s.data_timeout);
  }
  crypto::wipe(body);
  if (!body_sent) {
    lost();
    co_return out;
  }
  auto final_reply = co_await read_reply(c, s.data_timeout);
  if (!final_reply) {
    // Sent but unanswered: the remote may have the message. Retrying risks a duplicate, which
    // RFC 5321 6.1 prefers to a loss.
    lost();
    co_return out;
  }
  for (const auto* rc : accepted) out.push_back({rc->id, *final_reply, mta});
  co_return out;
}

}  // namespace postern::server
