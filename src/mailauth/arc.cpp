// ARC (RFC 8617): validating the chain of ARC Sets on a received message (5.2) and sealing a
// message with the next set (5.1). The ARC-Message-Signature is a DKIM signature and the
// ARC-Seal uses DKIM's keys and algorithms, so both go through dkim_internal.hpp.
//
// Security: every ARC field and key record is hostile input. The chain is capped at 50
// instances (RFC 8617 4.2.1) and its fields at max_arc_bytes in total, because each seal
// hashes all the sets below it (quadratic in the chain); all keys are asked for in one round.
// Structure errors fail before any lookup or hashing. What ARC proves is only what the
// sealers said: whether to believe a sealer is the caller's decision (check_inbound trusts
// the sealers it is configured with).
#include <algorithm>
#include <map>

#include "base/text.hpp"
#include "mailauth/dkim_internal.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::mailauth {
namespace {

constexpr int max_instances = 50;                               // RFC 8617 4.2.1
constexpr std::size_t max_arc_bytes = std::size_t{256} * 1024;  // all ARC field values together

constexpr std::string_view aar_name = "ARC-Authentication-Results";
constexpr std::string_view ams_name = "ARC-Message-Signature";
constexpr std::string_view seal_name = "ARC-Seal";

// The three fields of one instance, as found in the message.
struct RawSet {
  const mime::Header* aar = nullptr;
  const mime::Header* ams = nullptr;
  const mime::Header* seal = nullptr;
};

struct Chain {
  bool any = false;  // the message has at least one ARC field
  int highest = 0;   // the highest instance readable, also when the structure is broken
  std::string error;
  std::vector<RawSet> sets;  // sets[k] is instance k + 1; complete when error is empty
};

std::optional<int> instance_number(std::string_view digits) {
  auto n = dkim::number(digits, 2);
  if (!n || *n < 1 || *n > static_cast<uint64_t>(max_instances)) return std::nullopt;
  return static_cast<int>(*n);
}

// RFC 8617 4.1.1: arc-info = "i=" instance ";" before the Authentication-Results payload.
// The instance and where the payload starts.
std::optional<std::pair<int, std::string_view>> split_aar(std::string_view value) {
  std::string_view v = dkim::trim(value);
  if (v.empty() || (v.front() != 'i' && v.front() != 'I')) return std::nullopt;
  v = dkim::trim(v.substr(1));
  if (v.empty() || v.front() != '=') return std::nullopt;
  auto semi = v.find(';');
  if (semi == std::string_view::npos) return std::nullopt;
  auto i = instance_number(dkim::trim(v.substr(1, semi - 1)));
  if (!i) return std::nullopt;
  return std::pair{*i, dkim::trim(v.substr(semi + 1))};
}

std::optional<int> tag_instance(std::string_view value) {
  auto tags = parse_tag_list(value);
  if (!tags) return std::nullopt;
  for (const auto& [name, v] : *tags)
    if (name == "i") return instance_number(v);
  return std::nullopt;
}

// RFC 8617 5.2 steps 1 and 3 (structure): exactly one field of each kind per instance, the
// instances 1..N without a gap.
Chain collect(const mime::HeaderSection& hs) {
  Chain c;
  std::map<int, RawSet> by_instance;
  std::size_t bytes = 0;
  auto note = [&](std::string why) {
    if (c.error.empty()) c.error = std::move(why);
  };
  for (const auto& h : hs.headers) {
    bool aar = base::iequals(h.name, aar_name);
    bool ams = base::iequals(h.name, ams_name);
    bool seal = base::iequals(h.name, seal_name);
    if (!aar && !ams && !seal) continue;
    c.any = true;
    bytes += h.raw_value.size();
    std::optional<int> i;
    if (aar) {
      if (auto split = split_aar(h.raw_value)) i = split->first;
    } else {
      i = tag_instance(h.raw_value);
    }
    std::string name(aar ? aar_name : (ams ? ams_name : seal_name));
    if (!i) {
      note(name + " without a valid i=");
      continue;
    }
    c.highest = std::max(c.highest, *i);
    RawSet& set = by_instance[*i];
    const mime::Header*& slot = aar ? set.aar : (ams ? set.ams : set.seal);
    if (slot) note("i=" + std::to_string(*i) + " has two " + name + " fields");
    slot = &h;
  }
  if (!c.any) return c;
  if (bytes > max_arc_bytes) note("ARC fields longer than " + std::to_string(max_arc_bytes));
  for (int i = 1; i <= c.highest; ++i) {
    auto it = by_instance.find(i);
    if (it == by_instance.end()) {
      note("i=" + std::to_string(i) + " is missing");
      break;
    }
    const RawSet& s = it->second;
    if (!s.aar || !s.ams || !s.seal)
      note("i=" + std::to_string(i) + " has no " +
           std::string(!s.aar ? aar_name : (!s.ams ? ams_name : seal_name)));
    c.sets.push_back(s);
  }
  if (!c.error.empty()) c.sets.clear();
  return c;
}

struct Seal {
  DkimAlgorithm algorithm = DkimAlgorithm::rsa_sha256;
  std::string domain, selector, cv;
  std::string signature;  // decoded b=
};

// RFC 8617 4.1.3: the reason an ARC-Seal is unusable, nullopt when it is well formed.
std::optional<std::string> parse_seal(const mime::Header& field, Seal& seal) {
  auto tags = parse_tag_list(field.raw_value);
  if (!tags) return "tag list: " + tags.error().detail();
  std::map<std::string, std::string> t(tags->begin(), tags->end());
  for (const char* required : {"a", "b", "cv", "d", "s"})
    if (!t.count(required)) return std::string("missing ") + required + "=";
  if (t.count("h")) return std::string("h= in an ARC-Seal");
  std::string a = base::ascii_lower(t["a"]);
  if (a == "ed25519-sha256")
    seal.algorithm = DkimAlgorithm::ed25519_sha256;
  else if (a == "rsa-sha256")
    seal.algorithm = DkimAlgorithm::rsa_sha256;
  else
    return "unsupported algorithm " + a;
  seal.domain = dkim::domain_key(t["d"]);
  seal.selector = base::ascii_lower(t["s"]);
  if (seal.domain.empty() || seal.selector.empty()) return std::string("empty d= or s=");
  if (!mime::valid_domain(seal.domain, false)) return std::string("bad d=");
  seal.cv = base::ascii_lower(t["cv"]);
  if (seal.cv != "none" && seal.cv != "pass" && seal.cv != "fail") return "unknown cv=" + seal.cv;
  auto b = mime::decode_base64(dkim::without_fws(t["b"]));
  if (!b || b->empty()) return std::string("bad b=");
  seal.signature = std::move(*b);
  return std::nullopt;
}

// The d= of an AMS for reporting, also when the AMS is not otherwise usable.
std::string ams_domain(const mime::Header& field) {
  auto tags = parse_tag_list(field.raw_value);
  if (!tags) return {};
  for (const auto& [name, v] : *tags)
    if (name == "d") return dkim::domain_key(v);
  return {};
}

std::string key_name(std::string_view selector, std::string_view domain) {
  return std::string(selector) + "._domainkey." + std::string(domain);
}

// The canonical body hashes, each computed once per (canonicalisation, l=).
class BodyHashes {
 public:
  explicit BodyHashes(std::string_view body) : body_(body) {}
  // The reason the signature's bh= does not match, nullopt when it does.
  std::optional<std::string> check(const dkim::Signature& sig) {
    auto key = std::pair{sig.relaxed_body, sig.length};
    auto it = hashes_.find(key);
    if (it == hashes_.end()) {
      std::string canonical = sig.relaxed_body ? relaxed_body(body_) : simple_body(body_);
      Entry e{canonical.size(), {}};
      if (!sig.length || *sig.length <= canonical.size())
        e.hash = crypto::sha256(
            std::string_view(canonical).substr(0, sig.length.value_or(canonical.size())));
      it = hashes_.emplace(key, std::move(e)).first;
    }
    const Entry& e = it->second;
    // Content after an l= limit is not covered: a sealer's results must not carry it along.
    if (sig.length && *sig.length < e.size)
      return "l= leaves " + std::to_string(e.size - *sig.length) + " bytes unsigned";
    if (e.hash.empty()) return std::string("l= longer than the body");
    if (e.hash != sig.body_hash) return std::string("body hash mismatch");
    return std::nullopt;
  }

