// IMAP mailbox commands (RFC 9051 6.3): LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE),
// LSUB, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS, SELECT/EXAMINE (with CONDSTORE and QRESYNC)
// and APPEND (encrypted exactly like delivered mail).
#include <future>
#include <set>

#include "base/log.hpp"
#include "server/imap_internal.hpp"

namespace postern::server {

using imap::Command;
using imap::Token;
using Outcome = ImapSession::Outcome;

Result<std::vector<std::string>> parse_flag_list(const std::vector<Token>& tokens) {
  static const std::vector<std::string> system = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                                  "\\Draft"};
  std::vector<std::string> out;
  for (const auto& t : tokens) {
    if (t.kind != Token::Kind::atom) return Error(imap::Errc::syntax, "flag expected");
    std::string f = t.text;
    if (f.starts_with("\\")) {
      auto it = std::find_if(system.begin(), system.end(), [&](const std::string& s) {
        return base::ascii_lower(s) == base::ascii_lower(f);
      });
      if (it == system.end()) return Error(imap::Errc::syntax, "unknown system flag");
      f = *it;
    } else {
      if (f.size() > 100) return Error(imap::Errc::too_long, "keyword");
      for (char ch : f)
        if (ch == '[' || ch == ']' || ch == '*' || ch == '%' || ch == '\\')
          return Error(imap::Errc::syntax, "invalid keyword");
    }
    if (std::none_of(out.begin(), out.end(), [&](const std::string& x) {
          return base::ascii_lower(x) == base::ascii_lower(f);
        }))
      out.push_back(f);
    if (out.size() > 100) return Error(imap::Errc::too_many, "flags");
  }
  return out;
}

namespace {

struct StatusCounts {
  uint64_t messages = 0, unseen = 0, deleted = 0, size = 0;
};

StatusCounts count(const std::vector<store::MessageMeta>& index) {
  StatusCounts c;
  for (const auto& m : index) {
    ++c.messages;
    if (!imap::has_flag(m.flags, "\\Seen")) ++c.unseen;
    if (imap::has_flag(m.flags, "\\Deleted")) ++c.deleted;
    c.size += m.size;
  }
  return c;
}

bool has_child(const std::vector<store::Mailbox>& all, const std::string& name) {
  std::string prefix = name + imap::delimiter;
  return std::any_of(all.begin(), all.end(),
                     [&](const store::Mailbox& b) { return b.name.starts_with(prefix); });
}

// A LIST pattern compared with names as they travel (modified UTF-7 keeps ASCII as is).
std::string canonical_pattern(std::string_view ref, std::string_view pattern) {
  std::string p = std::string(ref) + std::string(pattern);
  if (p.size() >= 5 && base::ascii_lower(p.substr(0, 5)) == "inbox" &&
      (p.size() == 5 || p[5] == '/'))
    p.replace(0, 5, "INBOX");
  return p;
}

}  // namespace

void ImapSession::status_items(const store::Mailbox& box, const std::vector<Token>& items,
                               std::string& line) {
  auto index = ctx_.services.store->message_index(box.id);
  StatusCounts c = index ? count(*index) : StatusCounts{};
  line += "* STATUS " + wire_name(box.name) + " (";
  bool first = true;
  for (const auto& t : items) {
    std::string name = upper(t.text);
    std::string value;
    if (name == "MESSAGES")
      value = std::to_string(c.messages);
    else if (name == "UIDNEXT")
      value = std::to_string(box.uidnext);
    else if (name == "UIDVALIDITY")
      value = std::to_string(box.uidvalidity);
    else if (name == "UNSEEN")
      value = std::to_string(c.unseen);
    else if (name == "RECENT")
      value = "0";
    else if (name == "DELETED")
      value = std::to_string(c.deleted);
    else if (name == "SIZE")
      value = std::to_string(c.size);
    else if (name == "HIGHESTMODSEQ")
      value = std::to_string(box.highestmodseq);
    else
      continue;
    line += (first ? "" : " ") + name + " " + value;
    first = false;
  }
  line += ")\r\n";
}

