// Internal to server/: SPF, DKIM and DMARC for a message received on the MX.
#pragma once

#include <memory>
#include <string>

#include "mailauth/mailauth.hpp"
#include "server/asio_util.hpp"

namespace postern::server {

class DnsPump;

struct InboundAuthJob {
  mailauth::InboundRequest request;  // request.message points into `message`
  std::shared_ptr<const std::string> message;
  mailauth::InboundOptions options;
};

// Runs mailauth::check_inbound to its end: each round on the blocking pool (body hashing and
// RSA are CPU work), the lookups it asks for resolved together through the pump. A lookup
// storm is bounded by mailauth's own limits and by a cap on rounds here (then: defer).
asio::awaitable<mailauth::InboundVerdict> authenticate_inbound(std::shared_ptr<InboundAuthJob> job,
                                                               DnsPump* dns,
                                                               asio::thread_pool* pool);

}  // namespace postern::server
