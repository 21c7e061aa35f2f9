// The SMTP protocol core (RFC 5321 and the extensions postern offers), with no I/O: the server
// layer feeds it bytes, writes what take_output() returns, and answers the questions the machine
// asks through next(): is this recipient ours, deliver this message, start TLS, close.
//
// Security: everything here is attacker-controlled input. Every line and message is bounded;
// line ends must be CRLF everywhere (a bare CR or LF is refused, in commands and in message
// data, so no text another MTA could split into two messages is accepted as one); bytes a client
// pipelines after STARTTLS are dropped before TLS starts (CVE-2011-0411 class).
#pragma once

#include "base/error.hpp"
#include "mime/mime.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

struct Reply {
  int code = 250;
  std::string enhanced;  // RFC 3463 "2.0.0"; empty for 220/221 greetings without one
  std::string text;
};
// "250-a\r\n250 b\r\n": one line per element of `lines`; enhanced code on each line.
std::string format_reply(int code, std::string_view enhanced,
                         const std::vector<std::string>& lines);
std::string format_reply(const Reply& r);

struct Limits {
  std::size_t max_command_line_bytes = 1024;  // RFC 5321 4.5.3.1.4 is 512; extensions need more
  std::size_t max_text_line_bytes = 1000;     // RFC 5321 4.5.3.1.6, CRLF included
  uint64_t max_message_bytes = 50ull << 20;
  std::size_t max_recipients = 100;
  std::size_t max_errors = 10;  // protocol errors before 421 and close
};

struct Options {
  std::string hostname;
  Limits limits;
  bool starttls_offered = false;  // a certificate is configured
  bool tls_active = false;        // implicit TLS, or after STARTTLS
  bool vrfy_enabled = false;
  // Submission (RFC 6409, RFC 4954): AUTH PLAIN and LOGIN offered once TLS is up, and MAIL
  // refused until the client has authenticated.
  bool submission = false;
};

enum class Body { seven_bit, eight_bit_mime };

struct Envelope {
  std::string helo;
  bool esmtp = false;
  std::optional<mime::Mailbox> sender;  // nullopt: the null reverse-path <>
  std::vector<mime::Mailbox> recipients;
  bool smtputf8 = false;
  Body body = Body::seven_bit;
  bool tls = false;
  bool chunking = false;    // received with BDAT
  bool requiretls = false;  // RFC 8689 MAIL FROM parameter (only accepted over TLS)
};

enum class Action {
  read,              // write take_output(), then feed() more bytes
  verify_recipient,  // answer with recipient_verdict()
  verify_sender,     // submission: may the account use pending_sender()? sender_verdict()
  deliver,           // store envelope()+take_message(), answer with delivery_result()
  start_tls,         // write take_output(), handshake, then tls_started()
  authenticate,      // check auth_user()/take_auth_password(), answer with auth_result()
  close,             // write take_output(), then close the connection
};

class ServerSession {
 public:
  explicit ServerSession(Options options);

  void feed(std::string_view bytes);
  Action next();
  std::string take_output();
  bool has_output() const { return !out_.empty(); }

  // verify_recipient: the address asked about (RCPT TO or VRFY).
  const mime::Mailbox& pending_recipient() const { return pending_rcpt_; }
  // nullopt accepts; otherwise the rejection reply (550 5.1.1 ...).
  void recipient_verdict(const std::optional<Reply>& rejection);

  // verify_sender: the reverse-path of the MAIL command (submission only; <> is not asked).
  const mime::Mailbox& pending_sender() const { return pending_sender_.mailbox; }
  void sender_verdict(const std::optional<Reply>& rejection);

  const Envelope& envelope() const { return env_; }
  std::string take_message() { return std::move(message_); }
  void delivery_result(const Reply& reply);

  void tls_started();

  // authenticate: the credentials the client gave (take the password once and wipe it).
  const std::string& auth_user() const { return auth_user_; }
  std::string take_auth_password() { return std::move(auth_password_); }
  void auth_result(bool ok);
  // The credentials could not be checked (store failure): 454 4.7.0, the client may retry.
  void auth_unavailable();
  // The account the session authenticated as (submission); empty before.
  const std::string& authenticated_user() const { return authenticated_; }
  // The I/O layer's deadline expired.
  void timeout();
  // Bytes buffered but not yet processed (tests use it to check STARTTLS discards).
  std::size_t buffered() const { return in_.size() - in_pos_; }
  // Reading message content (DATA or a BDAT chunk): the I/O layer applies the data timeout.
  bool in_message() const { return state_ == State::data || state_ == State::bdat; }

 private:
  enum class State {
    command,
    data,
    bdat,
    wait_verdict,
    wait_sender,
    wait_delivery,
    auth_response,  // the next line answers a 334 challenge
    wait_auth,
    closed
  };

  Action process_command(std::string_view line);
  Action command_ehlo(std::string_view verb, std::string_view arg);
  Action command_mail(std::string_view arg);
  Action command_rcpt(std::string_view arg);
  Action command_data(std::string_view arg);
  Action command_bdat(std::string_view arg);
  Action command_starttls(std::string_view arg);
  Action command_vrfy(std::string_view arg);
  Action command_auth(std::string_view arg);
  Action auth_response(std::string_view line);
  Action auth_plain(std::string_view base64);
  Action error(int code, std::string_view enhanced, std::string_view text);
  Action finish_data();
  // Replies to and resets a message that broke a limit or had a bare CR/LF; false if none.
  bool refuse_bad_message();
  Action step_data();
  Action step_bdat();
  void reply(int code, std::string_view enhanced, std::string_view text);
  void reset_transaction();
  void compact_input();