Outcome ImapSession::list(const Command& c, std::string& out) {
  std::size_t i = 0;
  bool sel_subscribed = false, sel_special = false, ret_subscribed = false;
  const std::vector<Token>* ret_status = nullptr;
  if (i < c.args.size() && c.args[i].kind == Token::Kind::list) {
    for (const auto& o : c.args[i].items) {
      std::string n = upper(o.text);
      if (n == "SUBSCRIBED")
        sel_subscribed = true;
      else if (n == "SPECIAL-USE")
        sel_special = true;
      else if (n != "REMOTE" && n != "RECURSIVEMATCH") {
        done(c, "BAD", "Unknown LIST selection option");
        return {};
      }
    }
    ++i;
  }
  if (i + 2 > c.args.size() || c.args[i].kind == Token::Kind::list) {
    done(c, "BAD", "LIST needs a reference and a pattern");
    return {};
  }
  std::string ref = c.args[i].text;
  std::vector<std::string> patterns;
  if (c.args[i + 1].kind == Token::Kind::list) {
    for (const auto& p : c.args[i + 1].items) patterns.push_back(canonical_pattern(ref, p.text));
  } else {
    patterns.push_back(canonical_pattern(ref, c.args[i + 1].text));
  }
  i += 2;
  if (i < c.args.size()) {
    if (upper(c.args[i].text) != "RETURN" || i + 1 >= c.args.size() ||
        c.args[i + 1].kind != Token::Kind::list) {
      done(c, "BAD", "Invalid LIST return options");
      return {};
    }
    const auto& opts = c.args[i + 1].items;
    for (std::size_t k = 0; k < opts.size(); ++k) {
      std::string n = upper(opts[k].text);
      if (n == "SUBSCRIBED")
        ret_subscribed = true;
      else if (n == "STATUS" && k + 1 < opts.size() && opts[k + 1].kind == Token::Kind::list)
        ret_status = &opts[++k].items;
      else if (n != "CHILDREN" && n != "SPECIAL-USE") {
        done(c, "BAD", "Unknown LIST return option");
        return {};
      }
    }
  }
  if (patterns.size() == 1 && patterns[0].empty()) {
    out += "* LIST (\\Noselect) \"/\" \"\"\r\n";
    done(c, "OK", "LIST completed");
    return {};
  }
  auto boxes = ctx_.services.store->mailboxes(account_->id);
  if (!boxes) {
    store_failure(c, boxes.error());
    return {};
  }
  std::set<std::string> subscribed;
  if (sel_subscribed || ret_subscribed) {
    auto subs = ctx_.services.store->subscriptions(account_->id);
    if (!subs) {
      store_failure(c, subs.error());
      return {};
    }
    subscribed.insert(subs->begin(), subs->end());
  }
  auto matches = [&](const std::string& name) {
    std::string wire = imap::encode_mailbox_name(name, utf8_);
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return imap::list_match(p, wire); });
  };
  std::vector<store::Mailbox> sorted = *boxes;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    if ((a.name == "INBOX") != (b.name == "INBOX")) return a.name == "INBOX";
    return a.name < b.name;
  });
  for (const auto& b : sorted) {
    if (!matches(b.name)) continue;
    bool sub = subscribed.count(b.name) > 0;
    if (sel_subscribed && !sub) continue;
    if (sel_special && b.special_use.empty()) continue;
    std::string attrs = has_child(*boxes, b.name) ? "\\HasChildren" : "\\HasNoChildren";
    if (!b.special_use.empty()) attrs += " " + b.special_use;
    if (sub && (sel_subscribed || ret_subscribed)) attrs += " \\Subscribed";
    out += "* LIST (" + attrs + ") \"/\" " + wire_name(b.name) + "\r\n";
    if (ret_status) status_items(b, *ret_status, out);
  }
  if (sel_subscribed) {
    // Subscriptions to mailboxes that do not exist (any more).
    for (const auto& s : subscribed) {
      bool exists = std::any_of(boxes->begin(), boxes->end(),
                                [&](const store::Mailbox& b) { return b.name == s; });
      if (!exists && matches(s))
        out += "* LIST (\\Subscribed \\NonExistent) \"/\" " + wire_name(s) + "\r\n";
    }
  }
  done(c, "OK", "LIST completed");
  return {};
}

