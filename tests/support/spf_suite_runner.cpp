// Runs the openspf RFC 7208 test suite against mailauth::check_spf: reads the fixture that
// tests/support/spf_suite.py writes from python3-spf's YAML (its format is described there),
// serves each scenario's zone from memory through the replay loop the server runs (check,
// resolve what was noted, check again), and prints one line per case and a summary.
//
// Usage: spf_suite_runner FIXTURE. Exits 0 when every case passes or is a known deviation
// below, 1 when any other case fails (or a known deviation has started to pass: the list is
// then out of date), 2 when the fixture cannot be read.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dns/dns.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

// The cases where postern knowingly gives another answer than the suite, with the reason.
// Nothing else may fail.
const std::map<std::string, std::string> kKnownDeviations = {
    // The suite wants %{ir} of an IPv6 client in upper-case hex nibbles
    // ("...E.B.A.B.E.F.A.C.ip6.arpa" for cafe:babe::1). RFC 7208 7.3 does not say which case;
    // its own example in 7.4 (%{ir} of 2001:db8::cb01) shows lower case, and so does the
    // ip6.arpa convention (RFC 3596 2.5). postern follows the RFC's example.
    {"v-macro-ip6", "upper-case IPv6 nibbles in %{i}, where RFC 7208 7.4 shows lower case"},
};

[[noreturn]] void bad_fixture(int line, const std::string& why) {
  std::cerr << "spf-suite: fixture line " << line << ": " << why << "\n";
  std::exit(2);
}

// The tokens of a fixture line: bare, or in double quotes with \" \\ and \DDD escapes.
std::optional<std::vector<std::string>> tokens(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    std::string tok;
    if (line[i] != '"') {
      while (i < line.size() && line[i] != ' ') tok += line[i++];
      out.push_back(std::move(tok));
      continue;
    }
    ++i;
    while (true) {
      if (i >= line.size()) return std::nullopt;
      char c = line[i++];
      if (c == '"') break;
      if (c != '\\') {
        tok += c;
        continue;
      }
      if (i >= line.size()) return std::nullopt;
      if (line[i] == '"' || line[i] == '\\') {
        tok += line[i++];
        continue;
      }
      if (i + 3 > line.size()) return std::nullopt;
      int value = 0;
      for (int k = 0; k < 3; ++k, ++i) {
        if (line[i] < '0' || line[i] > '9') return std::nullopt;
        value = value * 10 + (line[i] - '0');
      }
      if (value > 255) return std::nullopt;
      tok += static_cast<char>(value);
    }
    out.push_back(std::move(tok));
  }
  return out;
}

