// The SMTP server state machine: RFC 5321 (commands, replies, sequencing), RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2920 PIPELINING, RFC 3030 CHUNKING, RFC 3207
// STARTTLS, RFC 2034 ENHANCEDSTATUSCODES.
//
// Security: bytes from the peer are bounded per line, per message and per session error count;
// a line must end in CRLF; the end-of-data marker counts only after a CRLF-terminated line, so
// "<LF>.<CR><LF>" and "<CR>.<CR>" never end a message; any bare CR or LF in message data fails
// the message as a whole.
#include <cctype>
#include <cstring>

#include "smtp/command.hpp"
#include "smtp/smtp.hpp"

namespace postern::smtp {

using detail::iequals;
using detail::istarts_with;

namespace {
constexpr std::size_t max_params = 8;
constexpr std::size_t compact_threshold = std::size_t{16} * 1024;

bool plausible_helo(std::string_view arg) {
  if (arg.empty() || arg.size() > mime::max_domain_bytes) return false;
  if (arg.front() == '[')
    return arg.size() > 2 && arg.back() == ']' &&
           mime::valid_address_literal(arg.substr(1, arg.size() - 2));
  for (unsigned char c : arg)
    if (!(std::isalnum(c) || c == '.' || c == '-' || c == '_')) return false;
  return true;
}
}  // namespace

ServerSession::ServerSession(Options options) : opt_(std::move(options)) {
  env_.tls = opt_.tls_active;
  reply(220, "", opt_.hostname + " ESMTP postern");
}

void ServerSession::reply(int code, std::string_view enhanced, std::string_view text) {
  out_ += format_reply(code, enhanced, {std::string(text)});
}

std::string ServerSession::take_output() {
  return std::exchange(out_, {});
}

void ServerSession::feed(std::string_view bytes) {
  if (state_ == State::closed) return;
  in_.append(bytes);
}

void ServerSession::compact_input() {
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > compact_threshold) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

Action ServerSession::error(int code, std::string_view enhanced, std::string_view text) {
  reply(code, enhanced, text);
  if (++errors_ >= opt_.limits.max_errors) {
    reply(421, "4.7.0", opt_.hostname + " Too many errors, closing connection");
    state_ = State::closed;
    return Action::close;
  }
  return Action::read;
}

void ServerSession::timeout() {
  reply(421, "4.4.2", opt_.hostname + " Timeout exceeded, closing connection");
  state_ = State::closed;
}

void ServerSession::reset_transaction() {
  in_transaction_ = false;
  env_.sender.reset();
  env_.recipients.clear();
  env_.smtputf8 = false;
  env_.body = Body::seven_bit;
  env_.chunking = false;
  env_.requiretls = false;
  rcpt_attempts_ = 0;
  message_.clear();
  too_big_ = bad_line_end_ = line_too_long_ = false;
  prev_line_bare_ = false;
  bdat_failed_ = false;
  bdat_prev_ = 0;
}

Action ServerSession::next() {
  while (true) {
    switch (state_) {
      case State::closed:
        return Action::close;
      case State::wait_verdict:
        return Action::verify_recipient;
      case State::wait_sender:
        return Action::verify_sender;
      case State::wait_delivery:
        return Action::deliver;
      case State::wait_auth:
        return Action::authenticate;
      case State::data: {
        Action a = step_data();
        if (state_ == State::data) {
          compact_input();
          return Action::read;
        }
        if (a != Action::read) return a;
        continue;
      }
      case State::bdat: {
        Action a = step_bdat();
        if (state_ == State::bdat) {
          compact_input();
          return Action::read;
        }
        if (a != Action::read) return a;
        continue;
      }
      case State::command:
      case State::auth_response:  // a line like a command's, read the same way
        break;
    }

    const char* p = in_.data() + in_pos_;
    std::size_t avail = in_.size() - in_pos_;
    const void* lf = std::memchr(p, '\n', avail);
    if (skipping_long_line_) {
      if (!lf) {
        in_pos_ = in_.size();
        compact_input();
        return Action::read;
      }
      in_pos_ += static_cast<std::size_t>(static_cast<const char*>(lf) - p) + 1;
      skipping_long_line_ = false;
      if (error(500, "5.5.2", "Line too long") == Action::close) return Action::close;
      continue;
    }
    if (!lf) {
      if (avail > opt_.limits.max_command_line_bytes) {
        skipping_long_line_ = true;
        in_pos_ = in_.size();
      }
      compact_input();
      return Action::read;
    }
    std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lf) - p) + 1;
    std::string_view line(p, len);
    in_pos_ += len;
    Action a;
    if (len > opt_.limits.max_command_line_bytes) {
      a = error(500, "5.5.2", "Line too long");
    } else if (len < 2 || line[len - 2] != '\r') {
      a = error(500, "5.5.2", "Bare LF received, lines must end with CRLF (RFC 5321 2.3.8)");
    } else {
      std::string_view content = line.substr(0, len - 2);
      if (content.find('\r') != std::string_view::npos)
        a = error(500, "5.5.2", "Bare CR received (RFC 5321 2.3.8)");
      else if (content.find('\0') != std::string_view::npos)
        a = error(500, "5.5.2", "NUL in command");
      else if (state_ == State::auth_response)
        a = auth_response(content);
      else
        a = process_command(content);
    }
    if (a != Action::read) {
      if (a != Action::start_tls) compact_input();
      return a;
    }
  }
}

