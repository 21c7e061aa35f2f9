// `postern verify-dkim --keys FILE MESSAGE...`: postern's DKIM verifier on message files, with
// the key records taken from a file instead of DNS. For checking a message against known keys
// and for bench/mailauth, which compares the verifier itself with dkimpy on the same input.
#include <ctime>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "app/app.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::app {

int verify_dkim(const std::string& keys_file, const std::vector<std::string>& messages,
                std::ostream& out, std::ostream& err) {
  std::ifstream keys(keys_file);
  if (!keys) {
    err << "postern verify-dkim: cannot read " << keys_file << "\n";
    return exit_failure;
  }
  std::map<std::string, std::string> records;  // "<selector>._domainkey.<domain>" -> TXT
  for (std::string line; std::getline(keys, line);) {
    auto tab = line.find('\t');
    if (line.empty() || line[0] == '#') continue;
    if (tab == std::string::npos) {
      err << "postern verify-dkim: " << keys_file << ": expected NAME<TAB>RECORD\n";
      return exit_usage;
    }
    std::string name = line.substr(0, tab);
    for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    records[name] = line.substr(tab + 1);
  }
  bool all_pass = true;
  mailauth::DkimVerifyOptions options;
  options.now = std::time(nullptr);
  for (const auto& path : messages) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      err << "postern verify-dkim: cannot read " << path << "\n";
      return exit_failure;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string message = ss.str();
    mailauth::Lookups lookups;
    std::optional<std::vector<mailauth::DkimOutcome>> outcomes;
    // Keys of every signature are asked for in the first round; a second one has them all.
    for (int round = 0; round < 3 && !outcomes; ++round) {
      outcomes = mailauth::verify_dkim(message, options, lookups);
      for (const auto& q : lookups.take_missing()) {
        dns::Answer a;
        if (auto it = records.find(q.name); it != records.end()) {
          a.rdata.push_back(dns::make_txt_rdata(it->second));
        } else {
          a.rcode = 3;
          a.nxdomain = true;
        }
        lookups.add(q, a);
      }
    }
    if (!outcomes || outcomes->empty()) {
      out << path << " none\n";
      all_pass = false;
      continue;
    }
    for (const auto& o : *outcomes) {
      out << path << " " << mailauth::to_string(o.result) << " d=" << o.domain
          << " s=" << o.selector << " a=" << o.algorithm;
      if (!o.reason.empty()) out << " (" << o.reason << ")";
      out << "\n";
      all_pass = all_pass && o.result == mailauth::DkimResult::pass;
    }
  }
  return all_pass ? exit_ok : exit_failure;
}

}  // namespace postern::app