Outcome ImapSession::lsub(const Command& c, std::string& out) {
  if (c.args.size() != 2) {
    done(c, "BAD", "LSUB needs a reference and a pattern");
    return {};
  }
  std::string pattern = canonical_pattern(c.args[0].text, c.args[1].text);
  auto subs = ctx_.services.store->subscriptions(account_->id);
  if (!subs) {
    store_failure(c, subs.error());
    return {};
  }
  for (const auto& s : *subs)
    if (imap::list_match(pattern, imap::encode_mailbox_name(s, utf8_)))
      out += "* LSUB () \"/\" " + wire_name(s) + "\r\n";
  done(c, "OK", "LSUB completed");
  return {};
}

Outcome ImapSession::create(const Command& c, std::string&) {
  if (c.args.size() != 1 || c.args[0].kind == Token::Kind::list) {
    done(c, "BAD", "CREATE needs a mailbox name");
    return {};
  }
  Token t = c.args[0];
  if (t.text.size() > 1 && t.text.back() == imap::delimiter) t.text.pop_back();
  auto name = mailbox_arg(t);
  if (!name) {
    done(c, "NO", "[CANNOT] " + name.error().describe());
    return {};
  }
  auto existing = ctx_.services.store->find_mailbox(account_->id, *name);
  if (!existing) {
    store_failure(c, existing.error());
    return {};
  }
  if (*existing) {
    done(c, "NO", "[ALREADYEXISTS] Mailbox exists");
    return {};
  }
  // Missing parents are created too (RFC 9051 6.3.4).
  std::size_t pos = 0;
  while (true) {
    std::size_t slash = name->find(imap::delimiter, pos);
    std::string part = name->substr(0, slash);
    auto found = ctx_.services.store->find_mailbox(account_->id, part);
    if (!found) {
      store_failure(c, found.error());
      return {};
    }
    if (!*found) {
      auto uidvalidity = static_cast<uint32_t>(ctx_.services.clock->unix_seconds() & 0x7fffffff);
      auto made = ctx_.services.store->create_mailbox(account_->id, {part, ""}, uidvalidity);
      if (!made && made.error().code() != store::Errc::exists) {
        store_failure(c, made.error());
        return {};
      }
    }
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  done(c, "OK", "CREATE completed");
  return {};
}

Outcome ImapSession::delete_(const Command& c, std::string&) {
  if (c.args.size() != 1) {
    done(c, "BAD", "DELETE needs a mailbox name");
    return {};
  }
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    done(c, "NO", "[NONEXISTENT] " + name.error().describe());
    return {};
  }
  if (*name == "INBOX") {
    done(c, "NO", "[CANNOT] INBOX cannot be deleted");
    return {};
  }
  auto boxes = ctx_.services.store->mailboxes(account_->id);
  if (!boxes) {
    store_failure(c, boxes.error());
    return {};
  }
  auto it = std::find_if(boxes->begin(), boxes->end(),
                         [&](const store::Mailbox& b) { return b.name == *name; });
  if (it == boxes->end()) {
    done(c, "NO", "[NONEXISTENT] No such mailbox");
    return {};
  }
  if (has_child(*boxes, *name)) {
    done(c, "NO", "[HASCHILDREN] Delete the mailboxes inside it first");
    return {};
  }
  if (selected_ && selected_->box.id == it->id) selected_.reset();
  auto blobs = ctx_.services.store->delete_mailbox(it->id);
  if (!blobs) {
    store_failure(c, blobs.error());
    return {};
  }
  remove_blobs(*blobs);
  notify_changes();  // sessions idling in it learn it is gone
  done(c, "OK", "DELETE completed");
  return {};
}