Action ServerSession::process_command(std::string_view line) {
  auto sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);

  if (iequals(verb, "EHLO") || iequals(verb, "HELO")) return command_ehlo(verb, arg);
  if (iequals(verb, "MAIL")) return command_mail(arg);
  if (iequals(verb, "RCPT")) return command_rcpt(arg);
  if (iequals(verb, "DATA")) return command_data(arg);
  if (iequals(verb, "BDAT")) return command_bdat(arg);
  if (iequals(verb, "RSET")) {
    if (!arg.empty()) return error(501, "5.5.4", "Syntax: RSET");
    reset_transaction();
    reply(250, "2.0.0", "Ok");
    return Action::read;
  }
  if (iequals(verb, "NOOP")) {
    reply(250, "2.0.0", "Ok");
    return Action::read;
  }
  if (iequals(verb, "QUIT")) {
    reply(221, "2.0.0", opt_.hostname + " Bye");
    state_ = State::closed;
    return Action::close;
  }
  if (iequals(verb, "STARTTLS")) return command_starttls(arg);
  if (iequals(verb, "VRFY")) return command_vrfy(arg);
  if (iequals(verb, "EXPN")) return error(502, "5.5.1", "EXPN not available");
  if (iequals(verb, "HELP")) {
    reply(214, "2.0.0", "See RFC 5321");
    return Action::read;
  }
  if (iequals(verb, "AUTH")) {
    if (!opt_.submission) return error(503, "5.5.1", "AUTH not available on this port");
    return command_auth(arg);
  }
  return error(500, "5.5.2", "Command not recognized");
}

// RFC 4954 AUTH with the PLAIN (RFC 4616) and LOGIN mechanisms, only over TLS.
Action ServerSession::command_auth(std::string_view arg) {
  if (!opt_.tls_active)
    return error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  if (env_.helo.empty() || !env_.esmtp) return error(503, "5.5.1", "Send EHLO first");
  if (!authenticated_.empty()) return error(503, "5.5.1", "Already authenticated");
  if (in_transaction_) return error(503, "5.5.1", "AUTH not allowed during a transaction");
  auto sp = arg.find(' ');
  std::string_view mech = arg.substr(0, sp);
  std::string_view initial = sp == std::string_view::npos ? std::string_view() : arg.substr(sp + 1);
  if (iequals(mech, "PLAIN")) {
    auth_step_ = AuthStep::plain;
    if (!initial.empty()) return auth_plain(initial);
    reply(334, "", "");
    state_ = State::auth_response;
    return Action::read;
  }
  if (iequals(mech, "LOGIN")) {
    if (!initial.empty()) {
      auto user = mime::decode_base64(initial);
      if (!user) return error(501, "5.5.2", "Cannot decode response");
      auth_user_ = std::move(*user);
      auth_step_ = AuthStep::login_password;
      reply(334, "", "UGFzc3dvcmQ6");  // "Password:"
    } else {
      auth_step_ = AuthStep::login_user;
      reply(334, "", "VXNlcm5hbWU6");  // "Username:"
    }
    state_ = State::auth_response;
    return Action::read;
  }
  return error(504, "5.5.4", "Unrecognized authentication type");
}

