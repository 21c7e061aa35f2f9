// Tests' DNS for the mailauth checks: a zone in memory and the replay loop that feeds a
// check its answers until it finishes.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "mailauth/mailauth.hpp"

namespace postern::mailauth {

// TXT records by name; names not listed are NXDOMAIN, names in `servfail` fail. `rounds`
// counts the rounds of lookups a check needed.
struct FakeDns {
  std::map<std::string, std::vector<std::string>> txt;
  std::set<std::string> servfail;
  int rounds = 0;

  void answer(Lookups& lookups) {
    ++rounds;
    for (const auto& q : lookups.take_missing()) {
      dns::Answer a;
      if (servfail.count(q.name)) {
        a.rcode = 2;
      } else if (auto it = txt.find(q.name); it != txt.end() && q.type == dns::Type::txt) {
        for (const auto& t : it->second) a.rdata.push_back(dns::make_txt_rdata(t));
      } else if (it == txt.end()) {
        a.rcode = 3;
        a.nxdomain = true;
      }
      lookups.add(q, a);
    }
  }
  template <class F>
  auto run(F check) {
    Lookups lookups;
    for (int i = 0; i < 30; ++i) {
      auto r = check(lookups);
      if (r) return *r;
      answer(lookups);
    }
    ADD_FAILURE() << "check did not finish";
    return decltype(*check(lookups)){};
  }
};

// An RSA key below RFC 8301's 1024-bit floor, which verification must refuse.
inline DkimKey small_rsa_key(std::string domain, std::string selector) {
  auto small = crypto::rsa_generate(768);
  EXPECT_TRUE(small) << small.error().describe();
  DkimKey key;
  key.algorithm = DkimAlgorithm::rsa_sha256;
  key.domain = std::move(domain);
  key.selector = std::move(selector);
  key.secret = std::move(small->private_der);
  key.public_key = small->public_der;
  return key;
}

}  // namespace postern::mailauth
