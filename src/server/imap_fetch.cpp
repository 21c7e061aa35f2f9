// FETCH (RFC 9051 6.4.5, BINARY RFC 3516, CONDSTORE RFC 7162 3.1.4, QRESYNC's VANISHED).
// ENVELOPE, BODYSTRUCTURE and header sections come from the encrypted summary; only body
// sections decrypt the message itself. A large FETCH is answered in batches of about 1 MiB,
// so a session never holds a whole mailbox's content in memory.
#include "base/log.hpp"
#include "server/imap_internal.hpp"

namespace postern::server {

using imap::Command;
using imap::Token;
using Outcome = ImapSession::Outcome;

namespace {

constexpr std::size_t batch_bytes = std::size_t{1} << 20;
constexpr std::size_t batch_messages = 256;

// "BODY.PEEK[HEADER]<0.100>" -> name "BODY.PEEK", section "HEADER", partial.
Result<FetchItem> parse_item(const std::string& text, const imap::Limits& limits) {
  FetchItem it;
  std::string u = upper(text);
  using K = FetchItem::Kind;
  auto simple = [&](K k, std::string label) {
    it.kind = k;
    it.label = std::move(label);
    return it;
  };
  if (u == "UID") return simple(K::uid, "UID");
  if (u == "FLAGS") return simple(K::flags, "FLAGS");
  if (u == "INTERNALDATE") return simple(K::internaldate, "INTERNALDATE");
  if (u == "RFC822.SIZE") return simple(K::size, "RFC822.SIZE");
  if (u == "ENVELOPE") return simple(K::envelope, "ENVELOPE");
  if (u == "BODYSTRUCTURE") return simple(K::bodystructure, "BODYSTRUCTURE");
  if (u == "BODY") return simple(K::body, "BODY");
  if (u == "MODSEQ") return simple(K::modseq, "MODSEQ");
  if (u == "RFC822" || u == "RFC822.HEADER" || u == "RFC822.TEXT") {
    it.kind = K::section;
    it.label = u;
    it.peek = u == "RFC822.HEADER";
    if (u != "RFC822")
      it.section.what =
          u == "RFC822.HEADER" ? imap::Section::What::header : imap::Section::What::text;
    return it;
  }
  std::size_t open = u.find('[');
  std::size_t close = u.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open)
    return Error(imap::Errc::syntax, "unknown FETCH item");
  std::string name = u.substr(0, open);
  if (name == "BODY" || name == "BODY.PEEK")
    it.kind = K::section;
  else if (name == "BINARY" || name == "BINARY.PEEK")
    it.kind = K::binary;
  else if (name == "BINARY.SIZE")
    it.kind = K::binary_size;
  else
    return Error(imap::Errc::syntax, "unknown FETCH item");
  it.peek = name.ends_with(".PEEK") || it.kind == K::binary_size;
  auto section = imap::parse_section(text.substr(open + 1, close - open - 1), limits);
  if (!section) return section.error();
  it.section = std::move(*section);
  if (it.kind != K::section && it.section.what != imap::Section::What::all)
    return Error(imap::Errc::syntax, "BINARY takes part numbers only");
  std::string rest = u.substr(close + 1);
  std::string base = (it.kind == K::section   ? "BODY"
                      : name == "BINARY.SIZE" ? "BINARY.SIZE"
                                              : "BINARY");
  it.label = base + "[" + it.section.label() + "]";
  if (!rest.empty()) {
    if (rest.size() < 5 || rest.front() != '<' || rest.back() != '>' || it.kind == K::binary_size)
      return Error(imap::Errc::syntax, "bad partial");
    std::string inner = rest.substr(1, rest.size() - 2);
    std::size_t dot = inner.find('.');
    if (dot == std::string::npos) return Error(imap::Errc::syntax, "bad partial");
    auto start = imap::parse_number(std::string_view(inner).substr(0, dot));
    auto length = imap::parse_number(std::string_view(inner).substr(dot + 1));
    if (!start || !length || *length == 0) return Error(imap::Errc::syntax, "bad partial");
    it.partial_start = *start;
    it.partial_length = *length;
    it.has_partial = true;
    it.label += "<" + std::to_string(it.partial_start) + ">";
  }
  return it;
}

bool needs_content(const FetchItem& it) {
  using K = FetchItem::Kind;
  if (it.kind == K::binary || it.kind == K::binary_size) return true;
  if (it.kind != K::section) return false;
  // The top-level header section is in the summary.
  bool header_only =
      it.section.path.empty() && (it.section.what == imap::Section::What::header ||
                                  it.section.what == imap::Section::What::header_fields ||
                                  it.section.what == imap::Section::What::header_fields_not);
  return !header_only;
}

std::string literal_of(const std::string& bytes, bool binary) {
  if (binary && bytes.find('\0') != std::string::npos)
    return "~{" + std::to_string(bytes.size()) + "}\r\n" + bytes;
  return imap::literal(bytes);
}

}  // namespace