std::optional<int> number(std::string_view s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::string zone_name(std::string_view name) {
  std::string out;
  for (char c : name) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// Uncompressed wire format; the case is kept, as DNS keeps it.
std::optional<std::string> wire_name(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out;
  while (!name.empty()) {
    auto dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63) return std::nullopt;
    out += static_cast<char>(label.size());
    out += label;
    name = dot == name.npos ? std::string_view() : name.substr(dot + 1);
  }
  return out + '\0';
}

std::optional<dns::Type> rr_type(std::string_view name) {
  if (name == "A") return dns::Type::a;
  if (name == "AAAA") return dns::Type::aaaa;
  if (name == "MX") return dns::Type::mx;
  if (name == "PTR") return dns::Type::ptr;
  if (name == "TXT") return dns::Type::txt;
  if (name == "CNAME") return dns::Type::cname;
  return std::nullopt;
}

// One scenario's zone. A name that has a record answers NOERROR, with no data for the other
// types; other names are NXDOMAIN.
class Zone {
 public:
  void add(const std::string& name, dns::Type type, std::string rdata) {
    auto& n = names_[zone_name(name)];
    n.types.insert(type);
    if (type == dns::Type::cname)
      n.cname = std::move(rdata);
    else
      n.records[type].push_back(std::move(rdata));
  }
  void exists(const std::string& name) { names_[zone_name(name)]; }
  // As the suite's harness reads TIMEOUT: every type without a record listed before it.
  void timeout(const std::string& name) {
    auto& n = names_[zone_name(name)];
    n.timeout = true;
    n.answering = n.types;
  }

  Result<dns::Answer> answer(const Query& q) const {
    dns::Answer a;
    std::string name = q.name;
    std::set<std::string> seen;
    while (true) {
      auto it = names_.find(name);
      if (it == names_.end()) {
        a.rcode = 3;
        a.nxdomain = true;
        return a;
      }
      const Name& n = it->second;
      if (n.timeout && !n.answering.count(q.type)) return Error(dns::Errc::resolve, "timed out");
      if (!n.cname) break;
      // A CNAME loop is a server failure (RFC 1034 3.6.2).
      if (!seen.insert(name).second) {
        a.rcode = 2;
        return a;
      }
      name = zone_name(*n.cname);
      a.canonical_name = name;
    }
    const Name& n = names_.at(name);
    if (auto r = n.records.find(q.type); r != n.records.end()) a.rdata = r->second;
    return a;
  }

 private:
  struct Name {
    std::map<dns::Type, std::vector<std::string>> records;
    std::optional<std::string> cname;  // the target, as text
    std::set<dns::Type> types;         // of the records listed so far
    bool timeout = false;
    std::set<dns::Type> answering;  // the types that do not time out
  };
  std::map<std::string, Name> names_;
};

struct Case {
  std::string id, host, mailfrom, helo;
  std::vector<std::string> results;        // acceptable, preferred first
  std::optional<std::string> explanation;  // "DEFAULT": none
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// Printable, for the report.
std::string shown(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03u", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The replay loop, with the checks the unit tests make of it: a run that finishes has noted
// nothing, and running it again gives the same outcome.
std::optional<SpfOutcome> run(const Case& c, const Zone& zone, std::string& trouble) {
  // RFC 7208 2.4: a null reverse-path is checked as postmaster@<HELO identity>.
  SpfRequest req{c.host, c.mailfrom.empty() ? "postmaster@" + c.helo : c.mailfrom, c.helo,
                 "unknown", 0};
  Lookups lookups;
  for (int round = 0; round < 100; ++round) {
    auto out = check_spf(req, lookups);
    auto missing = lookups.take_missing();
    if (out) {
      if (!missing.empty()) trouble = "an outcome that still noted queries";
      auto again = check_spf(req, lookups);
      if (!again || again->result != out->result || again->explanation != out->explanation ||
          !lookups.take_missing().empty())
        trouble = "not reproducible over the same answers";
      return out;
    }
    if (missing.empty()) {
      trouble = "no outcome and no query";
      return std::nullopt;
    }
    for (const auto& q : missing) lookups.add(q, zone.answer(q));
  }
  trouble = "no outcome after 100 rounds";
  return std::nullopt;
}

int main_(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: spf_suite_runner FIXTURE\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "spf-suite: cannot open " << argv[1] << "\n";
    return 2;
  }
  Zone zone;
  int passed = 0, failed = 0, unexpected = 0, line_no = 0;
  std::set<std::string> ids;
  std::optional<int> end;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (end) bad_fixture(line_no, "text after END");
    auto t = tokens(line);
    if (!t) bad_fixture(line_no, "unterminated quote or bad escape");
    if (t->empty()) continue;
    const std::string& kind = (*t)[0];
    if (kind == "SCENARIO") {
      zone = Zone();
      continue;
    }
    if (kind == "END") {
      end = t->size() == 2 ? number((*t)[1]) : std::nullopt;
      if (!end) bad_fixture(line_no, "END count");
      continue;
    }
    if (kind == "ZONE") {
      if (t->size() < 3) bad_fixture(line_no, "ZONE name type ...");
      const std::string& name = (*t)[1];
      const std::string& type = (*t)[2];
      std::vector<std::string> data(t->begin() + 3, t->end());
      if (type == "TIMEOUT" || type == "NODATA") {
        if (!data.empty()) bad_fixture(line_no, type + " takes no data");
        type == "TIMEOUT" ? zone.timeout(name) : zone.exists(name);
        continue;
      }
      auto rtype = rr_type(type);
      if (!rtype) bad_fixture(line_no, "unknown type " + type);
      std::string rdata;
      if (*rtype == dns::Type::txt) {
        // No strings at all: an empty RDATA, which DNS does not allow (RFC 1035 3.3.14).
        for (const auto& s : data) rdata += dns::make_txt_rdata(s);
      } else if (*rtype == dns::Type::mx) {
        if (data.size() != 2) bad_fixture(line_no, "MX preference host");
        auto pref = number(data[0]);
        auto host = wire_name(data[1]);
        if (!pref || !host || *pref < 0 || *pref > 65535) bad_fixture(line_no, "bad MX");
        rdata = {static_cast<char>(*pref >> 8), static_cast<char>(*pref & 0xff)};
        rdata += *host;
      } else if (data.size() != 1) {
        bad_fixture(line_no, type + " takes one value");
      } else if (*rtype == dns::Type::a || *rtype == dns::Type::aaaa) {
        unsigned char buf[16];
        bool v6 = *rtype == dns::Type::aaaa;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, data[0].c_str(), buf) != 1)
          bad_fixture(line_no, "bad address " + data[0]);
        rdata.assign(reinterpret_cast<char*>(buf), v6 ? 16 : 4);
      } else if (*rtype == dns::Type::ptr) {
        auto host = wire_name(data[0]);
        if (!host) bad_fixture(line_no, "bad PTR name");
        rdata = *host;
      } else {
        rdata = data[0];  // CNAME: the target, as text
      }
      zone.add(name, *rtype, std::move(rdata));
      continue;
    }
    if (kind != "TEST") bad_fixture(line_no, "unknown line " + kind);
    if (t->size() != 6 && t->size() != 7)
      bad_fixture(line_no, "TEST id host mailfrom helo results [explanation]");
    Case c{(*t)[1], (*t)[2], (*t)[3], (*t)[4], {}, std::nullopt};
    std::istringstream results((*t)[5]);
    for (std::string r; std::getline(results, r, ',');) c.results.push_back(r);
    if (c.results.empty()) bad_fixture(line_no, "no result");
    if (t->size() == 7) c.explanation = (*t)[6];
    if (!ids.insert(c.id).second) bad_fixture(line_no, "test " + c.id + " twice");

    std::string trouble;
    auto out = run(c, zone, trouble);
    std::string got = out ? to_string(out->result) : "(none)";
    std::string got_exp = out ? out->explanation : "";
    std::string why;
    if (!trouble.empty()) {
      why = trouble;
    } else if (std::find(c.results.begin(), c.results.end(), got) == c.results.end()) {
      why = "expected " + join(c.results, " or ");
    } else if (c.explanation && (*c.explanation == "DEFAULT" ? "" : *c.explanation) != got_exp) {
      why = "expected explanation " + shown(*c.explanation);
    }
    std::string detail = got;
    if (out) {
      detail += " (" + out->domain + ": " + out->mechanism + ")";
      if (!got_exp.empty()) detail += " explanation " + shown(got_exp);
    }
    auto known = kKnownDeviations.find(c.id);
    if (why.empty()) {
      ++passed;
      if (known != kKnownDeviations.end()) {
        ++unexpected;
        std::cout << "FIXED " << c.id << ": " << detail
                  << " -- remove it from the known deviations\n";
      } else {
        std::cout << "ok    " << c.id << ": " << detail;
        if (got != c.results.front())
          std::cout << " (accepted; the suite prefers " << c.results.front() << ")";
        std::cout << "\n";
      }
    } else {
      ++failed;
      if (known != kKnownDeviations.end()) {
        std::cout << "known " << c.id << ": " << detail << "; " << why
                  << " -- known deviation: " << known->second << "\n";
      } else {
        ++unexpected;
        std::cout << "FAIL  " << c.id << ": " << detail << "; " << why << "\n";
      }
    }
  }
  if (!end) bad_fixture(line_no, "no END line (truncated?)");
  if (*end != static_cast<int>(ids.size()) || ids.empty())
    bad_fixture(line_no,
                "END says " + std::to_string(*end) + " tests, read " + std::to_string(ids.size()));
  for (const auto& [id, reason] : kKnownDeviations)
    if (!ids.count(id)) {
      ++unexpected;
      std::cout << "GONE  " << id << ": a known deviation the suite no longer has\n";
    }
  std::cout << "spf-suite: " << passed << " passed, " << failed << " failed\n";
  return unexpected ? 1 : 0;
}

}  // namespace
}  // namespace postern::mailauth

int main(int argc, char** argv) {
  return postern::mailauth::main_(argc, argv);
}
