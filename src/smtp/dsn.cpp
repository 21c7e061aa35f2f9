// RFC 3464 delivery status notifications: the bounce and delay reports postern sends to
// senders, and the parser of the message/delivery-status part (used on reports postern
// receives and by the tests that check what postern sends).
//
// Security: the parser's input is a report from anywhere on the internet. It is bounded by
// field size and recipient count and rejects anything that is not a field or a blank line.
#include <algorithm>
#include <cctype>

#include "smtp/command.hpp"
#include "smtp/smtp.hpp"

namespace postern::smtp {
namespace {

constexpr std::size_t max_dsn_recipients = 1000;
constexpr std::size_t max_field_bytes = 998;

// Values come from remote servers' replies and from addresses: no CR/LF may reach a field.
std::string field_value(std::string_view v) {
  std::string out;
  for (char c : v) out += (c == '\r' || c == '\n') ? ' ' : c;
  if (out.size() > 900) out.resize(900);
  return out;
}

std::string human_text(const DsnRequest& r) {
  bool failed = false, delayed = false;
  for (const auto& rc : r.recipients) {
    if (rc.action == "failed") failed = true;
    if (rc.action == "delayed") delayed = true;
  }
  std::string t = "This is the mail system at host " + r.reporting_mta + ".\r\n\r\n";
  if (failed)
    t += "Your message could not be delivered to one or more recipients.\r\n"
         "It has been returned to you with the reasons below.\r\n\r\n";
  if (delayed)
    t += "Your message has not been delivered yet to one or more recipients.\r\n"
         "Delivery will be retried; you do not need to send it again.\r\n\r\n";
  for (const auto& rc : r.recipients) {
    t += "<" + field_value(rc.address) + ">: " + rc.action;
    if (!rc.diagnostic.empty())
      t += ", " + field_value(rc.diagnostic);
    else
      t += ", status " + rc.status;
    if (!rc.will_retry_until.empty()) t += " (retrying until " + rc.will_retry_until + ")";
    t += "\r\n";
  }
  return t;
}

}  // namespace

std::string make_dsn(const DsnRequest& r) {
  bool failed = false;
  for (const auto& rc : r.recipients) failed = failed || rc.action == "failed";
  std::string m;
  m += "From: Mail Delivery System <" + r.postmaster + ">\r\n";
  m += "To: <" + r.to + ">\r\n";
  m += "Subject: " +
       std::string(failed ? "Undelivered Mail Returned to Sender"
                          : "Delayed Mail (still being retried)") +
       "\r\n";
  m += "Date: " + r.date + "\r\n";
  m += "Message-ID: " + r.message_id + "\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834: no auto-replies to this
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n"
       "\tboundary=\"" +
       r.boundary + "\"\r\n";
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";
  m += "--" + r.boundary + "\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
  m += human_text(r);
  m += "\r\n--" + r.boundary + "\r\n";
  m += "Content-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + field_value(r.reporting_mta) + "\r\n";
  if (!r.arrival_date.empty()) m += "Arrival-Date: " + r.arrival_date + "\r\n";
  for (const auto& rc : r.recipients) {
    m += "\r\n";
    m += "Final-Recipient: rfc822; " + field_value(rc.address) + "\r\n";
    m += "Action: " + rc.action + "\r\n";
    m += "Status: " + rc.status + "\r\n";
    if (!rc.remote_mta.empty()) m += "Remote-MTA: dns; " + field_value(rc.remote_mta) + "\r\n";
    if (!rc.diagnostic.empty()) m += "Diagnostic-Code: " + field_value(rc.diagnostic) + "\r\n";
    if (!rc.last_attempt.empty()) m += "Last-Attempt-Date: " + rc.last_attempt + "\r\n";
    if (!rc.will_retry_until.empty()) m += "Will-Retry-Until: " + rc.will_retry_until + "\r\n";
  }
  m += "\r\n--" + r.boundary + "\r\n";
  m += "Content-Type: text/rfc822-headers\r\n\r\n";
  m += r.original_headers;
  if (!r.original_headers.ends_with("\r\n")) m += "\r\n";
  m += "\r\n--" + r.boundary + "--\r\n";
  return m;
}

Result<DeliveryStatus> parse_delivery_status(std::string_view text) {
  DeliveryStatus out;
  // Fields in blocks separated by blank lines; the first block is per-message.
  std::vector<std::vector<std::pair<std::string, std::string>>> blocks(1);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == text.npos ? text.npos : eol - pos);
    pos = eol == text.npos ? text.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (!blocks.back().empty()) {
        if (blocks.size() > max_dsn_recipients) return Error(mime::Errc::syntax, "too many blocks");
        blocks.emplace_back();
      }
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      if (blocks.back().empty()) return Error(mime::Errc::syntax, "continuation without field");
      auto& v = blocks.back().back().second;
      v += ' ';
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      v += line;
      if (v.size() > max_field_bytes) return Error(mime::Errc::syntax, "field too long");
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == line.npos || colon == 0) return Error(mime::Errc::syntax, "not a field");
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (static_cast<unsigned char>(c) < 33 || static_cast<unsigned char>(c) > 126)
        return Error(mime::Errc::syntax, "bad field name");
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    if (value.size() > max_field_bytes) return Error(mime::Errc::syntax, "field too long");
    if (blocks.back().size() >= 64) return Error(mime::Errc::syntax, "too many fields");
    blocks.back().emplace_back(std::string(name), std::string(value));
  }
  if (!blocks.empty() && blocks.back().empty()) blocks.pop_back();
  if (blocks.size() < 2) return Error(mime::Errc::syntax, "no per-recipient fields");

  // "type; value" fields (Reporting-MTA, Final-Recipient...): the value after the type.
  auto typed = [](const std::string& v) -> std::optional<std::string> {
    std::size_t semi = v.find(';');
    if (semi == std::string::npos || semi == 0) return std::nullopt;
    std::string_view rest = std::string_view(v).substr(semi + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
    return std::string(rest);
  };
  for (const auto& [name, value] : blocks[0]) {
    if (detail::iequals(name, "Reporting-MTA")) {
      auto v = typed(value);
      if (!v) return Error(mime::Errc::syntax, "bad Reporting-MTA");
      out.reporting_mta = *v;
    } else if (detail::iequals(name, "Arrival-Date")) {
      out.arrival_date = value;
    }
  }
  if (out.reporting_mta.empty()) return Error(mime::Errc::syntax, "no Reporting-MTA");
  for (std::size_t b = 1; b < blocks.size(); ++b) {
    DsnRecipient rc;
    for (const auto& [name, value] : blocks[b]) {
      if (detail::iequals(name, "Final-Recipient")) {
        auto v = typed(value);
        if (!v) return Error(mime::Errc::syntax, "bad Final-Recipient");
        rc.address = *v;
      } else if (detail::iequals(name, "Action")) {
        rc.action = base::ascii_lower(value);
      } else if (detail::iequals(name, "Status")) {
        rc.status = value;
      } else if (detail::iequals(name, "Remote-MTA")) {
        auto v = typed(value);
        if (!v) return Error(mime::Errc::syntax, "bad Remote-MTA");
        rc.remote_mta = *v;
      } else if (detail::iequals(name, "Diagnostic-Code")) {
        rc.diagnostic = value;
      } else if (detail::iequals(name, "Last-Attempt-Date")) {
        rc.last_attempt = value;
      } else if (detail::iequals(name, "Will-Retry-Until")) {
        rc.will_retry_until = value;
      }
    }
    static const char* actions[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    bool known = false;
    for (const char* a : actions) known = known || rc.action == a;
    // Status: class.subject.detail, class 2, 4 or 5 (RFC 3463).
    const std::string& st = rc.status;
    bool status_ok = st.size() >= 5 && (st[0] == '2' || st[0] == '4' || st[0] == '5') &&
                     st[1] == '.' && st.find_first_not_of("0123456789.") == std::string::npos &&
                     std::count(st.begin(), st.end(), '.') == 2 && st.back() != '.' &&
                     st.find("..") == std::string::npos;
    if (rc.address.empty() || !known || !status_ok)
      return Error(mime::Errc::syntax, "incomplete per-recipient fields");
    out.recipients.push_back(std::move(rc));
  }
  return out;
}

}  // namespace postern::smtp
