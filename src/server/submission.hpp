// Internal to server/: accepting a submitted message into the outbound queue.
#pragma once

#include "server/server.hpp"

namespace postern::server {

struct SubmissionRequest {
  smtp::Envelope envelope;
  std::string message;
  int64_t account_id = 0;  // the authenticated account
  std::string hostname;
  std::string queue_id;  // names the session's transaction in the Received field
  bool dkim = true;
};
struct SubmissionOutcome {
  smtp::Reply reply;  // 250 with the queue id, or the refusal (5.6.0, 5.7.1)
  std::string queue_id;
};
// DKIM-Signature fields by the domain's newest Ed25519 and RSA keys (empty without keys).
Result<std::string> dkim_signatures(store::Store& store, const std::string& domain,
                                    std::string_view message, int64_t now);
// Blocking (database, signing, the durable enqueue): run it on the pool. Errors are store or
// disk failures (the caller answers 4xx); refusals are in the outcome.
Result<SubmissionOutcome> accept_submission(const Services& svc, const SubmissionRequest& in);

}  // namespace postern::server
