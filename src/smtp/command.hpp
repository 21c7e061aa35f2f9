// Internal: splitting and parsing of SMTP command arguments (RFC 5321 4.1.2, 4.1.1.11).
#pragma once

#include "base/text.hpp"
#include "mime/mime.hpp"

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::smtp::detail {

using base::iequals;
using base::istarts_with;

// A reverse- or forward-path in angle brackets; `rest` is what follows the closing '>'.
struct PathText {
  std::string_view mailbox;  // without brackets and source route; empty for "<>"
  std::string_view rest;
};
std::optional<PathText> split_path(std::string_view s);

struct Param {
  std::string_view keyword;
  std::optional<std::string_view> value;
};
// Space-separated esmtp-params; nullopt on a syntax error.
std::optional<std::vector<Param>> parse_params(std::string_view s, std::size_t max_params);

std::optional<uint64_t> parse_decimal(std::string_view s);

}  // namespace postern::smtp::detail
