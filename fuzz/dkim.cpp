// DKIM verification over hostile input: the first line is the key record served for every
// selector, the rest is the message (its DKIM-Signature fields included). Also the tag-list
// parser alone. Checks: no crash or sanitizer report; an outcome per signature field.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailauth/mailauth.hpp"

using namespace postern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)mailauth::parse_tag_list(in);
  auto nl = in.find('\n');
  std::string_view record = in.substr(0, nl);
  std::string_view message = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  mailauth::Lookups lookups;
  mailauth::DkimVerifyOptions opt;
  opt.now = 1796000000;
  for (int round = 0; round < 8; ++round) {
    auto out = mailauth::verify_dkim(message, opt, lookups);
    if (out) {
      if (out->size() > 10000) std::abort();
      break;
    }
    for (const auto& q : lookups.take_missing()) {
      dns::Answer a;
      a.rdata.push_back(dns::make_txt_rdata(record));
      lookups.add(q, a);
    }
  }
  return 0;
}