Action ServerSession::auth_response(std::string_view line) {
  state_ = State::command;
  if (line == "*") return error(501, "5.0.0", "Authentication cancelled");
  if (auth_step_ == AuthStep::plain) return auth_plain(line);
  auto decoded = mime::decode_base64(line);
  if (!decoded) return error(501, "5.5.2", "Cannot decode response");
  if (auth_step_ == AuthStep::login_user) {
    auth_user_ = std::move(*decoded);
    auth_step_ = AuthStep::login_password;
    reply(334, "", "UGFzc3dvcmQ6");
    state_ = State::auth_response;
    return Action::read;
  }
  auth_password_ = std::move(*decoded);
  state_ = State::wait_auth;
  return Action::authenticate;
}

// [authzid] NUL authcid NUL passwd
Action ServerSession::auth_plain(std::string_view base64) {
  auto decoded = mime::decode_base64(base64);
  if (!decoded) return error(501, "5.5.2", "Cannot decode response");
  std::string& d = *decoded;
  auto first = d.find('\0');
  auto second = first == std::string::npos ? first : d.find('\0', first + 1);
  if (second == std::string::npos) return error(501, "5.5.2", "Malformed PLAIN response");
  std::string authz = d.substr(0, first);
  auth_user_ = d.substr(first + 1, second - first - 1);
  auth_password_ = d.substr(second + 1);
  std::fill(d.begin(), d.end(), '\0');
  if (!authz.empty() && authz != auth_user_) {
    std::fill(auth_password_.begin(), auth_password_.end(), '\0');
    auth_password_.clear();
    return error(535, "5.7.8", "Authentication credentials invalid");
  }
  state_ = State::wait_auth;
  return Action::authenticate;
}

void ServerSession::auth_result(bool ok) {
  if (state_ != State::wait_auth) return;
  state_ = State::command;
  if (ok) {
    authenticated_ = auth_user_;
    reply(235, "2.7.0", "Authentication successful");
  } else {
    (void)error(535, "5.7.8", "Authentication credentials invalid");
  }
  auth_user_.clear();
}

void ServerSession::auth_unavailable() {
  if (state_ != State::wait_auth) return;
  state_ = State::command;
  auth_user_.clear();
  reply(454, "4.7.0", "Temporary authentication failure");
}

Action ServerSession::command_ehlo(std::string_view verb, std::string_view arg) {
  if (!plausible_helo(arg)) return error(501, "5.5.4", "Syntax: EHLO domain");
  reset_transaction();
  env_.helo = std::string(arg);
  env_.esmtp = iequals(verb, "EHLO");
  if (!env_.esmtp) {
    reply(250, "", opt_.hostname);
    return Action::read;
  }
  std::vector<std::string> lines{
      opt_.hostname, "PIPELINING", "SIZE " + std::to_string(opt_.limits.max_message_bytes),
      "8BITMIME",    "SMTPUTF8",   "ENHANCEDSTATUSCODES",
      "CHUNKING"};
  if (opt_.starttls_offered && !opt_.tls_active) lines.push_back("STARTTLS");
  if (opt_.tls_active) lines.push_back("REQUIRETLS");
  if (opt_.submission && opt_.tls_active && authenticated_.empty())
    lines.push_back("AUTH PLAIN LOGIN");
  out_ += format_reply(250, "", lines);
  return Action::read;
}