Outcome ImapSession::rename(const Command& c, std::string&) {
  if (c.args.size() != 2) {
    done(c, "BAD", "RENAME needs two mailbox names");
    return {};
  }
  auto from = mailbox_arg(c.args[0]);
  auto to = mailbox_arg(c.args[1]);
  if (!from || !to) {
    done(c, "NO", "[CANNOT] Invalid mailbox name");
    return {};
  }
  if (*to == "INBOX" || to->starts_with(*from + "/")) {
    done(c, "NO", "[CANNOT] Cannot rename to that name");
    return {};
  }
  auto src = ctx_.services.store->find_mailbox(account_->id, *from);
  if (!src) {
    store_failure(c, src.error());
    return {};
  }
  if (!*src) {
    done(c, "NO", "[NONEXISTENT] No such mailbox");
    return {};
  }
  auto uidvalidity = static_cast<uint32_t>(ctx_.services.clock->unix_seconds() & 0x7fffffff);
  auto r = ctx_.services.store->rename_mailbox(account_->id, *from, *to, uidvalidity);
  if (!r) {
    if (r.error().code() == store::Errc::exists)
      done(c, "NO", "[ALREADYEXISTS] Target exists");
    else
      store_failure(c, r.error());
    return {};
  }
  notify_changes();
  done(c, "OK", "RENAME completed");
  return {};
}

Outcome ImapSession::subscribe(const Command& c, std::string&) {
  if (c.args.size() != 1) {
    done(c, "BAD", c.name + " needs a mailbox name");
    return {};
  }
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    done(c, "NO", "[CANNOT] " + name.error().describe());
    return {};
  }
  bool on = c.name == "SUBSCRIBE";
  if (on) {
    auto box = ctx_.services.store->find_mailbox(account_->id, *name);
    if (box && !*box) {
      done(c, "NO", "[NONEXISTENT] No such mailbox");
      return {};
    }
  }
  if (auto r = ctx_.services.store->set_subscribed(account_->id, *name, on); !r) {
    store_failure(c, r.error());
    return {};
  }
  done(c, "OK", c.name + " completed");
  return {};
}

Outcome ImapSession::status(const Command& c, std::string& out) {
  if (c.args.size() != 2 || c.args[1].kind != Token::Kind::list) {
    done(c, "BAD", "STATUS needs a mailbox and a list of items");
    return {};
  }
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    done(c, "NO", "[NONEXISTENT] " + name.error().describe());
    return {};
  }
  auto box = ctx_.services.store->find_mailbox(account_->id, *name);
  if (!box) {
    store_failure(c, box.error());
    return {};
  }
  if (!*box) {
    done(c, "NO", "[NONEXISTENT] No such mailbox");
    return {};
  }
  for (const auto& t : c.args[1].items) {
    static const std::set<std::string> known = {"MESSAGES", "UIDNEXT",      "UIDVALIDITY",
                                                "UNSEEN",   "RECENT",       "DELETED",
                                                "SIZE",     "HIGHESTMODSEQ"};
    if (!known.count(upper(t.text))) {
      done(c, "BAD", "Unknown STATUS item");
      return {};
    }
    if (upper(t.text) == "HIGHESTMODSEQ") condstore_ = true;
  }
  status_items(**box, c.args[1].items, out);
  done(c, "OK", "STATUS completed");
  return {};
}

