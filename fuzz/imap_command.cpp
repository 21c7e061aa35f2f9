// Feeds arbitrary bytes, in arbitrary chunks, to the IMAP command reader and parser, and runs
// every parser a command's arguments reach (sequence sets, sections, mailbox names, SEARCH),
// plus ENVELOPE/BODYSTRUCTURE and section extraction over the same bytes as a message.
// Checks: no crash or sanitizer report, bounded buffering, round trips of mailbox names.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "imap/imap.hpp"

using namespace postern::imap;

namespace {

void visit(const std::vector<Token>& tokens, const Limits& l) {
  for (const auto& t : tokens) {
    if (t.kind == Token::Kind::list) {
      visit(t.items, l);
      continue;
    }
    (void)parse_sequence_set(t.text, l);
    auto open = t.text.find('[');
    auto close = t.text.rfind(']');
    if (open != std::string::npos && close != std::string::npos && close > open)
      (void)parse_section(t.text.substr(open + 1, close - open - 1), l);
    for (bool utf8 : {false, true}) {
      auto name = decode_mailbox_name(t.text, utf8);
      if (name) {
        auto again = decode_mailbox_name(encode_mailbox_name(*name, utf8), utf8);
        if (!again || *again != *name) std::abort();
      }
    }
    (void)parse_date_time(t.text);
    (void)list_match(t.text, "INBOX/a/b");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Limits l;
  l.max_line = 2048;
  l.max_literal = 4096;
  l.max_tokens = 500;
  l.max_ranges = 100;
  CommandReader reader(l);
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t chunk = 1 + (data[0] & 0x3f);
  for (std::size_t pos = 0; pos < in.size(); pos += chunk) {
    reader.feed(in.substr(pos, chunk));
    while (true) {
      auto st = reader.next();
      if (st == CommandReader::Status::need_more || st == CommandReader::Status::continuation)
        break;
      if (st == CommandReader::Status::too_long) return 0;
      if (st == CommandReader::Status::literal_too_big) {
        if (!reader.can_continue()) return 0;
        continue;
      }
      std::string text = reader.take_command();
      std::string tag;
      auto cmd = parse_command(text, l, &tag);
      if (!cmd) continue;
      visit(cmd->args, l);
      if (cmd->name == "SEARCH" || cmd->name == "UID SEARCH") {
        auto prog = parse_search(cmd->args, l);
        if (prog) {
          SearchSubject s;
          s.flags = "\\Seen $x";
          s.header_section = text;
          s.message = text;
          (void)matches(prog->root, s);
        }
      }
    }
    if (reader.buffered() > 2 * (l.max_line + l.max_literal) + chunk) std::abort();
  }
  // The same bytes as a message.
  auto sum = postern::mime::summarize(in, postern::mime::HeaderLimits{});
  if (sum) {
    (void)envelope(sum->header_section);
    (void)body_structure(*sum, in, true);
    (void)section_bytes(in, *parse_section("1.2.MIME", l));
    bool unknown = false;
    (void)binary_bytes(in, *parse_section("1", l), &unknown);
  }
  return 0;
}
