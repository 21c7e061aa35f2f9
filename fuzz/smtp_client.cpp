// What outbound delivery and submission read: a remote server's replies (split into
// arbitrary pieces), its EHLO capabilities, and a submitted message's header fixes. No crash,
// bounded output, and the fixes keep the body byte for byte.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/smtp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace postern::smtp;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ReplyReader reader;
  std::size_t step = size > 0 ? (data[0] % 7) + 1 : 1;
  for (std::size_t i = 0; i < in.size(); i += step) {
    reader.feed(in.substr(i, step));
    while (auto r = reader.next()) {
      if (r->code < 200 || r->code > 599) std::abort();
      if (reader.lines().empty() || reader.lines().size() > 200) std::abort();
      (void)parse_ehlo(reader.lines());
    }
  }
  SubmissionFix fix{"mail.example.test", "id", "Thu, 03 Dec 2026 10:00:00 +0000"};
  auto s = prepare_submission(in, fix);
  if (s) {
    if (s->authors.empty()) std::abort();
    if (s->message.size() > in.size() + 200) std::abort();
  }
  (void)dot_stuff(in);
  return 0;
}
