// Lookups through libunbound: a validating resolver in the process, so that every answer
// carries its DNSSEC status (RFC 4033) as DANE and MTA-STS will need.
#include <unbound.h>

#include "dns/dns.hpp"

namespace postern::dns {

struct Resolver::Impl {
  ub_ctx* ctx = nullptr;
  ~Impl() {
    if (ctx) ub_ctx_delete(ctx);
  }
};

Result<std::unique_ptr<Resolver>> Resolver::create(const ResolverOptions& o) {
  std::unique_ptr<Resolver> r(new Resolver());
  r->impl_ = std::make_unique<Impl>();
  r->impl_->ctx = ub_ctx_create();
  ub_ctx* ctx = r->impl_->ctx;
  if (!ctx) return Error(Errc::setup, "ub_ctx_create");
  auto fail = [](const char* what, int rc) {
    return Error(Errc::setup, std::string(what) + ": " + ub_strerror(rc));
  };
  // Lookups run on the caller's thread; several threads may share the context.
  if (int rc = ub_ctx_async(ctx, 1); rc != 0) return fail("async", rc);
  if (!o.config_file.empty())
    if (int rc = ub_ctx_config(ctx, o.config_file.c_str()); rc != 0) return fail("config", rc);
  for (const auto& [name, value] : o.options)
    if (int rc = ub_ctx_set_option(ctx, name.c_str(), value.c_str()); rc != 0)
      return fail(name.c_str(), rc);
  for (const auto& f : o.forwarders)
    if (int rc = ub_ctx_set_fwd(ctx, f.c_str()); rc != 0) return fail("forwarder", rc);
  if (!o.trust_anchor_file.empty())
    if (int rc = ub_ctx_add_ta_file(ctx, o.trust_anchor_file.c_str()); rc != 0)
      return fail("trust anchor", rc);
  // Last: removing a local zone finalises the context's settings.
  for (const auto& z : o.unblock_zones)
    if (int rc = ub_ctx_zone_remove(ctx, z.c_str()); rc != 0) return fail("local zone", rc);
  return r;
}

Resolver::~Resolver() = default;

namespace {

// Copies what postern needs out of an unbound result and frees it.
Answer answer_from(ub_result* res) {
  Answer a;
  a.rcode = res->rcode;
  a.nxdomain = res->nxdomain != 0;
  a.ttl = static_cast<uint32_t>(res->ttl);
  if (res->canonname) a.canonical_name = res->canonname;
  if (res->bogus) {
    a.security = Security::bogus;
    if (res->why_bogus) a.why_bogus = res->why_bogus;
  } else if (res->secure) {
    a.security = Security::secure;
  } else {
    a.security = Security::insecure;
  }
  // Bogus data is never handed out: callers must treat it as no answer (and defer).
  if (res->havedata && !res->bogus)
    for (int i = 0; res->data[i]; ++i)
      a.rdata.emplace_back(res->data[i], static_cast<std::size_t>(res->len[i]));
  ub_resolve_free(res);
  return a;
}

void async_done(void* data, int err, ub_result* res) {
  std::unique_ptr<Resolver::Callback> cb(static_cast<Resolver::Callback*>(data));
  if (err != 0) {
    (*cb)(Error(Errc::resolve, ub_strerror(err)));
    return;
  }
  (*cb)(answer_from(res));
}

}  // namespace

Result<Answer> Resolver::resolve(std::string_view name, Type type) {
  std::string n(name);
  ub_result* res = nullptr;
  int rc = ub_resolve(impl_->ctx, n.c_str(), static_cast<int>(type), 1 /* IN */, &res);
  if (rc != 0) return Error(Errc::resolve, std::string(ub_strerror(rc)) + ": " + n);
  return answer_from(res);
}

Result<void> Resolver::resolve_async(std::string_view name, Type type, Callback done) {
  std::string n(name);
  auto* cb = new Callback(std::move(done));
  int rc = ub_resolve_async(impl_->ctx, n.c_str(), static_cast<int>(type), 1 /* IN */, cb,
                            &async_done, nullptr);
  if (rc != 0) {
    delete cb;
    return Error(Errc::resolve, std::string(ub_strerror(rc)) + ": " + n);
  }
  return {};
}

int Resolver::fd() const {
  return ub_fd(impl_->ctx);
}

Result<void> Resolver::process() {
  if (int rc = ub_process(impl_->ctx); rc != 0) return Error(Errc::resolve, ub_strerror(rc));
  return {};
}

}  // namespace postern::dns
