// ARC over hostile input: the first line is the key record served for every selector, the rest
// is the message (its ARC and DKIM fields included). Checks: no crash or sanitizer report; a
// verdict within the replay rounds; and sealer and validator agree: when arc_seal adds a first
// set to the message, verify_arc passes it with our key (canonicalisation, header selection
// and folding are the same on both sides for any message).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailauth/mailauth.hpp"

using namespace postern;

namespace {

std::optional<mailauth::ArcOutcome> verify(std::string_view message, std::string_view record) {
  mailauth::Lookups lookups;
  mailauth::ArcVerifyOptions opt;
  opt.now = 1796000000;
  opt.oldest_pass = true;
  for (int round = 0; round < 4; ++round) {
    auto out = mailauth::verify_arc(message, opt, lookups);
    if (out) return out;
    for (const auto& q : lookups.take_missing()) {
      dns::Answer a;
      a.rdata.push_back(dns::make_txt_rdata(record));
      lookups.add(q, a);
    }
  }
  return std::nullopt;
}

const mailauth::DkimKey& our_key() {
  static const mailauth::DkimKey key =
      mailauth::make_dkim_key(mailauth::DkimAlgorithm::ed25519_sha256, "fuzz.test", "arc").value();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  std::string_view record = in.substr(0, nl);
  std::string_view message = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  auto out = verify(message, record);
  if (!out) std::abort();  // all keys are asked for in one round
  if (out->instances > 50 || out->sets.size() > 50) std::abort();
  if (out->result == mailauth::ArcResult::pass && out->sets.size() != std::size_t(out->instances))
    std::abort();

  auto set = mailauth::arc_seal(message, our_key(), "mx.fuzz.test", "spf=pass smtp.mailfrom=a@b.c",
                                mailauth::ArcResult::none, 1796000000);
  if (set) {
    std::string sealed = *set + std::string(message);
    auto again = verify(sealed, mailauth::dkim_record(our_key()));
    if (!again || again->result != mailauth::ArcResult::pass) std::abort();
  }
  return 0;
}