Action ServerSession::command_mail(std::string_view arg) {
  if (env_.helo.empty()) return error(503, "5.5.1", "Send EHLO first");
  if (in_transaction_) return error(503, "5.5.1", "Nested MAIL command");
  if (opt_.submission && authenticated_.empty())
    return error(530, "5.7.0", "Authentication required");
  if (!istarts_with(arg, "FROM:")) return error(501, "5.5.4", "Syntax: MAIL FROM:<address>");
  arg.remove_prefix(5);
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);  // common client leniency
  auto path = detail::split_path(arg);
  if (!path) return error(501, "5.1.7", "Bad sender address syntax");
  if (!path->rest.empty() && path->rest.front() != ' ')
    return error(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
  auto params = detail::parse_params(path->rest, max_params);
  if (!params) return error(501, "5.5.4", "Bad MAIL parameter syntax");
  if (!env_.esmtp && !params->empty()) return error(555, "5.5.4", "Parameters need EHLO");
  bool smtputf8 = false, requiretls = false, seen_size = false, seen_body = false;
  Body body = Body::seven_bit;
  for (const auto& p : *params) {
    if (iequals(p.keyword, "SIZE") && !seen_size && p.value) {
      seen_size = true;
      auto n = detail::parse_decimal(*p.value);
      if (!n) return error(501, "5.5.4", "Bad SIZE value");
      if (*n > opt_.limits.max_message_bytes)
        return error(552, "5.3.4", "Message size exceeds fixed maximum message size");
    } else if (iequals(p.keyword, "BODY") && !seen_body && p.value) {
      seen_body = true;
      if (iequals(*p.value, "8BITMIME"))
        body = Body::eight_bit_mime;
      else if (!iequals(*p.value, "7BIT"))
        return error(501, "5.5.4", "Bad BODY value");
    } else if (iequals(p.keyword, "SMTPUTF8") && !smtputf8 && !p.value) {
      smtputf8 = true;
    } else if (iequals(p.keyword, "REQUIRETLS") && !requiretls && !p.value) {
      // RFC 8689 2: only offered, and so only valid, over TLS.
      if (!opt_.tls_active) return error(530, "5.7.10", "REQUIRETLS needs a TLS session");
      requiretls = true;
    } else {
      return error(555, "5.5.4", "Unsupported MAIL parameter");
    }
  }
  PendingSender chosen{{}, smtputf8, requiretls, body};
  std::optional<mime::Mailbox> sender;
  if (!path->mailbox.empty()) {
    auto mb = mime::parse_mailbox(path->mailbox, smtputf8);
    if (!mb) {
      if (mb.error().code() == mime::Errc::non_ascii)
        return error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8 (RFC 6531)");
      return error(501, "5.1.7", "Bad sender address syntax");
    }
    sender = std::move(*mb);
  }
  if (opt_.submission && sender) {
    chosen.mailbox = std::move(*sender);
    pending_sender_ = std::move(chosen);
    state_ = State::wait_sender;
    return Action::verify_sender;
  }
  start_transaction(std::move(sender), chosen);
  return Action::read;
}

void ServerSession::start_transaction(std::optional<mime::Mailbox> sender,
                                      const PendingSender& params) {
  in_transaction_ = true;
  env_.sender = std::move(sender);
  env_.smtputf8 = params.smtputf8;
  env_.requiretls = params.requiretls;
  env_.body = params.body;
  reply(250, "2.1.0", "Ok");
}

void ServerSession::sender_verdict(const std::optional<Reply>& rejection) {
  if (state_ != State::wait_sender) return;
  state_ = State::command;
  if (rejection) {
    out_ += format_reply(*rejection);
    return;
  }
  start_transaction(pending_sender_.mailbox, pending_sender_);
}

Action ServerSession::command_rcpt(std::string_view arg) {
  if (!in_transaction_) return error(503, "5.5.1", "Need MAIL command first");
  if (!istarts_with(arg, "TO:")) return error(501, "5.5.4", "Syntax: RCPT TO:<address>");
  arg.remove_prefix(3);
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  auto path = detail::split_path(arg);
  if (!path || path->mailbox.empty()) return error(501, "5.1.3", "Bad recipient address syntax");
  if (!path->rest.empty()) {
    auto params = detail::parse_params(path->rest, max_params);
    if (!params) return error(501, "5.5.4", "Bad RCPT parameter syntax");
    if (!params->empty()) return error(555, "5.5.4", "Unsupported RCPT parameter");
  }
  if (env_.recipients.size() >= opt_.limits.max_recipients ||
      ++rcpt_attempts_ > 4 * opt_.limits.max_recipients) {
    reply(452, "4.5.3", "Too many recipients");
    return Action::read;
  }
  mime::Mailbox mb;
  if (iequals(path->mailbox, "postmaster")) {
    // RFC 5321 4.1.1.3: <Postmaster> without a domain must be accepted.
    mb.local = "postmaster";
  } else {
    auto parsed = mime::parse_mailbox(path->mailbox, env_.smtputf8);
    if (!parsed) {
      if (parsed.error().code() == mime::Errc::non_ascii)
        return error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8 (RFC 6531)");
      return error(501, "5.1.3", "Bad recipient address syntax");
    }
    mb = std::move(*parsed);
  }
  pending_rcpt_ = std::move(mb);
  pending_ = Pending::rcpt;
  state_ = State::wait_verdict;
  return Action::verify_recipient;
}

