// Authentication-Results over hostile input: the parser, a format/parse round trip of what it
// accepted, and the removal of fields claiming our authserv-id from a message.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailauth/mailauth.hpp"

using namespace postern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto parsed = mailauth::parse_authentication_results(in)) {
    std::string field = mailauth::format_authentication_results(*parsed);
    std::string_view value = field;
    value.remove_prefix(std::string_view("Authentication-Results:").size());
    value.remove_suffix(2);
    auto again = mailauth::parse_authentication_results(value);
    if (!again || again->authserv_id != parsed->authserv_id ||
        again->results.size() != parsed->results.size())
      std::abort();
  }
  std::string out = mailauth::remove_forged_results(in, "mx.example.test");
  if (out.size() > in.size()) std::abort();
  return 0;
}
