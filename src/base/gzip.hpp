// gzip (RFC 1952) through zlib, for DMARC and TLS-RPT reports.
//
// Security: gunzip output is bounded (a report a few KiB long can inflate to gigabytes).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace postern::base {

std::string gzip(std::string_view data);
// Fails on a corrupt stream or when the output would pass `max_bytes`.
Result<std::string> gunzip(std::string_view data, std::size_t max_bytes);

}  // namespace postern::base