Outcome ImapSession::fetch(const Command& c, std::string& out) {
  bool uid = c.name == "UID FETCH";
  if (c.args.size() < 2 || c.args.size() > 3) {
    done(c, "BAD", "FETCH needs a set and items");
    return {};
  }
  auto f = std::make_unique<Fetch>();
  f->tag = c.tag;
  f->uid = uid;
  std::vector<std::string> names;
  const Token& items = c.args[1];
  if (items.kind == Token::Kind::list) {
    for (const auto& t : items.items) names.push_back(t.text);
  } else {
    std::string m = upper(items.text);
    if (m == "ALL")
      names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"};
    else if (m == "FAST")
      names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE"};
    else if (m == "FULL")
      names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"};
    else
      names = {items.text};
  }
  if (names.empty()) {
    done(c, "BAD", "No FETCH items");
    return {};
  }
  bool vanished = false;
  if (c.args.size() == 3) {
    const Token& m = c.args[2];
    if (m.kind != Token::Kind::list) {
      done(c, "BAD", "Invalid FETCH modifiers");
      return {};
    }
    for (std::size_t k = 0; k < m.items.size(); ++k) {
      std::string n = upper(m.items[k].text);
      if (n == "CHANGEDSINCE" && k + 1 < m.items.size()) {
        f->changed_since = imap::parse_number(m.items[++k].text);
        if (!f->changed_since) {
          done(c, "BAD", "Invalid CHANGEDSINCE");
          return {};
        }
        condstore_ = true;
      } else if (n == "VANISHED" && uid && qresync_) {
        vanished = true;
      } else {
        done(c, "BAD", "Unknown FETCH modifier");
        return {};
      }
    }
    if (vanished && !f->changed_since) {
      done(c, "BAD", "VANISHED needs CHANGEDSINCE");
      return {};
    }
  }
  for (const auto& n : names) {
    auto it = parse_item(n, ctx_.settings.limits);
    if (!it) {
      done(c, "BAD", it.error().describe());
      return {};
    }
    if (it->kind == FetchItem::Kind::modseq) condstore_ = true;
    if (it->kind == FetchItem::Kind::envelope || it->kind == FetchItem::Kind::bodystructure ||
        it->kind == FetchItem::Kind::body || it->kind == FetchItem::Kind::section)
      f->needs_summary = true;
    if (needs_content(*it)) f->needs_content = true;
    if (!it->peek && (it->kind == FetchItem::Kind::section || it->kind == FetchItem::Kind::binary))
      f->sets_seen = true;
    f->items.push_back(std::move(*it));
  }
  if (selected_->read_only) f->sets_seen = false;
  auto set = resolve_set(c.args[0], uid);
  if (!set) {
    done(c, "BAD", set.error().describe());
    return {};
  }
  if (vanished) {
    auto ch = ctx_.services.store->changes_since(selected_->box.id, *f->changed_since);
    if (!ch) {
      store_failure(c, ch.error());
      return {};
    }
    auto parsed = imap::parse_sequence_set(c.args[0].text, ctx_.settings.limits);
    std::vector<uint32_t> gone;
    for (uint32_t u : ch->expunged)
      if (parsed && parsed->contains(u, imap::star - 1)) gone.push_back(u);
    if (!gone.empty()) out += "* VANISHED (EARLIER) " + imap::format_set(gone) + "\r\n";
  }
  f->uids = std::move(*set);
  fetch_ = std::move(f);
  return fetch_batch(out);
}

