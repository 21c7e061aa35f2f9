// DKIM verification (RFC 6376 6, RFC 8301 key sizes and algorithms, RFC 8463 Ed25519). The
// pieces ARC reuses are in namespace dkim (dkim_internal.hpp).
#include <algorithm>
#include <charconv>

#include "base/text.hpp"
#include "mailauth/dkim_internal.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::mailauth {
namespace dkim {

bool fws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && fws(s.front())) s.remove_prefix(1);
  while (!s.empty() && fws(s.back())) s.remove_suffix(1);
  return s;
}

std::string without_fws(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (!fws(c)) out += c;
  return out;
}

std::optional<uint64_t> number(std::string_view s, std::size_t max_digits) {
  uint64_t v = 0;
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string domain_key(std::string_view d) {
  std::string out = base::ascii_lower(d);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

namespace {

bool same_or_subdomain(std::string_view sub, std::string_view parent) {
  if (sub == parent) return true;
  return sub.size() > parent.size() && sub.ends_with(parent) &&
         sub[sub.size() - parent.size() - 1] == '.';
}

}  // namespace

std::optional<std::string> parse_signature(const mime::Header& field, int64_t now,
                                           SignatureKind kind, Signature& sig, DkimOutcome& out) {
  auto tags = parse_tag_list(field.raw_value);
  if (!tags) return "tag list: " + tags.error().detail();
  std::map<std::string, std::string> t(tags->begin(), tags->end());
  auto get = [&](const char* name) -> const std::string* {
    auto it = t.find(name);
    return it == t.end() ? nullptr : &it->second;
  };
  sig.field = &field;
  if (auto d = get("d")) out.domain = domain_key(*d);
  if (auto s = get("s")) out.selector = base::ascii_lower(*s);
  if (auto a = get("a")) out.algorithm = base::ascii_lower(*a);
  if (auto b = get("b")) out.signature_prefix = without_fws(*b).substr(0, 12);
  bool arc = kind == SignatureKind::arc_message;
  // RFC 8617 4.1.2: an AMS has no v= but needs its instance.
  for (const char* required : {arc ? "i" : "v", "a", "b", "bh", "d", "h", "s"})
    if (!get(required)) return std::string("missing ") + required + "=";
  if (!arc && *get("v") != "1") return "unknown version v=" + *get("v");
  if (out.algorithm == "ed25519-sha256")
    sig.algorithm = DkimAlgorithm::ed25519_sha256;
  else if (out.algorithm == "rsa-sha256")
    sig.algorithm = DkimAlgorithm::rsa_sha256;
  else
    return "unsupported algorithm " + out.algorithm;  // rsa-sha1 too (RFC 8301 3.1)
  if (out.domain.empty() || out.selector.empty()) return "empty d= or s=";
  if (!mime::valid_domain(out.domain, false)) return "bad d=";
  sig.domain = out.domain;
  sig.selector = out.selector;
  if (auto c = get("c")) {
    std::string canon = base::ascii_lower(*c);
    auto slash = canon.find('/');
    std::string head = canon.substr(0, slash);
    std::string body = slash == std::string::npos ? "simple" : canon.substr(slash + 1);
    if ((head != "simple" && head != "relaxed") || (body != "simple" && body != "relaxed"))
      return "unknown canonicalisation " + canon;
    sig.relaxed_header = head == "relaxed";
    sig.relaxed_body = body == "relaxed";
  }
  if (auto q = get("q"); q && base::ascii_lower(*q) != "dns/txt") return "unknown query method";
  for (std::string_view rest = *get("h"); !rest.empty();) {
    auto colon = rest.find(':');
    std::string name = base::ascii_lower(trim(rest.substr(0, colon)));
    if (name.empty()) return "empty name in h=";
    sig.headers.push_back(std::move(name));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (std::find(sig.headers.begin(), sig.headers.end(), "from") == sig.headers.end())
    return "h= does not cover From";
  if (sig.headers.size() > 200) return "h= too long";
  if (arc && std::find(sig.headers.begin(), sig.headers.end(), "arc-seal") != sig.headers.end())
    return "h= covers ARC-Seal";  // RFC 8617 4.1.2
  sig.identity = "@" + sig.domain;
  if (auto i = get("i"); i && !arc) {
    auto at = i->rfind('@');
    if (at == std::string::npos) return "i= without @";
    if (!same_or_subdomain(domain_key(i->substr(at + 1)), sig.domain)) return "i= is not within d=";
    sig.identity = *i;
  }
  out.identity = sig.identity;
  if (auto l = get("l")) {
    sig.length = number(*l, 76);
    if (!sig.length) return "bad l=";
  }
  std::optional<uint64_t> ts, xs;
  if (auto v = get("t"); v && !(ts = number(*v, 12))) return "bad t=";
  if (auto v = get("x"); v && !(xs = number(*v, 12))) return "bad x=";
  if (ts && xs && *xs < *ts) return "x= before t=";
  if (xs && static_cast<int64_t>(*xs) < now) return "signature expired";
  auto b = mime::decode_base64(without_fws(*get("b")));
  auto bh = mime::decode_base64(without_fws(*get("bh")));
  if (!b || b->empty()) return "bad b=";
  if (!bh || bh->size() != 32) return "bad bh=";
  sig.signature = std::move(*b);
  sig.body_hash = std::move(*bh);
  return std::nullopt;
}

namespace {

// DER length octets.
std::string der_length(std::size_t n) {
  if (n < 128) return std::string(1, static_cast<char>(n));
  std::string bytes;
  for (; n > 0; n >>= 8) bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
  return static_cast<char>(0x80 | bytes.size()) + bytes;
}

// Some publish a bare PKCS#1 RSAPublicKey in p=; wrap it as SubjectPublicKeyInfo.
std::string spki_from_pkcs1(std::string_view rsa_public_key) {
  static const std::string algorithm("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00",
                                     15);
  std::string bits = "\x03" + der_length(rsa_public_key.size() + 1) + '\0';
  bits += rsa_public_key;
  std::string inner = algorithm + bits;
  return "\x30" + der_length(inner.size()) + inner;
}

}  // namespace

Result<Key> parse_key(std::string_view record, DkimAlgorithm algorithm, unsigned min_rsa_bits) {
  auto bad = [](std::string why) { return Error(Errc::syntax, std::move(why)); };
  auto tags = parse_tag_list(record);
  if (!tags) return bad("key record: " + tags.error().detail());
  std::map<std::string, std::string> t(tags->begin(), tags->end());
  if (!tags->empty() && (*tags)[0].first != "v" && t.count("v")) return bad("v= not first");
  if (t.count("v") && t["v"] != "DKIM1") return bad("unknown key version");
  if (t.count("h")) {
    bool sha256 = false;
    for (std::string_view rest = t["h"]; !rest.empty();) {
      auto colon = rest.find(':');
      if (base::ascii_lower(trim(rest.substr(0, colon))) == "sha256") sha256 = true;
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    if (!sha256) return bad("key does not allow sha256");
  }
  std::string k = t.count("k") ? base::ascii_lower(t["k"]) : "rsa";
  bool ed = algorithm == DkimAlgorithm::ed25519_sha256;
  if ((ed && k != "ed25519") || (!ed && k != "rsa")) return bad("key type " + k + " != a=");
  if (t.count("s")) {
    bool email = false;
    for (std::string_view rest = t["s"]; !rest.empty();) {
      auto colon = rest.find(':');
      auto s = trim(rest.substr(0, colon));
      if (s == "*" || base::iequals(s, "email")) email = true;
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    if (!email) return bad("key not for email");
  }
  Key key;
  std::string flags = t.count("t") ? t["t"] : "";
  for (std::string_view rest = flags; !rest.empty();) {
    auto colon = rest.find(':');
    auto flag = base::ascii_lower(trim(rest.substr(0, colon)));
    if (flag == "y") key.testing = true;
    if (flag == "s") key.strict_identity = true;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (!t.count("p")) return bad("key without p=");
  std::string p64 = without_fws(t["p"]);
  if (p64.empty()) return bad("key revoked");
  auto p = mime::decode_base64(p64);
  if (!p) return bad("bad p=");
  if (ed) {
    if (p->size() != 32) return bad("Ed25519 key is not 32 bytes");
    key.public_key = std::move(*p);
  } else {
    key.public_key = std::move(*p);
    if (crypto::rsa_public_bits(key.public_key) == 0)
      key.public_key = spki_from_pkcs1(key.public_key);
    unsigned bits = crypto::rsa_public_bits(key.public_key);
    if (bits == 0) return bad("not an RSA key");
    if (bits < min_rsa_bits) return bad("RSA key of " + std::to_string(bits) + " bits");
  }
  return key;
}

KeyLookup key_from_answer(const Result<dns::Answer>& answer, DkimAlgorithm algorithm,
                          unsigned min_rsa_bits) {
  KeyLookup out;
  if (!answer || (answer->rcode != 0 && answer->rcode != 3)) {
    out.result = DkimResult::temperror;
    out.reason = "key lookup failed";
    return out;
  }
  auto records = txt_records(*answer);
  if (answer->rcode == 3 || records.empty()) {
    out.result = DkimResult::permerror;
    out.reason = "no key";
    return out;
  }
  auto key = parse_key(records.front(), algorithm, min_rsa_bits);
  if (!key) {
    out.result = DkimResult::permerror;
    out.reason = key.error().detail();
    return out;
  }
  out.key = std::move(*key);
  return out;
}

std::string without_b(std::string_view raw) {
  std::string self;
  std::size_t pos = 0;
  while (pos <= raw.size()) {
    std::size_t semi = raw.find(';', pos);
    std::string_view tag = raw.substr(pos, semi == std::string_view::npos ? raw.npos : semi - pos);
    auto eq = tag.find('=');
    if (eq != std::string_view::npos && trim(tag.substr(0, eq)) == "b")
      self += tag.substr(0, eq + 1);
    else
      self += tag;
    if (semi == std::string_view::npos) break;
    self += ';';
    pos = semi + 1;
  }
  return self;
}

std::string header_data(const mime::HeaderSection& hs, const Signature& sig) {
  std::map<std::string, std::size_t> used;  // name -> occurrences consumed from the bottom
  std::string out;
  auto canon = [&](std::string_view name, std::string_view value) {
    return sig.relaxed_header ? relaxed_header(name, value)
                              : std::string(name) + ":" + std::string(value) + "\r\n";
  };
  for (const auto& name : sig.headers) {
    std::size_t skip = used[name]++;
    for (auto it = hs.headers.rbegin(); it != hs.headers.rend(); ++it) {
      if (!base::iequals(it->name, name)) continue;
      if (skip-- == 0) {
        out += canon(it->name, it->raw_value);
        break;
      }
    }
  }
  // b= emptied in place, everything else as it is.
  std::string field = canon(sig.field->name, without_b(sig.field->raw_value));
  field.resize(field.size() - 2);
  return out + field;
}

bool verify_data(DkimAlgorithm algorithm, std::string_view public_key, std::string_view data,
                 std::string_view signature) {
  return algorithm == DkimAlgorithm::ed25519_sha256
             ? crypto::ed25519_verify(public_key, crypto::sha256(data), signature)
             : crypto::rsa_sha256_verify(public_key, data, signature);
}

Result<std::string> sign_data(const DkimKey& key, std::string_view data) {
  // RFC 8463 3: Ed25519 over the SHA-256 hash of the data.
  if (key.algorithm == DkimAlgorithm::ed25519_sha256)
    return crypto::ed25519_sign(key.secret, crypto::sha256(data));
  auto sig = crypto::rsa_sha256_sign(key.secret, data);
  if (!sig) return Error(Errc::bad_key, sig.error().describe());
  return std::move(*sig);
}

}  // namespace dkim

const char* to_string(DkimResult r) {
  switch (r) {
    case DkimResult::none:
      return "none";
    case DkimResult::pass:
      return "pass";
    case DkimResult::fail:
      return "fail";
    case DkimResult::neutral:
      return "neutral";
    case DkimResult::policy:
      return "policy";
    case DkimResult::temperror:
      return "temperror";
    case DkimResult::permerror:
      return "permerror";
  }
  return "none";
}

Result<std::vector<std::pair<std::string, std::string>>> parse_tag_list(std::string_view text) {
  using dkim::fws;
  using dkim::trim;
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t semi = text.find(';', pos);
    bool last = semi == std::string_view::npos;
    std::string_view spec = trim(text.substr(pos, last ? text.npos : semi - pos));
    pos = last ? text.size() + 1 : semi + 1;
    if (spec.empty() && last) break;  // a final ';' (or nothing at all)
    auto eq = spec.find('=');
    if (eq == std::string_view::npos) return Error(Errc::syntax, "tag without '='");
    std::string name(trim(spec.substr(0, eq)));
    if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0])))
      return Error(Errc::syntax, "bad tag name");
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        return Error(Errc::syntax, "bad tag name");
    std::string_view value = trim(spec.substr(eq + 1));
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x21 && !fws(c)) return Error(Errc::syntax, "control character in tag value");
      if (u == 0x7f) return Error(Errc::syntax, "control character in tag value");
    }
    for (const auto& [n, v] : out)
      if (n == name) return Error(Errc::syntax, "tag " + name + " repeated");
    if (out.size() >= 64) return Error(Errc::syntax, "too many tags");
    out.emplace_back(std::move(name), std::string(value));
  }
  return out;
}