 private:
  struct Entry {
    std::size_t size = 0;
    std::string hash;
  };
  std::string_view body_;
  std::map<std::pair<bool, std::optional<uint64_t>>, Entry> hashes_;
};

// The reason an AMS does not validate, nullopt when it does; `temporary` is set when its key
// could not be looked up.
std::optional<std::string> check_ams(const mime::HeaderSection& hs, const dkim::Signature& sig,
                                     const Result<dns::Answer>& answer, unsigned min_rsa_bits,
                                     BodyHashes& bodies, bool& temporary) {
  auto lookup = dkim::key_from_answer(answer, sig.algorithm, min_rsa_bits);
  if (!lookup.key) {
    temporary = lookup.result == DkimResult::temperror;
    return lookup.reason + " for " + key_name(sig.selector, sig.domain);
  }
  if (auto why = bodies.check(sig)) return why;
  if (!dkim::verify_data(sig.algorithm, lookup.key->public_key, dkim::header_data(hs, sig),
                         sig.signature))
    return std::string("signature does not verify");
  return std::nullopt;
}

// RFC 8617 5.1.1: what the seal of `instance` signs, given each field of the sets up to it in
// relaxed form ("aar, ams, as" per set, CRLF-terminated) and its own field's value.
std::string seal_data(const std::vector<std::string>& canonical, std::size_t instance,
                      std::string_view seal_field_value) {
  std::string data;
  for (std::size_t k = 0; k + 1 < 3 * instance; ++k) data += canonical[k];
  std::string self = relaxed_header(seal_name, dkim::without_b(seal_field_value));
  self.resize(self.size() - 2);  // no final CRLF, as for DKIM (RFC 6376 3.7)
  return data + self;
}

const char* algorithm_name(DkimAlgorithm a) {
  return a == DkimAlgorithm::ed25519_sha256 ? "ed25519-sha256" : "rsa-sha256";
}

// A field value built tag by tag, folded so that no line passes 78 characters (folding white
// space is allowed between tags and inside h= and b=, RFC 6376 3.5).
class Folded {
 public:
  explicit Folded(std::string_view name) : column_(name.size() + 1) {}
  void put(std::string_view piece, std::string_view separator = " ") {
    if (column_ + separator.size() + piece.size() > 76) {
      value_ += "\r\n\t";
      column_ = 1;
    } else {
      value_ += separator;
      column_ += separator.size();
    }
    value_ += piece;
    column_ += piece.size();
  }
  // b= (already put, empty) gets its base64 value, folded in lines of 72.
  void put_base64(std::string_view b64) {
    std::size_t room = column_ < 76 ? 76 - column_ : 0;
    std::size_t pos = 0;
    while (pos < b64.size()) {
      std::size_t n = std::min(room, b64.size() - pos);
      value_ += b64.substr(pos, n);
      pos += n;
      if (pos < b64.size()) value_ += "\r\n\t";
      room = 72;
    }
  }
  const std::string& value() const { return value_; }