Outcome ImapSession::resume(std::string& out) {
  if (!fetch_) return {};
  return fetch_batch(out);
}

Outcome ImapSession::fetch_batch(std::string& out) {
  Fetch& f = *fetch_;
  auto& sel = *selected_;
  std::size_t start_size = out.size();
  bool full = false;
  while (f.next < f.uids.size() && !full) {
    std::size_t base = f.next;
    std::size_t end = std::min(f.uids.size(), f.next + batch_messages);
    std::span<const uint32_t> part(f.uids.data() + f.next, end - f.next);
    // Metadata (and, when needed, the encrypted records) of this batch, as the store has it
    // now; messages expunged meanwhile are skipped.
    bool need_records = f.needs_summary || f.needs_content;
    std::vector<store::MessageRecord> records;
    std::vector<store::MessageMeta> metas;
    if (need_records) {
      auto r = ctx_.services.store->messages_by_uid(sel.box.id, part);
      if (r) {
        records = std::move(*r);
        for (const auto& rec : records)
          metas.push_back({rec.uid, rec.modseq, rec.flags, rec.internal_date, rec.size});
      } else {
        fetch_.reset();
        base::log::error("imap.fetch.failed", {{"error", r.error().describe()}});
        out += f.tag + " NO [UNAVAILABLE] Temporary storage failure, try again later\r\n";
        return {};
      }
    } else {
      auto r = ctx_.services.store->message_meta(sel.box.id, part);
      if (!r) {
        fetch_.reset();
        base::log::error("imap.fetch.failed", {{"error", r.error().describe()}});
        out += f.tag + " NO [UNAVAILABLE] Temporary storage failure, try again later\r\n";
        return {};
      }
      metas = std::move(*r);
    }
    // \Seen first, so the FLAGS in the response are the new ones.
    if (f.sets_seen) {
      std::vector<uint32_t> unseen;
      for (const auto& m : metas)
        if (!imap::has_flag(m.flags, "\\Seen") && (!f.changed_since || m.modseq > *f.changed_since))
          unseen.push_back(m.uid);
      if (!unseen.empty()) {
        std::vector<std::string> seen = {"\\Seen"};
        auto r = ctx_.services.store->store_flags(sel.box.id, unseen, store::FlagOp::add, seen,
                                                  std::nullopt);
        if (r) {
          for (const auto& ch : r->changed) {
            auto it =
                std::lower_bound(metas.begin(), metas.end(), ch.uid,
                                 [](const store::MessageMeta& m, uint32_t u) { return m.uid < u; });
            if (it == metas.end() || it->uid != ch.uid) continue;
            it->flags = ch.flags;
            it->modseq = ch.modseq;
            f.now_seen.push_back(ch.uid);
            sel.own_changes.emplace_back(ch.uid, ch.modseq);
          }
          notify_changes();
        }
      }
    }
    f.next = end;
    for (std::size_t k = 0; k < metas.size(); ++k) {
      const store::MessageMeta& st = metas[k];
      uint32_t u = st.uid;
      // The size budget is checked per message: a batch of large messages must not pile up.
      if (out.size() - start_size >= batch_bytes) {
        f.next = static_cast<std::size_t>(
            std::lower_bound(f.uids.begin() + static_cast<std::ptrdiff_t>(base),
                             f.uids.begin() + static_cast<std::ptrdiff_t>(end), u) -
            f.uids.begin());
        full = true;
        break;
      }
      bool seen_now = std::binary_search(f.now_seen.begin(), f.now_seen.end(), u);
      if (f.changed_since && st.modseq <= *f.changed_since && !seen_now) continue;
      Opened opened;
      if (need_records) {
        auto o = open_message(records[k], f.needs_content);
        if (!o) {
          base::log::error("imap.decrypt.failed",
                           {{"uid", static_cast<uint64_t>(u)}, {"error", o.error().describe()}});
          continue;
        }
        opened = std::move(*o);
      }
      std::string line = "* " + std::to_string(sel.seq_of(u)) + " FETCH (";
      bool first = true;
      auto add = [&](const std::string& s) {
        line += (first ? "" : " ") + s;
        first = false;
      };
      bool have_uid = false, have_flags = false, have_modseq = false;
      for (const auto& it : f.items) {
        using K = FetchItem::Kind;
        switch (it.kind) {
          case K::uid:
            have_uid = true;
            add("UID " + std::to_string(u));
            break;
          case K::flags:
            have_flags = true;
            add("FLAGS " + imap::format_flags(st.flags));
            break;
          case K::internaldate:
            add("INTERNALDATE " + imap::imap_date_time(st.internal_date));
            break;
          case K::size:
            add("RFC822.SIZE " + std::to_string(st.size));
            break;
          case K::modseq:
            have_modseq = true;
            add("MODSEQ (" + std::to_string(st.modseq) + ")");
            break;
          case K::envelope:
            add("ENVELOPE " + (opened.summary.envelope_cache.empty()
                                   ? imap::envelope(opened.summary.header_section)
                                   : opened.summary.envelope_cache));
            break;
          case K::bodystructure:
          case K::body: {
            bool ext = it.kind == K::bodystructure;
            if (ext && !opened.summary.structure_cache.empty()) {
              add(it.label + " " + opened.summary.structure_cache);
              break;
            }
            auto bs = imap::body_structure(opened.summary, opened.content, ext);
            if (!bs && !opened.has_content) {
              auto full = open_message(records[k], true);
              if (full) bs = imap::body_structure(full->summary, full->content, ext);
            }
            add(it.label + " " + bs.value_or("(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)"));
            break;
          }
          case K::section: {
            std::optional<std::string> bytes;
            if (opened.has_content)
              bytes = imap::section_bytes(opened.content, it.section);
            else
              bytes = imap::section_bytes(opened.summary.header_section, it.section);
            std::string value;
            if (!bytes)
              value = "NIL";
            else {
              if (it.has_partial) {
                std::size_t s = std::min<uint64_t>(it.partial_start, bytes->size());
                *bytes = bytes->substr(s, it.partial_length);
              }
              value = imap::literal(*bytes);
            }
            add(it.label + " " + value);
            break;
          }
          case K::binary:
          case K::binary_size: {
            bool unknown = false;
            auto bytes = imap::binary_bytes(opened.content, it.section, &unknown);
            if (unknown) {
              save_rewrapped_keys();
              fetch_.reset();
              out += f.tag + " NO [UNKNOWN-CTE] Cannot decode this part\r\n";
              return {};
            }
            if (it.kind == K::binary_size) {
              add(it.label + " " + std::to_string(bytes ? bytes->size() : 0));
            } else if (!bytes) {
              add(it.label + " NIL");
            } else {
              if (it.has_partial) {
                std::size_t s = std::min<uint64_t>(it.partial_start, bytes->size());
                *bytes = bytes->substr(s, it.partial_length);
              }
              add(it.label + " " + literal_of(*bytes, true));
            }
            break;
          }
        }
      }
      if (f.uid && !have_uid) add("UID " + std::to_string(u));
      if (!have_flags && seen_now) add("FLAGS " + imap::format_flags(st.flags));
      if ((condstore_ || f.changed_since) && !have_modseq)
        add("MODSEQ (" + std::to_string(st.modseq) + ")");
      out += line + ")\r\n";
    }
    save_rewrapped_keys();
  }
  if (f.next < f.uids.size()) return {.more = true};
  out += f.tag + " OK " + (f.uid ? "UID FETCH" : "FETCH") + " completed\r\n";
  fetch_.reset();
  return {};
}

}  // namespace postern::server
