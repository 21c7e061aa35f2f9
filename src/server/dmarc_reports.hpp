// Internal to server/: DMARC aggregate reports (RFC 7489 7.2) — recording what the MX
// decided, and the daily reports to each domain that asks for them, sent through the queue.
#pragma once

#include <cstdint>
#include <string>

#include "mailauth/mailauth.hpp"
#include "server/server.hpp"

namespace postern::server {

// Seals the event under the report key and stores it (blocking; failures are logged, never
// stop a delivery: reports are statistics).
void record_dmarc_event(const Services& svc, const mailauth::DmarcEvent& event);

struct DmarcReportOutcome {
  std::size_t events = 0, reports = 0;
  std::size_t unauthorised = 0;  // rua addresses refused by the RFC 7489 7.1 check
};

// Reports every event before `until` (unix seconds): one report per policy domain, to each of
// its rua mailto: addresses that pass the external destination check, gzip'd, DKIM-signed by
// `settings.report_from`'s domain and queued; then the events are deleted. Blocking.
Result<DmarcReportOutcome> send_dmarc_reports(const Services& svc,
                                              const DmarcReportSettings& settings, int64_t until);

}  // namespace postern::server
