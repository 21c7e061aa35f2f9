// DMARC over hostile input: the record parser, the author-domain extraction from a message,
// and the whole check with the input served as every _dmarc TXT record.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailauth/mailauth.hpp"

using namespace postern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto r = mailauth::parse_dmarc(in); r && (r->percent < 0 || r->percent > 100)) std::abort();
  (void)mailauth::author_domain(in);
  mailauth::DmarcRequest req;
  req.from_domain = "sub.example.test";
  req.spf.result = mailauth::SpfResult::pass;
  req.spf_domain = "example.test";
  req.sample = size % 100;
  mailauth::Lookups lookups;
  for (int round = 0; round < 4; ++round) {
    if (mailauth::check_dmarc(req, lookups)) break;
    for (const auto& q : lookups.take_missing()) {
      dns::Answer a;
      a.rdata.push_back(dns::make_txt_rdata(in));
      lookups.add(q, a);
    }
  }
  return 0;
}