Outcome ImapSession::select(const Command& c, std::string& out) {
  save_rewrapped_keys();
  selected_.reset();
  if (c.args.empty() || c.args.size() > 2) {
    done(c, "BAD", c.name + " needs a mailbox name");
    return {};
  }
  // Optional (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids])).
  std::optional<uint32_t> q_uidvalidity;
  uint64_t q_modseq = 0;
  std::optional<imap::SequenceSet> q_known;
  if (c.args.size() == 2) {
    const Token& p = c.args[1];
    if (p.kind != Token::Kind::list) {
      done(c, "BAD", "Invalid SELECT parameters");
      return {};
    }
    for (std::size_t k = 0; k < p.items.size(); ++k) {
      std::string n = upper(p.items[k].text);
      if (n == "CONDSTORE") {
        condstore_ = true;
      } else if (n == "QRESYNC" && qresync_ && k + 1 < p.items.size() &&
                 p.items[k + 1].kind == Token::Kind::list && p.items[k + 1].items.size() >= 2) {
        const auto& q = p.items[++k].items;
        auto validity = imap::parse_number(q[0].text);
        auto modseq = imap::parse_number(q[1].text);
        if (!validity || !modseq || *validity > imap::star) {
          done(c, "BAD", "Invalid QRESYNC parameters");
          return {};
        }
        q_uidvalidity = static_cast<uint32_t>(*validity);
        q_modseq = *modseq;
        if (q.size() >= 3 && q[2].kind == Token::Kind::atom) {
          auto set = imap::parse_sequence_set(q[2].text, ctx_.settings.limits);
          if (!set) {
            done(c, "BAD", "Invalid QRESYNC known uids");
            return {};
          }
          q_known = std::move(*set);
        }
      } else {
        done(c, "BAD", "Unknown SELECT parameter");
        return {};
      }
    }
  }
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    done(c, "NO", "[NONEXISTENT] " + name.error().describe());
    return {};
  }
  auto box = ctx_.services.store->find_mailbox(account_->id, *name);
  if (!box) {
    store_failure(c, box.error());
    return {};
  }
  if (!*box) {
    done(c, "NO", "[NONEXISTENT] No such mailbox");
    return {};
  }
  auto index = ctx_.services.store->message_index((*box)->id);
  if (!index) {
    store_failure(c, index.error());
    return {};
  }
  auto sel = std::make_unique<Selected>();
  sel->box = **box;
  sel->read_only = c.name == "EXAMINE";
  // Read before the index: anything committed after it has a higher modseq and comes with the
  // next refresh.
  sel->modseq = sel->box.highestmodseq;
  std::set<std::string> keywords;
  uint32_t first_unseen = 0;
  for (const auto& m : *index) {
    sel->uids.push_back(m.uid);
    if (!first_unseen && !imap::has_flag(m.flags, "\\Seen"))
      first_unseen = static_cast<uint32_t>(sel->uids.size());
    std::size_t pos = 0;
    while (pos < m.flags.size()) {
      std::size_t sp = m.flags.find(' ', pos);
      std::string f = m.flags.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
      if (!f.empty() && f[0] != '\\') keywords.insert(f);
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
  }
  std::string kw;
  for (const auto& k : keywords) kw += " " + k;
  out += "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" + kw + ")\r\n";
  out += "* OK [PERMANENTFLAGS (" +
         std::string(
             sel->read_only ? "" : "\\Answered \\Flagged \\Deleted \\Seen \\Draft" + kw + " \\*") +
         ")] Flags permitted\r\n";
  out += "* " + std::to_string(sel->uids.size()) + " EXISTS\r\n";
  // IMAP4rev2 dropped \Recent and the UNSEEN code.
  if (!rev2_) {
    out += "* 0 RECENT\r\n";
    if (first_unseen) out += "* OK [UNSEEN " + std::to_string(first_unseen) + "] First unseen\r\n";
  }
  out += "* OK [UIDVALIDITY " + std::to_string(sel->box.uidvalidity) + "] UIDs valid\r\n";
  out += "* OK [UIDNEXT " + std::to_string(sel->box.uidnext) + "] Predicted next UID\r\n";
  out += "* OK [HIGHESTMODSEQ " + std::to_string(sel->modseq) + "] Highest\r\n";
  if (q_uidvalidity && *q_uidvalidity == sel->box.uidvalidity) {
    auto changes = ctx_.services.store->changes_since(sel->box.id, q_modseq);
    if (!changes) {
      store_failure(c, changes.error());
      return {};
    }
    std::vector<uint32_t> vanished;
    for (uint32_t u : changes->expunged)
      if (!q_known || q_known->contains(u, imap::star - 1)) vanished.push_back(u);
    if (!vanished.empty()) out += "* VANISHED (EARLIER) " + imap::format_set(vanished) + "\r\n";
    for (const auto& m : changes->changed) {
      uint32_t seq = sel->seq_of(m.uid);
      if (!seq || m.modseq > sel->modseq) continue;  // newer ones come with the next refresh
      out += "* " + std::to_string(seq) + " FETCH (UID " + std::to_string(m.uid) + " FLAGS " +
             imap::format_flags(m.flags) + " MODSEQ (" + std::to_string(m.modseq) + "))\r\n";
    }
  }
  selected_ = std::move(sel);
  done(
      c, "OK",
      std::string(selected_->read_only ? "[READ-ONLY] " : "[READ-WRITE] ") + c.name + " completed");
  return {};
}