Action ServerSession::command_vrfy(std::string_view arg) {
  if (arg.empty()) return error(501, "5.5.4", "Syntax: VRFY address");
  if (!opt_.vrfy_enabled) {
    reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
    return Action::read;
  }
  std::string_view text = arg;
  if (text.front() == '<') {
    auto path = detail::split_path(text);
    if (!path || !path->rest.empty()) return error(501, "5.1.3", "Bad address syntax");
    text = path->mailbox;
  }
  auto mb = mime::parse_mailbox(text, true);
  if (!mb) return error(501, "5.1.3", "Bad address syntax");
  pending_rcpt_ = std::move(*mb);
  pending_ = Pending::vrfy;
  state_ = State::wait_verdict;
  return Action::verify_recipient;
}

void ServerSession::recipient_verdict(const std::optional<Reply>& rejection) {
  if (state_ != State::wait_verdict) return;
  state_ = State::command;
  if (pending_ == Pending::vrfy) {
    if (rejection)
      out_ += format_reply(*rejection);
    else
      reply(250, "2.1.5", "<" + pending_rcpt_.str() + ">");
  } else if (rejection) {
    out_ += format_reply(*rejection);
  } else {
    bool duplicate = false;
    for (const auto& r : env_.recipients)
      if (r.lookup_key() == pending_rcpt_.lookup_key()) duplicate = true;
    if (!duplicate) env_.recipients.push_back(pending_rcpt_);
    reply(250, "2.1.5", "Ok");
  }
  pending_ = Pending::none;
}

Action ServerSession::command_data(std::string_view arg) {
  if (!arg.empty()) return error(501, "5.5.4", "Syntax: DATA");
  if (!in_transaction_) return error(503, "5.5.1", "Need MAIL command first");
  if (env_.chunking) return error(503, "5.5.1", "DATA not allowed after BDAT");
  if (env_.recipients.empty()) return error(554, "5.5.1", "No valid recipients");
  reply(354, "", "End data with <CR><LF>.<CR><LF>");
  state_ = State::data;
  message_.clear();
  prev_line_bare_ = false;
  return Action::read;
}

Action ServerSession::step_data() {
  const std::size_t max_line = opt_.limits.max_text_line_bytes;
  while (in_pos_ < in_.size()) {
    const char* p = in_.data() + in_pos_;
    std::size_t avail = in_.size() - in_pos_;
    const void* lfp = std::memchr(p, '\n', avail);
    if (skipping_long_line_) {
      if (!lfp) {
        skip_last_byte_ = in_.back();
        in_pos_ = in_.size();
        return Action::read;
      }
      auto off = static_cast<std::size_t>(static_cast<const char*>(lfp) - p);
      char before_lf = off > 0 ? p[off - 1] : skip_last_byte_;
      in_pos_ += off + 1;
      skipping_long_line_ = false;
      // The skipped line counts like any other: ended by a bare LF, it fails the message and
      // the next "." does not end the data (no smuggling through over-long lines).
      prev_line_bare_ = before_lf != '\r';
      if (prev_line_bare_) bad_line_end_ = true;
      continue;
    }
    // RFC 5321 4.5.3.1.6: the limit excludes a leading dot added by transparency (4.5.2).
    std::size_t stuffing = p[0] == '.' ? 1 : 0;
    if (!lfp) {
      if (avail > max_line + stuffing) {
        line_too_long_ = true;
        skipping_long_line_ = true;
        skip_last_byte_ = in_.back();
        in_pos_ = in_.size();
      }
      return Action::read;
    }
    std::size_t len = static_cast<std::size_t>(static_cast<const char*>(lfp) - p) + 1;
    std::string_view line(p, len);
    in_pos_ += len;
    bool crlf = len >= 2 && line[len - 2] == '\r';
    std::string_view content = line.substr(0, len - (crlf ? 2 : 1));
    bool after_crlf = !prev_line_bare_;
    prev_line_bare_ = !crlf;
    if (!crlf) bad_line_end_ = true;
    if (content.find('\r') != std::string_view::npos) bad_line_end_ = true;
    if (len > max_line + stuffing) line_too_long_ = true;
    if (crlf && after_crlf && content == ".") return finish_data();
    if (stuffing) content.remove_prefix(1);
    if (too_big_) continue;
    if (message_.size() + content.size() + 2 > opt_.limits.max_message_bytes) {
      too_big_ = true;
      message_ = std::string();
      continue;
    }
    message_.append(content);
    message_.append("\r\n");
  }
  return Action::read;
}