 private:
  std::string value_;
  std::size_t column_;
};

// Folding white space only where a header may fold (CRLF then SP or HT): anything else in a
// caller's text would end the field and start another.
bool safe_field_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      if (i + 2 >= s.size() || s[i + 1] != '\n' || (s[i + 2] != ' ' && s[i + 2] != '\t'))
        return false;
      ++i;
    } else if (c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t')) {
      return false;
    }
  }
  return true;
}

// Authentication-Results text with each result on its own line: a line break after every
// ';' outside quoted strings and comments, replacing the white space that was there.
std::string fold_results(std::string_view text) {
  std::string out;
  bool quoted = false;
  int comment = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    out += c;
    if (c == '\\' && (quoted || comment > 0) && i + 1 < text.size()) {
      out += text[++i];
    } else if (c == '"' && comment == 0) {
      quoted = !quoted;
    } else if (c == '(' && !quoted) {
      ++comment;
    } else if (c == ')' && !quoted && comment > 0) {
      --comment;
    } else if (c == ';' && !quoted && comment == 0) {
      while (i + 1 < text.size() && dkim::fws(text[i + 1])) ++i;
      if (i + 1 < text.size()) out += "\r\n ";
    }
  }
  return out;
}

}  // namespace

const char* to_string(ArcResult r) {
  switch (r) {
    case ArcResult::none:
      return "none";
    case ArcResult::pass:
      return "pass";
    case ArcResult::fail:
      return "fail";
  }
  return "none";
}