Outcome ImapSession::append(const Command& c, std::string&) {
  if (c.args.size() < 2 || c.args.size() > 4) {
    done(c, "BAD", "APPEND needs a mailbox and a message");
    return {};
  }
  const Token& message = c.args.back();
  if (message.kind != Token::Kind::string || !message.literal) {
    done(c, "BAD", "APPEND needs the message as a literal");
    return {};
  }
  std::vector<std::string> flags;
  std::optional<int64_t> date;
  for (std::size_t k = 1; k + 1 < c.args.size(); ++k) {
    const Token& t = c.args[k];
    if (t.kind == Token::Kind::list) {
      auto f = parse_flag_list(t.items);
      if (!f) {
        done(c, "BAD", "Invalid flags");
        return {};
      }
      flags = std::move(*f);
    } else {
      date = imap::parse_date_time(t.text);
      if (!date) {
        done(c, "BAD", "Invalid date-time");
        return {};
      }
    }
  }
  if (message.text.empty()) {
    done(c, "NO", "Empty message");
    return {};
  }
  auto name = mailbox_arg(c.args[0]);
  if (!name) {
    done(c, "NO", "[TRYCREATE] " + name.error().describe());
    return {};
  }
  auto box = ctx_.services.store->find_mailbox(account_->id, *name);
  if (!box) {
    store_failure(c, box.error());
    return {};
  }
  if (!*box) {
    done(c, "NO", "[TRYCREATE] No such mailbox");
    return {};
  }
  if (over_quota(message.text.size())) {
    done(c, "NO", "[OVERQUOTA] Quota exceeded");
    return {};
  }
  auto prepared = seal_message_for(ctx_.services, account_->storage_public, message.text);
  if (!prepared) {
    if (prepared.error().code().category() == mime::category())
      done(c, "NO", "[PARSE] Message header section exceeds limits");
    else
      store_failure(c, prepared.error());
    return {};
  }
  prepared->record.mailbox_id = (*box)->id;
  prepared->record.internal_date = date.value_or(ctx_.services.clock->unix_seconds());
  std::string joined;
  for (const auto& f : flags) joined += (joined.empty() ? "" : " ") + f;
  prepared->record.flags = joined;
  // The same group commit as SMTP delivery: durable before the OK.
  std::promise<Result<void>> committed;
  auto result = committed.get_future();
  std::vector<PreparedMessage> batch;
  batch.push_back(std::move(*prepared));
  std::vector<store::Assigned> assigned;
  ctx_.services.committer->submit(
      std::move(batch), [&committed](Result<void> r) { committed.set_value(std::move(r)); },
      &assigned);
  auto r = result.get();
  if (!r) {
    store_failure(c, r.error());
    return {};
  }
  uint32_t uid = assigned.empty() ? 0 : assigned[0].uid;
  notify_changes();
  done(c, "OK",
       "[APPENDUID " + std::to_string((*box)->uidvalidity) + " " + std::to_string(uid) +
           "] APPEND completed");
  return {};
}

}  // namespace postern::server