std::optional<std::vector<DkimOutcome>> verify_dkim(std::string_view message,
                                                    const DkimVerifyOptions& options,
                                                    Lookups& lookups) {
  using dkim::Signature;
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  std::vector<DkimOutcome> out;
  if (!hs) return out;

  std::vector<Signature> sigs;
  std::vector<std::size_t> index;  // sigs[k] belongs to out[index[k]]
  for (const auto& h : hs->headers) {
    if (!base::iequals(h.name, "DKIM-Signature")) continue;
    DkimOutcome o;
    if (out.size() >= options.max_signatures) {
      o.result = DkimResult::policy;
      o.reason = "too many signatures";
      out.push_back(std::move(o));
      continue;
    }
    Signature sig;
    if (auto why = dkim::parse_signature(h, options.now, dkim::SignatureKind::dkim, sig, o)) {
      o.result = DkimResult::permerror;
      o.reason = std::move(*why);
    } else {
      index.push_back(out.size());
      sigs.push_back(std::move(sig));
    }
    out.push_back(std::move(o));
  }

  // Every key first, so that a missing one costs no hashing in this round.
  std::vector<const Result<dns::Answer>*> answers;
  bool missing = false;
  for (const auto& sig : sigs) {
    answers.push_back(lookups.get(sig.selector + "._domainkey." + sig.domain, dns::Type::txt));
    if (!answers.back()) missing = true;
  }
  if (missing) return std::nullopt;

  std::string_view body = message.substr(std::min(hs->body_offset, message.size()));
  struct BodyHash {
    std::size_t canonical_size = 0;
    std::string hash;  // empty when l= is longer than the body
  };
  std::map<std::pair<bool, std::optional<uint64_t>>, BodyHash> body_hashes;
  for (std::size_t k = 0; k < sigs.size(); ++k) {
    const Signature& sig = sigs[k];
    DkimOutcome& o = out[index[k]];
    auto lookup = dkim::key_from_answer(*answers[k], sig.algorithm, options.min_rsa_bits);
    if (!lookup.key) {
      o.result = lookup.result;
      o.reason = std::move(lookup.reason);
      continue;
    }
    const dkim::Key* key = &*lookup.key;
    o.testing = key->testing;
    if (key->strict_identity &&
        dkim::domain_key(sig.identity.substr(sig.identity.rfind('@') + 1)) != sig.domain) {
      o.result = DkimResult::permerror;
      o.reason = "key requires i= domain to equal d=";
      continue;
    }
    auto cached = body_hashes.find({sig.relaxed_body, sig.length});
    if (cached == body_hashes.end()) {
      std::string canonical = sig.relaxed_body ? relaxed_body(body) : simple_body(body);
      BodyHash bh{canonical.size(), {}};
      if (!sig.length || *sig.length <= canonical.size())
        bh.hash = crypto::sha256(
            std::string_view(canonical).substr(0, sig.length.value_or(canonical.size())));
      cached = body_hashes.emplace(std::pair{sig.relaxed_body, sig.length}, bh).first;
    }
    const BodyHash& bh = cached->second;
    if (sig.length && *sig.length < bh.canonical_size && !options.accept_partial_body) {
      o.result = DkimResult::policy;
      o.reason = "l= leaves " + std::to_string(bh.canonical_size - *sig.length) + " bytes unsigned";
      continue;
    }
    if (bh.hash.empty()) {
      o.result = DkimResult::fail;
      o.reason = "l= longer than the body";
      continue;
    }
    if (bh.hash != sig.body_hash) {
      o.result = DkimResult::fail;
      o.reason = "body hash mismatch";
      continue;
    }
    bool good = dkim::verify_data(sig.algorithm, key->public_key, dkim::header_data(*hs, sig),
                                  sig.signature);
    o.result = good ? DkimResult::pass : DkimResult::fail;
    if (!good) o.reason = "signature does not verify";
  }
  return out;
}

}  // namespace postern::mailauth
