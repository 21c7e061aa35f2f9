// The DNS answers the checks are fed, and what they still need.
#include "mailauth/mailauth.hpp"

#include "base/text.hpp"

namespace postern::mailauth {

const Result<dns::Answer>* Lookups::get(std::string_view name, dns::Type type) {
  Query q{base::ascii_lower(name), type};
  while (!q.name.empty() && q.name.back() == '.') q.name.pop_back();
  auto it = answers_.find(q);
  if (it != answers_.end()) return &it->second;
  missing_.insert(std::move(q));
  return nullptr;
}

void Lookups::add(const Query& query, Result<dns::Answer> answer) {
  // A DNSSEC-bogus answer is an attack or a broken zone, never "no record": every check
  // treats it like a failed lookup (temperror).
  if (answer && answer->security == dns::Security::bogus)
    answer = Error(dns::Errc::resolve, "DNSSEC bogus: " + answer->why_bogus);
  answers_.insert_or_assign(query, std::move(answer));
  missing_.erase(query);
}

std::vector<Query> Lookups::take_missing() {
  std::vector<Query> out(missing_.begin(), missing_.end());
  missing_.clear();
  return out;
}

std::vector<std::string> txt_records(const dns::Answer& answer) {
  std::vector<std::string> out;
  for (const auto& rd : answer.rdata)
    if (auto t = dns::parse_txt(rd)) out.push_back(std::move(*t));
  return out;
}

}  // namespace postern::mailauth