  Options opt_;
  State state_ = State::command;
  std::string in_;
  std::size_t in_pos_ = 0;
  std::string out_;
  std::size_t errors_ = 0;
  bool skipping_long_line_ = false;
  enum class Pending { none, rcpt, vrfy } pending_ = Pending::none;
  mime::Mailbox pending_rcpt_;
  struct PendingSender {
    mime::Mailbox mailbox;
    bool smtputf8 = false, requiretls = false;
    Body body = Body::seven_bit;
  } pending_sender_;
  void start_transaction(std::optional<mime::Mailbox> sender, const PendingSender& params);

  Envelope env_;
  bool in_transaction_ = false;
  std::size_t rcpt_attempts_ = 0;
  std::string message_;
  // Message reading state, shared by DATA and BDAT.
  bool too_big_ = false;
  bool bad_line_end_ = false;
  bool line_too_long_ = false;
  bool prev_line_bare_ = false;  // the previous DATA line did not end in CRLF
  char skip_last_byte_ = 0;      // last byte of an over-long line being skipped
  uint64_t bdat_remaining_ = 0;
  uint64_t bdat_size_ = 0;
  bool bdat_last_ = false;
  bool bdat_failed_ = false;  // a previous chunk of this transaction was refused
  char bdat_prev_ = 0;        // last byte of the previous chunk, for CR/LF pairing
  Reply reply_pending_;       // answer to a BDAT refused before its chunk was read
  enum class AuthStep { plain, login_user, login_password } auth_step_ = AuthStep::plain;
  std::string auth_user_;
  std::string auth_password_;
  std::string authenticated_;
};

// --- Client side (outbound delivery) ---

// Reads replies from a server: lines accumulate until the last line of a reply ("250 x" after
// "250-y" lines). Bounded: a line over 4096 bytes, a reply over 200 lines or 64 KiB is a
// protocol error, as is a line that is not "DDD", "DDD text" or "DDD-text" with one code
// throughout.
class ReplyReader {
 public:
  void feed(std::string_view bytes);
  // The next complete reply; nullopt when more input is needed. After an error, error() is set
  // and nothing more is returned.
  std::optional<Reply> next();
  bool failed() const { return failed_; }
  // The reply's lines (for EHLO): the text of each line, without code and separator.
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::string in_;
  std::size_t pos_ = 0;
  std::vector<std::string> lines_;
  std::vector<std::string> pending_;
  std::size_t pending_bytes_ = 0;
  int code_ = 0;
  bool failed_ = false;
};

// What a server offered in its EHLO reply.
struct Capabilities {
  bool pipelining = false, starttls = false, eight_bit_mime = false, smtputf8 = false;
  bool requiretls = false, chunking = false, enhanced_codes = false;
  uint64_t size = 0;  // 0: no limit announced
};
Capabilities parse_ehlo(const std::vector<std::string>& lines);

// DATA content: CRLF line ends assumed (postern only queues such messages), leading dots
// doubled, CRLF added when the message does not end with one, then ".\r\n".
std::string dot_stuff(std::string_view message);

// --- Submission (RFC 6409 8) ---

struct SubmissionFix {
  std::string hostname;          // right side of a generated Message-ID
  std::string message_id_local;  // unique left side (random)
  std::string date;              // RFC 5322 date for a missing Date
};
struct Submitted {
  std::string message;                 // Bcc removed, Date/Message-ID added when missing
  std::vector<mime::Mailbox> authors;  // every address of the From field
  std::vector<mime::Mailbox> senders;  // the Sender field's address, if any
};
// mime::Errc::syntax when the header section is malformed or From is missing or holds an address
// that does not parse (the sender check needs every author).
Result<Submitted> prepare_submission(std::string_view message, const SubmissionFix& fix);

// --- Delivery status notifications (RFC 3464) ---

struct DsnRecipient {
  std::string address;           // final recipient (rfc822;...)
  std::string action;            // failed, delayed, delivered, relayed, expanded
  std::string status;            // "5.1.1"
  std::string remote_mta;        // dns;host (empty: none)
  std::string diagnostic;        // "smtp; 550 5.1.1 ..." (empty: none)
  std::string last_attempt;      // RFC 5322 date (empty: none)
  std::string will_retry_until;  // delayed only
};
struct DsnRequest {
  std::string reporting_mta;  // our host name
  std::string postmaster;     // From: of the report (MAILER-DAEMON@host)
  std::string to;             // the original sender
  std::string date;
  std::string message_id;  // <...> of the report
  std::string boundary;    // random; must not occur in the original headers
  std::string arrival_date;
  std::string original_headers;  // the original header section (returned as text/rfc822-headers)
  std::vector<DsnRecipient> recipients;
};
// A multipart/report; report-type=delivery-status message with a human-readable part, the
// message/delivery-status part and the original message's headers.
std::string make_dsn(const DsnRequest& request);

struct DeliveryStatus {
  std::string reporting_mta;
  std::string arrival_date;
  std::vector<DsnRecipient> recipients;
};
// The content of a message/delivery-status part (RFC 3464 2.1): per-message fields, then one
// block of per-recipient fields each. Bounded: 1000 recipients, 998-byte fields (folded lines
// joined). mime::Errc::syntax for anything else.
Result<DeliveryStatus> parse_delivery_status(std::string_view text);

}  // namespace postern::smtp
