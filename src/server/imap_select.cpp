// IMAP selected-state commands (RFC 9051 6.4) except FETCH: CHECK, CLOSE, UNSELECT, EXPUNGE,
// SEARCH (with ESEARCH), STORE (with UNCHANGEDSINCE), COPY and MOVE (with COPYUID), and the
// unsolicited updates that keep two sessions on one mailbox in agreement.
#include "base/log.hpp"
#include "server/imap_internal.hpp"

namespace postern::server {

using imap::Command;
using imap::Token;
using Outcome = ImapSession::Outcome;

Result<std::vector<uint32_t>> ImapSession::resolve_set(const Token& t, bool uid) const {
  if (t.kind != Token::Kind::atom) return Error(imap::Errc::bad_sequence, "sequence set expected");
  auto set = imap::parse_sequence_set(t.text, ctx_.settings.limits);
  if (!set) return set.error();
  const auto& uids = selected_->uids;
  uint32_t count = uids.size();
  uint32_t largest = uid ? selected_->largest_uid() : count;
  if (!uid && count == 0) return Error(imap::Errc::bad_sequence, "mailbox is empty");
  // Ranges are merged before they are expanded: "1:*,1:*,..." must not multiply the work.
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  for (auto r : set->ranges) {
    uint32_t lo = r.lo == imap::star ? largest : r.lo;
    uint32_t hi = r.hi == imap::star ? largest : r.hi;
    if (lo > hi) std::swap(lo, hi);
    if (!uid && hi > count) return Error(imap::Errc::bad_sequence, "no such message");
    ranges.emplace_back(lo, hi);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (auto r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  std::vector<uint32_t> out;
  for (auto [lo, hi] : merged) {
    auto part = uid ? uids.between(lo, hi) : uids.slice(lo, hi);
    out.insert(out.end(), part.begin(), part.end());
  }
  // Sequence ranges map to ascending uids too; merged ranges do not overlap.
  return out;
}

void ImapSession::save_rewrapped_keys() {
  if (rewrapped_.empty() || !selected_) return;
  if (auto r = ctx_.services.store->set_wrapped_keys(selected_->box.id, rewrapped_); !r)
    base::log::warn("imap.rewrap.failed", {{"error", r.error().describe()}});
  rewrapped_.clear();
}

void ImapSession::forget_uids(const std::vector<uint32_t>& gone, std::string& out) {
  auto& sel = *selected_;
  std::vector<uint32_t> known;
  for (uint32_t u : gone)
    if (sel.seq_of(u)) known.push_back(u);
  if (known.empty()) return;
  std::sort(known.begin(), known.end());
  if (qresync_) {
    out += "* VANISHED " + imap::format_set(known) + "\r\n";
  } else {
    // In ascending order each EXPUNGE shifts the later sequence numbers down by one.
    for (std::size_t i = 0; i < known.size(); ++i)
      out += "* " + std::to_string(sel.seq_of(known[i]) - i) + " EXPUNGE\r\n";
  }
  sel.uids.erase_all(known);
}

std::string ImapSession::fetch_flags_line(const store::MessageMeta& m) const {
  std::string line = "* " + std::to_string(selected_->seq_of(m.uid)) + " FETCH (UID " +
                     std::to_string(m.uid) + " FLAGS " + imap::format_flags(m.flags);
  if (condstore_) line += " MODSEQ (" + std::to_string(m.modseq) + ")";
  return line + ")\r\n";
}

Result<std::vector<uint32_t>> ImapSession::deleted_among(const std::vector<uint32_t>& uids) {
  auto meta = ctx_.services.store->message_meta(selected_->box.id, uids);
  if (!meta) return meta.error();
  std::vector<uint32_t> out;
  for (const auto& m : *meta)
    if (imap::has_flag(m.flags, "\\Deleted")) out.push_back(m.uid);
  return out;
}

Result<void> ImapSession::refresh(std::string& out, bool allow_expunge) {
  auto& sel = *selected_;
  auto ch = ctx_.services.store->changes_since(sel.box.id, sel.modseq);
  if (!ch) return ch.error();
  if (ch->mailbox.highestmodseq <= sel.modseq) return {};
  bool known_expunged = std::any_of(ch->expunged.begin(), ch->expunged.end(),
                                    [&](uint32_t u) { return sel.seq_of(u) != 0; });
  // Without EXPUNGE the sequence numbers would disagree: report everything later.
  if (known_expunged && !allow_expunge) return {};
  forget_uids(ch->expunged, out);
  std::size_t before = sel.uids.size();
  std::sort(sel.own_changes.begin(), sel.own_changes.end());
  std::vector<const store::MessageMeta*> reflagged;
  for (const auto& m : ch->changed) {
    if (!sel.seq_of(m.uid)) {
      if (m.uid > sel.largest_uid()) sel.uids.push_back(m.uid);  // else gone before we saw it
      continue;
    }
    auto own =
        std::find(sel.own_changes.begin(), sel.own_changes.end(), std::make_pair(m.uid, m.modseq));
    if (own == sel.own_changes.end()) reflagged.push_back(&m);
  }
  if (sel.uids.size() != before) out += "* " + std::to_string(sel.uids.size()) + " EXISTS\r\n";
  for (const auto* m : reflagged) out += fetch_flags_line(*m);
  sel.box = ch->mailbox;
  sel.modseq = ch->mailbox.highestmodseq;
  sel.own_changes.clear();
  return {};
}

Outcome ImapSession::check(const Command& c, std::string&) {
  done(c, "OK", "CHECK completed");
  return {};
}

Outcome ImapSession::close(const Command& c, std::string&) {
  // CLOSE removes \Deleted messages silently; UNSELECT does not (RFC 3691).
  if (c.name == "CLOSE" && !selected_->read_only) {
    auto deleted = deleted_among(selected_->uids.all());
    if (!deleted) {
      store_failure(c, deleted.error());
      return {};
    }
    if (!deleted->empty()) {
      auto removed = ctx_.services.store->expunge(selected_->box.id, *deleted);
      if (!removed) {
        store_failure(c, removed.error());
        return {};
      }
      remove_blobs(removed->unreferenced_blobs);
      notify_changes();
    }
  }
  selected_.reset();
  done(c, "OK", c.name + " completed");
  return {};
}

Outcome ImapSession::expunge(const Command& c, std::string& out) {
  if (selected_->read_only) {
    done(c, "NO", "[READ-ONLY] Mailbox is read-only");
    return {};
  }
  std::vector<uint32_t> candidates = selected_->uids.all();
  if (c.name == "UID EXPUNGE") {
    if (c.args.size() != 1) {
      done(c, "BAD", "UID EXPUNGE needs a set");
      return {};
    }
    auto set = resolve_set(c.args[0], true);
    if (!set) {
      done(c, "BAD", set.error().describe());
      return {};
    }
    candidates = std::move(*set);
  }
  auto deleted = deleted_among(candidates);
  if (!deleted) {
    store_failure(c, deleted.error());
    return {};
  }
  if (!deleted->empty()) {
    auto removed = ctx_.services.store->expunge(selected_->box.id, *deleted);
    if (!removed) {
      store_failure(c, removed.error());
      return {};
    }
    forget_uids(removed->uids, out);
    remove_blobs(removed->unreferenced_blobs);
    notify_changes();
  }
  done(c, "OK", c.name + " completed");
  return {};
}

Result<ImapSession::Opened> ImapSession::open_message(const store::MessageRecord& rec,
                                                      bool content) {
  Opened o;
  Result<crypto::Key32> key = Error(keys::Errc::corrupt_keyring);
  if (!rec.wrapped_key.empty()) {
    key = keys::unwrap_content_key(*keys_, rec.wrapped_key);
  } else {
    key = keys::open_content_key(*keys_, rec.sealed_key);
    if (key) rewrapped_.emplace_back(rec.uid, keys::wrap_content_key(*keys_, *key));
  }
  if (!key) return key.error();
  auto summary = keys::open_summary(*key, rec.summary);
  if (!summary) return summary.error();
  auto parsed = mime::Summary::parse(*summary);
  if (!parsed) return parsed.error();
  o.summary = std::move(*parsed);
  if (content) {
    auto blob = ctx_.services.blobs->get(rec.blob_id);
    if (!blob) return blob.error();
    auto plain = keys::open_blob(*key, *blob);
    if (!plain) return plain.error();
    o.content = std::move(*plain);
    o.has_content = true;
  }
  return o;
}

Outcome ImapSession::search(const Command& c, std::string& out) {
  auto prog = imap::parse_search(c.args, ctx_.settings.limits);
  if (!prog) {
    if (prog.error().describe().find("BADCHARSET") != std::string::npos)
      done(c, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
    else
      done(c, "BAD", prog.error().describe());
    return {};
  }
  if (prog->uses_modseq) condstore_ = true;
  bool uid = c.name == "UID SEARCH";
  const auto& sel = *selected_;
  std::vector<uint32_t> hits;  // uids
  uint64_t max_modseq = 0;
  imap::SearchSubject subject;
  subject.largest_seq = sel.uids.size();
  subject.largest_uid = sel.largest_uid();
  bool decrypt = prog->needs_body || prog->needs_headers;
  constexpr std::size_t chunk = 256;
  for (uint32_t i = 0; i < sel.uids.size(); i += chunk) {
    uint32_t end = std::min<uint32_t>(sel.uids.size(), i + chunk);
    std::vector<uint32_t> part = sel.uids.slice(i + 1, end);
    // The records carry the metadata too; without decryption the metadata is enough.
    std::vector<store::MessageRecord> records;
    std::vector<store::MessageMeta> metas;
    if (decrypt) {
      auto r = ctx_.services.store->messages_by_uid(sel.box.id, part);
      if (!r) {
        store_failure(c, r.error());
        return {};
      }
      records = std::move(*r);
    } else {
      auto r = ctx_.services.store->message_meta(sel.box.id, part);
      if (!r) {
        store_failure(c, r.error());
        return {};
      }
      metas = std::move(*r);
    }
    std::size_t count = decrypt ? records.size() : metas.size();
    for (std::size_t k = 0; k < count; ++k) {
      const store::MessageMeta m =
          decrypt ? store::MessageMeta{records[k].uid, records[k].modseq, records[k].flags,
                                       records[k].internal_date, records[k].size}
                  : metas[k];
      subject.seq = sel.seq_of(m.uid);
      subject.uid = m.uid;
      subject.flags = m.flags;
      subject.internal_date = m.internal_date;
      subject.size = m.size;
      subject.modseq = m.modseq;
      Opened opened;
      if (decrypt) {
        auto o = open_message(records[k], prog->needs_body);
        if (!o) {
          base::log::error("imap.decrypt.failed", {{"uid", static_cast<uint64_t>(m.uid)},
                                                   {"error", o.error().describe()}});
          continue;
        }
        opened = std::move(*o);
        subject.header_section = opened.summary.header_section;
        subject.message = opened.content;
      }
      if (imap::matches(prog->root, subject)) {
        hits.push_back(m.uid);
        max_modseq = std::max(max_modseq, m.modseq);
      }
    }
  }
  save_rewrapped_keys();
  auto number = [&](uint32_t u) { return uid ? u : sel.seq_of(u); };
  if (rev2_ && !prog->esearch) {
    prog->esearch = true;  // RFC 9051 6.4.4: results are ESEARCH, ALL by default
    prog->returns = {"ALL"};
  }
  if (prog->esearch) {
    std::string line = "* ESEARCH (TAG " + imap::quote(c.tag) + ")" + (uid ? " UID" : "");
    std::vector<uint32_t> nums;
    for (uint32_t u : hits) nums.push_back(number(u));
    for (const auto& r : prog->returns) {
      if (r == "MIN" && !nums.empty()) line += " MIN " + std::to_string(nums.front());
      if (r == "MAX" && !nums.empty()) line += " MAX " + std::to_string(nums.back());
      if (r == "COUNT") line += " COUNT " + std::to_string(nums.size());
      if (r == "ALL" && !nums.empty()) line += " ALL " + imap::format_set(nums);
    }
    if (prog->uses_modseq && !hits.empty()) line += " MODSEQ " + std::to_string(max_modseq);
    out += line + "\r\n";
  } else {
    out += "* SEARCH";
    for (uint32_t u : hits) out += " " + std::to_string(number(u));
    if (prog->uses_modseq && !hits.empty()) out += " (MODSEQ " + std::to_string(max_modseq) + ")";
    out += "\r\n";
  }
  done(c, "OK", c.name + " completed");
  return {};
}

Outcome ImapSession::store(const Command& c, std::string& out) {
  bool uid = c.name == "UID STORE";
  if (selected_->read_only) {
    done(c, "NO", "[READ-ONLY] Mailbox is read-only");
    return {};
  }
  std::size_t i = 1;
  std::optional<uint64_t> unchanged_since;
  if (c.args.size() > i && c.args[i].kind == Token::Kind::list) {
    const auto& m = c.args[i].items;
    if (m.size() != 2 || upper(m[0].text) != "UNCHANGEDSINCE") {
      done(c, "BAD", "Unknown STORE modifier");
      return {};
    }
    unchanged_since = imap::parse_number(m[1].text);
    if (!unchanged_since) {
      done(c, "BAD", "Invalid UNCHANGEDSINCE");
      return {};
    }
    condstore_ = true;
    ++i;
  }
  if (c.args.size() < i + 2) {
    done(c, "BAD", "STORE needs a set, an item and flags");
    return {};
  }
  std::string item = upper(c.args[i].text);
  bool silent = item.ends_with(".SILENT");
  if (silent) item.resize(item.size() - 7);
  store::FlagOp op;
  if (item == "FLAGS")
    op = store::FlagOp::replace;
  else if (item == "+FLAGS")
    op = store::FlagOp::add;
  else if (item == "-FLAGS")
    op = store::FlagOp::remove;
  else {
    done(c, "BAD", "Unknown STORE item");
    return {};
  }
  std::vector<Token> flag_tokens;
  if (c.args.size() == i + 2 && c.args[i + 1].kind == Token::Kind::list)
    flag_tokens = c.args[i + 1].items;
  else
    flag_tokens.assign(c.args.begin() + static_cast<std::ptrdiff_t>(i + 1), c.args.end());
  auto flags = parse_flag_list(flag_tokens);
  if (!flags) {
    done(c, "BAD", "Invalid flags");
    return {};
  }
  auto set = resolve_set(c.args[0], uid);
  if (!set) {
    done(c, "BAD", set.error().describe());
    return {};
  }
  auto r = ctx_.services.store->store_flags(selected_->box.id, *set, op, *flags, unchanged_since);
  if (!r) {
    store_failure(c, r.error());
    return {};
  }
  for (const auto& ch : r->changed) selected_->own_changes.emplace_back(ch.uid, ch.modseq);
  if (!silent || unchanged_since) {
    // Changed messages with their new flags; unchanged ones (already so) as they are.
    std::vector<uint32_t> unchanged;
    // Sorted, so membership is a binary search even for "1:*" on a large mailbox.
    std::vector<uint32_t> changed_uids;
    for (const auto& ch : r->changed) changed_uids.push_back(ch.uid);
    std::sort(changed_uids.begin(), changed_uids.end());
    std::vector<uint32_t> failed_uids = r->failed;
    std::sort(failed_uids.begin(), failed_uids.end());
    for (uint32_t u : *set) {
      bool failed = std::binary_search(failed_uids.begin(), failed_uids.end(), u);
      bool changed = std::binary_search(changed_uids.begin(), changed_uids.end(), u);
      if (!failed && !changed && !silent) unchanged.push_back(u);
    }
    std::vector<store::MessageMeta> report;
    if (!unchanged.empty()) {
      auto meta = ctx_.services.store->message_meta(selected_->box.id, unchanged);
      if (meta) report = std::move(*meta);
    }
    for (const auto& ch : r->changed) report.push_back({ch.uid, ch.modseq, ch.flags, 0, 0});
    std::sort(report.begin(), report.end(),
              [](const auto& a, const auto& b) { return a.uid < b.uid; });
    for (const auto& m : report)
      if (selected_->seq_of(m.uid)) out += fetch_flags_line(m);
  }
  if (!r->changed.empty()) notify_changes();
  if (!r->failed.empty()) {
    std::vector<uint32_t> failed;
    for (uint32_t u : r->failed) failed.push_back(uid ? u : selected_->seq_of(u));
    done(c, "OK", "[MODIFIED " + imap::format_set(failed) + "] Some messages were modified");
  } else {
    done(c, "OK", c.name + " completed");
  }
  return {};
}

Outcome ImapSession::copy(const Command& c, std::string& out) {
  bool uid = c.name.starts_with("UID ");
  bool move = c.name.ends_with("MOVE");
  if (c.args.size() != 2) {
    done(c, "BAD", c.name + " needs a set and a mailbox");
    return {};
  }
  if (move && selected_->read_only) {
    done(c, "NO", "[READ-ONLY] Mailbox is read-only");
    return {};
  }
  auto set = resolve_set(c.args[0], uid);
  if (!set) {
    done(c, "BAD", set.error().describe());
    return {};
  }
  auto name = mailbox_arg(c.args[1]);
  if (!name) {
    done(c, "NO", "[TRYCREATE] " + name.error().describe());
    return {};
  }
  auto dest = ctx_.services.store->find_mailbox(account_->id, *name);
  if (!dest) {
    store_failure(c, dest.error());
    return {};
  }
  if (!*dest) {
    done(c, "NO", "[TRYCREATE] No such mailbox");
    return {};
  }
  if (!move && account_->quota_bytes > 0) {
    auto meta = ctx_.services.store->message_meta(selected_->box.id, *set);
    uint64_t adding = 0;
    if (meta)
      for (const auto& m : *meta) adding += m.size;
    if (over_quota(adding)) {
      done(c, "NO", "[OVERQUOTA] Quota exceeded");
      return {};
    }
  }
  auto r = ctx_.services.store->copy_messages(selected_->box.id, *set, (*dest)->id, move);
  if (!r) {
    store_failure(c, r.error());
    return {};
  }
  std::string code;
  if (!r->uids.empty()) {
    std::string src, dst;
    for (auto [a, b] : r->uids) {
      src += (src.empty() ? "" : ",") + std::to_string(a);
      dst += (dst.empty() ? "" : ",") + std::to_string(b);
    }
    code = "[COPYUID " + std::to_string(r->uidvalidity) + " " + src + " " + dst + "] ";
  }
  if (move) {
    if (!code.empty()) out += "* OK " + code + "Moved\r\n";
    forget_uids(r->removed.uids, out);
    remove_blobs(r->removed.unreferenced_blobs);
    done(c, "OK", c.name + " completed");
  } else {
    done(c, "OK", code + c.name + " completed");
  }
  notify_changes();
  return {};
}

}  // namespace postern::server
