// Feeds arbitrary bytes, in arbitrary chunks, to the SMTP server machine. The first byte
// chooses options and the verdicts the "server" gives; the rest is the client's byte stream.
// Checks: no crash or sanitizer report, replies are well-formed lines, buffers stay bounded.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/smtp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace postern::smtp;
  uint8_t knobs = data[0];
  Options o;
  o.hostname = "mx.fuzz";
  o.starttls_offered = knobs & 1;
  o.vrfy_enabled = knobs & 2;
  // Submission with TLS already up: AUTH and its challenges are reachable.
  o.submission = knobs & 0x40;
  o.tls_active = knobs & 0x80;
  o.limits.max_message_bytes = 4096;
  o.limits.max_recipients = 3;
  o.limits.max_command_line_bytes = 512;
  o.limits.max_errors = 1000;
  ServerSession m(o);
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t chunk = 1 + ((knobs >> 4) & 3);
  std::size_t pos = 0;
  for (int steps = 0; steps < 100000; ++steps) {
    Action a = m.next();
    std::string out = m.take_output();
    if (!out.empty() && out.substr(out.size() - 2) != "\r\n") std::abort();
    if (m.buffered() > 2 * 4096 + chunk) std::abort();
    if (a == Action::close) break;
    if (a == Action::read) {
      if (pos >= in.size()) break;
      m.feed(in.substr(pos, chunk));
      pos += chunk;
    } else if (a == Action::verify_recipient) {
      if (knobs & 4)
        m.recipient_verdict(Reply{550, "5.1.1", "no"});
      else
        m.recipient_verdict(std::nullopt);
    } else if (a == Action::deliver) {
      if (m.take_message().size() > 4096) std::abort();
      m.delivery_result(knobs & 8 ? Reply{451, "4.3.0", "later"} : Reply{250, "2.0.0", "Ok"});
    } else if (a == Action::start_tls) {
      if (m.buffered() != 0) std::abort();  // pipelined bytes must be gone
      m.tls_started();
    } else if (a == Action::authenticate) {
      if (m.auth_user().size() > 4096) std::abort();
      (void)m.take_auth_password();
      if ((knobs & 0xc) == 0xc)
        m.auth_unavailable();
      else
        m.auth_result(knobs & 4);
    } else if (a == Action::verify_sender) {
      if (m.pending_sender().local.empty()) std::abort();  // <> is never asked about
      m.sender_verdict(knobs & 8 ? std::optional<Reply>(Reply{550, "5.7.1", "not yours"})
                                 : std::nullopt);
    }
  }
  return 0;
}
