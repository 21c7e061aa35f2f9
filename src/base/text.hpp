// ASCII case rules for protocol text: SMTP verbs and parameters, IMAP atoms and flags, header
// field names, charset names, domains. Deliberately not locale-aware (std::tolower with a
// locale would fold bytes of UTF-8 sequences).
#pragma once

#include <string>
#include <string_view>

namespace postern::base {

bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string ascii_lower(std::string_view s);

}  // namespace postern::base