std::optional<ArcOutcome> verify_arc(std::string_view message, const ArcVerifyOptions& options,
                                     Lookups& lookups) {
  ArcOutcome out;
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  if (!hs) return out;
  Chain chain = collect(*hs);
  out.instances = chain.highest;
  if (!chain.any) return out;  // RFC 8617 5.2 step 1: no chain, none
  auto fail = [&](std::string why) {
    out.result = ArcResult::fail;
    out.reason = std::move(why);
    return out;
  };
  if (!chain.error.empty()) return fail(chain.error);
  const int n = static_cast<int>(chain.sets.size());
  auto at = [](int i) { return "i=" + std::to_string(i) + " "; };

  std::vector<Seal> seals(n);
  for (int i = n; i >= 1; --i) {
    if (auto why = parse_seal(*chain.sets[i - 1].seal, seals[i - 1]))
      return fail(at(i) + "ARC-Seal: " + *why);
  }
  // Step 2: the newest sealer already found the chain broken.
  if (seals[n - 1].cv == "fail") return fail(at(n) + "cv=fail");
  // Step 3: cv=none only for the first set, pass for every other.
  for (int i = 1; i <= n; ++i)
    if (seals[i - 1].cv != (i == 1 ? "none" : "pass")) return fail(at(i) + "cv=" + seals[i - 1].cv);

  std::vector<std::optional<dkim::Signature>> ams(n);
  for (int i = n; i >= 1; --i) {
    dkim::Signature sig;
    DkimOutcome ignored;
    auto why = dkim::parse_signature(*chain.sets[i - 1].ams, options.now,
                                     dkim::SignatureKind::arc_message, sig, ignored);
    if (!why) {
      ams[i - 1] = std::move(sig);
    } else if (i == n) {
      return fail(at(n) + "ARC-Message-Signature: " + *why);
    }
    if (!options.oldest_pass) break;  // only the newest AMS counts (step 4)
  }
  for (int i = 1; i <= n; ++i) {
    const RawSet& raw = chain.sets[i - 1];
    ArcSet set;
    set.instance = i;
    set.sealer = seals[i - 1].domain;
    set.selector = seals[i - 1].selector;
    set.ams_domain = ams_domain(*raw.ams);
    set.aar_payload = mime::unfold(split_aar(raw.aar->raw_value)->second);
    out.sets.push_back(std::move(set));
  }

  // Every key first, so that a missing one costs no hashing in this round.
  bool missing = false;
  auto get = [&](std::string_view selector, std::string_view domain) {
    const Result<dns::Answer>* a = lookups.get(key_name(selector, domain), dns::Type::txt);
    if (!a) missing = true;
    return a;
  };
  std::vector<const Result<dns::Answer>*> ams_keys(n, nullptr), seal_keys(n, nullptr);
  for (int i = n; i >= 1; --i) {
    if (ams[i - 1]) ams_keys[i - 1] = get(ams[i - 1]->selector, ams[i - 1]->domain);
    seal_keys[i - 1] = get(seals[i - 1].selector, seals[i - 1].domain);
  }
  if (missing) return std::nullopt;

  std::string_view body = message.substr(std::min(hs->body_offset, message.size()));
  BodyHashes bodies(body);
  // Step 4: the newest AMS.
  bool temporary = false;
  if (auto why =
          check_ams(*hs, *ams[n - 1], *ams_keys[n - 1], options.min_rsa_bits, bodies, temporary)) {
    out.temporary = temporary;
    return fail(at(n) + "ARC-Message-Signature: " + *why);
  }
  // Step 6: every seal, newest first.
  std::vector<std::string> canonical;
  for (const RawSet& s : chain.sets)
    for (const mime::Header* h : {s.aar, s.ams, s.seal})
      canonical.push_back(relaxed_header(h->name, h->raw_value));
  for (int i = n; i >= 1; --i) {
    const Seal& seal = seals[i - 1];
    auto lookup = dkim::key_from_answer(*seal_keys[i - 1], seal.algorithm, options.min_rsa_bits);
    if (!lookup.key) {
      out.temporary = lookup.result == DkimResult::temperror;
      return fail(at(i) + "ARC-Seal: " + lookup.reason + " for " +
                  key_name(seal.selector, seal.domain));
    }
    std::string data = seal_data(canonical, i, chain.sets[i - 1].seal->raw_value);
    if (!dkim::verify_data(seal.algorithm, lookup.key->public_key, data, seal.signature))
      return fail(at(i) + "ARC-Seal: signature does not verify");
  }
  out.result = ArcResult::pass;  // step 7

  // Step 5, optional: how far back the message is still as it was sealed.
  if (options.oldest_pass) {
    out.oldest_pass = 0;
    for (int i = n - 1; i >= 1; --i) {
      bool ignored = false;
      if (!ams[i - 1] ||
          check_ams(*hs, *ams[i - 1], *ams_keys[i - 1], options.min_rsa_bits, bodies, ignored)) {
        out.oldest_pass = i + 1;
        break;
      }
    }
  }
  return out;
}

