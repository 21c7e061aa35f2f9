// RFC 6409 8: what a submission server fixes in a message before sending it on. Bcc is
// removed (its recipients are in the envelope; the header would show them to everyone),
// and Date and Message-ID are added when the client left them out.
//
// Security: the message comes from an authenticated user, but their client may be anything;
// the header section is parsed with the same limits as inbound mail.
#include "smtp/command.hpp"
#include "smtp/smtp.hpp"

namespace postern::smtp {
namespace {

Result<std::vector<mime::Mailbox>> addresses(const mime::Header& h) {
  std::vector<mime::Mailbox> out;
  for (const auto& a : mime::parse_address_list(mime::unfold(h.raw_value))) {
    if (a.kind != mime::ListedAddress::Kind::address) continue;
    if (!a.mailbox || !a.host) return Error(mime::Errc::syntax, "address without a mailbox");
    auto mb = mime::parse_mailbox(*a.mailbox + "@" + *a.host, true);
    if (!mb) return Error(mime::Errc::syntax, std::string(h.name) + ": unparsable address");
    out.push_back(std::move(*mb));
  }
  return out;
}

}  // namespace

Result<Submitted> prepare_submission(std::string_view message, const SubmissionFix& fix) {
  auto hs = mime::parse_header_section(message, mime::HeaderLimits{});
  if (!hs) return hs.error();
  Submitted out;
  bool has_date = false, has_id = false, has_from = false, has_sender = false;
  // The header section is rebuilt from the parsed fields, so removed ones go with their
  // folded continuation lines.
  std::string head;
  head.reserve(hs->body_offset + 128);
  for (const auto& h : hs->headers) {
    if (detail::iequals(h.name, "Bcc")) continue;
    if (detail::iequals(h.name, "Date")) has_date = true;
    if (detail::iequals(h.name, "Message-ID")) has_id = true;
    if (detail::iequals(h.name, "From")) {
      if (has_from) return Error(mime::Errc::syntax, "more than one From field");
      has_from = true;
      auto a = addresses(h);
      if (!a) return a.error();
      out.authors = std::move(*a);
    }
    if (detail::iequals(h.name, "Sender")) {
      // RFC 5322 3.6: at most one; a second could show another identity to readers.
      if (has_sender) return Error(mime::Errc::syntax, "more than one Sender field");
      has_sender = true;
      auto a = addresses(h);
      if (!a) return a.error();
      out.senders = std::move(*a);
    }
    head.append(h.name);
    head += ':';
    head.append(h.raw_value);
    head += "\r\n";
  }
  if (!has_from || out.authors.empty()) return Error(mime::Errc::syntax, "no From address");
  std::string added;
  if (!has_date) added += "Date: " + fix.date + "\r\n";
  if (!has_id) added += "Message-ID: <" + fix.message_id_local + "@" + fix.hostname + ">\r\n";
  out.message.reserve(message.size() + added.size());
  out.message = added + head + "\r\n";
  std::size_t body = hs->body_offset;
  if (body < message.size()) out.message.append(message.substr(body));
  return out;
}

}  // namespace postern::smtp