bool ServerSession::refuse_bad_message() {
  if (too_big_) {
    reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
  } else if (bad_line_end_) {
    reply(554, "5.6.0", "Message contains a bare CR or LF (RFC 5321 2.3.8)");
  } else if (line_too_long_) {
    reply(554, "5.6.0", "Message contains a line longer than 998 characters (RFC 5322 2.1.1)");
  } else {
    return false;
  }
  reset_transaction();
  return true;
}

Action ServerSession::finish_data() {
  state_ = State::command;
  if (refuse_bad_message()) return Action::read;
  state_ = State::wait_delivery;
  return Action::deliver;
}

Action ServerSession::command_bdat(std::string_view arg) {
  auto sp = arg.find(' ');
  auto size = detail::parse_decimal(arg.substr(0, sp));
  bool last = sp != std::string_view::npos;
  if (!size) return error(501, "5.5.4", "Syntax: BDAT size [LAST]");
  bdat_remaining_ = bdat_size_ = *size;
  bdat_last_ = last;
  state_ = State::bdat;
  // With a readable size the chunk is always consumed, even when the command is refused, so
  // its bytes are never taken for commands (RFC 3030 2).
  if (last && !iequals(arg.substr(sp + 1), "LAST")) {
    bdat_failed_ = true;
    reply_pending_ = Reply{501, "5.5.4", "Syntax: BDAT size [LAST]"};
  } else if (!in_transaction_) {
    bdat_failed_ = true;
    reply_pending_ = Reply{503, "5.5.1", "Need MAIL command first"};
  } else if (env_.recipients.empty()) {
    bdat_failed_ = true;
    reply_pending_ = Reply{554, "5.5.1", "No valid recipients"};
  } else if (!env_.chunking) {
    env_.chunking = true;
    message_.clear();
  }
  return Action::read;
}

Action ServerSession::step_bdat() {
  std::size_t take =
      static_cast<std::size_t>(std::min<uint64_t>(bdat_remaining_, in_.size() - in_pos_));
  std::string_view chunk(in_.data() + in_pos_, take);
  if (!bdat_failed_) {
    for (char c : chunk) {
      if ((bdat_prev_ == '\r') != (c == '\n')) bad_line_end_ = true;
      bdat_prev_ = c;
    }
    if (!too_big_) {
      if (message_.size() + take > opt_.limits.max_message_bytes) {
        too_big_ = true;
        message_ = std::string();
      } else {
        message_.append(chunk);
      }
    }
  }
  in_pos_ += take;
  bdat_remaining_ -= take;
  if (bdat_remaining_ > 0) return Action::read;

  state_ = State::command;
  if (bdat_failed_) {
    Reply r = std::move(reply_pending_);
    reset_transaction();
    return error(r.code, r.enhanced, r.text);
  }
  if (bdat_last_ && bdat_prev_ == '\r') bad_line_end_ = true;
  if (refuse_bad_message()) return Action::read;
  if (!bdat_last_) {
    reply(250, "2.0.0", std::to_string(bdat_size_) + " octets received");
    return Action::read;
  }
  state_ = State::wait_delivery;
  return Action::deliver;
}

void ServerSession::delivery_result(const Reply& r) {
  if (state_ != State::wait_delivery) return;
  out_ += format_reply(r);
  reset_transaction();
  state_ = State::command;
}

Action ServerSession::command_starttls(std::string_view arg) {
  if (!arg.empty()) return error(501, "5.5.4", "Syntax: STARTTLS");
  if (opt_.tls_active) return error(503, "5.5.1", "TLS already active");
  if (!opt_.starttls_offered) return error(502, "5.5.1", "STARTTLS not available");
  reply(220, "2.0.0", "Ready to start TLS");
  // RFC 3207 6: anything the client pipelined after STARTTLS was sent in the clear and must
  // not be executed inside TLS.
  in_.clear();
  in_pos_ = 0;
  state_ = State::closed;  // until tls_started()
  return Action::start_tls;
}

void ServerSession::tls_started() {
  opt_.tls_active = true;
  reset_transaction();
  env_ = Envelope{};
  env_.tls = true;
  in_.clear();
  in_pos_ = 0;
  state_ = State::command;
}

}  // namespace postern::smtp