Result<std::string> arc_seal(std::string_view message, const DkimKey& key,
                             std::string_view authserv_id, std::string_view authentication_results,
                             ArcResult chain, int64_t timestamp) {
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  if (!hs) return Error(Errc::bad_message, hs.error().describe());
  Chain existing = collect(*hs);

  // RFC 8617 5.1: the instance and cv= follow from the chain as received.
  int instance = existing.highest + 1;
  switch (chain) {
    case ArcResult::none:
      if (existing.any) return Error(Errc::bad_message, "cv=none for a message with ARC fields");
      break;
    case ArcResult::pass: {
      if (!existing.any || !existing.error.empty())
        return Error(Errc::bad_message, "cv=pass without a complete chain");
      Seal newest;
      if (parse_seal(*existing.sets.back().seal, newest) || newest.cv == "fail")
        return Error(Errc::bad_message, "cv=pass for a chain whose newest seal says fail");
      break;
    }
    case ArcResult::fail:
      if (existing.highest == 0) return Error(Errc::bad_message, "cv=fail without a chain");
      break;
  }
  if (instance > max_instances)
    return Error(Errc::bad_message, "the chain has " + std::to_string(max_instances) + " sets");

  // ARC-Authentication-Results (RFC 8617 4.1.1): our results, parsable as RFC 8601.
  std::string_view results = dkim::trim(authentication_results);
  while (!results.empty() && results.front() == ';') results = dkim::trim(results.substr(1));
  if (results.empty()) results = "none";
  std::string payload = std::string(authserv_id) + "; " + std::string(results);
  bool plain_id =
      !authserv_id.empty() && std::none_of(authserv_id.begin(), authserv_id.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f ||
               std::string_view("();\"\\").find(c) != std::string_view::npos;
      });
  if (!plain_id) return Error(Errc::syntax, "authserv-id must be a plain token");
  if (!safe_field_text(results)) return Error(Errc::syntax, "line break in the results");
  if (auto parsed = parse_authentication_results(payload); !parsed)
    return Error(Errc::syntax, "results: " + parsed.error().detail());
  std::string i_tag = "i=" + std::to_string(instance) + ";";
  std::string aar_value = " " + i_tag + " " + fold_results(payload);

  // ARC-Message-Signature (RFC 8617 4.1.2): DKIM's header list and DKIM-Signature (so that
  // a later hop can tell which signatures were there), never the ARC fields themselves.
  std::string_view body = message.substr(std::min(hs->body_offset, message.size()));
  std::string body_hash = crypto::base64(crypto::sha256(relaxed_body(body)));
  DkimOptions defaults;
  std::vector<std::string> names = defaults.headers;
  names.emplace_back("dkim-signature");
  std::vector<std::string> h;
  std::string signed_headers;
  for (const auto& name : names) {
    std::vector<const mime::Header*> found;
    for (const auto& hd : hs->headers)
      if (base::iequals(hd.name, name)) found.push_back(&hd);
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      h.push_back(name);
      signed_headers += relaxed_header((*it)->name, (*it)->raw_value);
    }
    // Once more than they occur, as dkim_sign does, so that none can be added after sealing.
    if (std::find(defaults.oversign.begin(), defaults.oversign.end(), name) !=
        defaults.oversign.end())
      h.push_back(name);
  }
  if (signed_headers.empty() || !hs->find("From"))
    return Error(Errc::bad_message, "no From header to sign");

  Folded ams(ams_name);
  ams.put(i_tag);
  ams.put(std::string("a=") + algorithm_name(key.algorithm) + ";");
  ams.put("c=relaxed/relaxed;");
  ams.put("d=" + key.domain + ";");
  ams.put("s=" + key.selector + ";");
  if (timestamp > 0) ams.put("t=" + std::to_string(timestamp) + ";");
  for (std::size_t k = 0; k < h.size(); ++k)
    ams.put((k == 0 ? "h=" : ":") + h[k] + (k + 1 == h.size() ? ";" : ""), k == 0 ? " " : "");
  ams.put("bh=" + body_hash + ";");
  ams.put("b=");
  std::string ams_self = relaxed_header(ams_name, ams.value());
  ams_self.resize(ams_self.size() - 2);
  auto ams_signature = dkim::sign_data(key, signed_headers + ams_self);
  if (!ams_signature) return ams_signature.error();
  ams.put_base64(crypto::base64(*ams_signature));

  // ARC-Seal (RFC 8617 4.1.3, 5.1.1): over every set for a passing chain; for a failed one
  // only over the new set, as if it were the only one (5.1.2).
  Folded seal(seal_name);
  seal.put(i_tag);
  seal.put(std::string("a=") + algorithm_name(key.algorithm) + ";");
  if (timestamp > 0) seal.put("t=" + std::to_string(timestamp) + ";");
  seal.put(std::string("cv=") + to_string(chain) + ";");
  seal.put("d=" + key.domain + ";");
  seal.put("s=" + key.selector + ";");
  seal.put("b=");
  std::vector<std::string> canonical;
  if (chain == ArcResult::pass)
    for (const RawSet& s : existing.sets)
      for (const mime::Header* f : {s.aar, s.ams, s.seal})
        canonical.push_back(relaxed_header(f->name, f->raw_value));
  canonical.push_back(relaxed_header(aar_name, aar_value));
  canonical.push_back(relaxed_header(ams_name, ams.value()));
  canonical.emplace_back();  // the seal itself, added by seal_data
  auto seal_signature =
      dkim::sign_data(key, seal_data(canonical, canonical.size() / 3, seal.value()));
  if (!seal_signature) return seal_signature.error();
  seal.put_base64(crypto::base64(*seal_signature));

  return std::string(seal_name) + ":" + seal.value() + "\r\n" + std::string(ams_name) + ":" +
         ams.value() + "\r\n" + std::string(aar_name) + ":" + aar_value + "\r\n";
}

}  // namespace postern::mailauth
