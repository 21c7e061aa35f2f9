#!/usr/bin/env python3
"""postern's IMAP server driven by real IMAP clients, on loopback.

    python3 tests/interop/test_imap_clients.py --postern build/debug/src/cli/postern [unittest args]

Mail always arrives the way it does in production, by SMTP to the MX port; the clients then read
and change it over IMAP:

(a) Python's imaplib over implicit TLS (--imaps) and STARTTLS (--imap, LOGINDISABLED until
    TLS): LIST and the special-use mailboxes, SELECT, FETCH (FLAGS, ENVELOPE, BODYSTRUCTURE,
    BODY[], BINARY[]), STORE, COPY/MOVE with COPYUID, APPEND with APPENDUID, SEARCH, ESEARCH,
    EXPUNGE and UID EXPUNGE, CONDSTORE, CREATE/RENAME/DELETE with modified UTF-7 names, two
    sessions on one mailbox, IDLE.
(b) imapflow (Node.js, tests/interop/imapflow/check.mjs): list, fetch, download, search, flag,
    move, IDLE, STARTTLS. `npm ci` runs there first if node_modules is missing.
(c) mbsync (isync): 1000 messages synced to a local Maildir, a no-op second sync, then local
    flag changes, a deletion and a new message synced back.
(d) mutt, in a tmux terminal: the index and a message on screen, the message piped to a file.

Every test gets its own quickstarted data directory and server, and ends by stopping the server:
it must exit 0 with no sanitizer report. The clients come from scripts/install-deps (isync,
mutt, tmux, nodejs/npm); a missing one fails its test.
"""

import base64
import email.parser
import email.utils
import imaplib
import json
import os
import re
import selectors
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import postern_harness as h  # noqa: E402

BINARY, _ = h.parse_args()

IMAPFLOW_DIR = os.path.join(HERE, "imapflow")
SENDER = "alice@client.test"
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
               "Archive": "\\Archive"}
# What the server is meant to advertise once logged in (see the IMAP issue); AUTH=PLAIN is
# checked before login, where it matters (servers may drop AUTH= once authenticated).
PLANNED_CAPABILITIES = ("IMAP4REV1", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
                        "UIDPLUS", "MOVE", "LITERAL+", "CONDSTORE", "QRESYNC", "ESEARCH",
                        "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "UNSELECT", "BINARY",
                        "CHILDREN")

# imaplib (3.11) has no MOVE, and refuses commands it does not know; teach it MOVE so that both
# MOVE and UID MOVE go through its normal command path (tagging, literals, response parsing).
imaplib.Commands.setdefault("MOVE", ("SELECTED",))


# --------------------------------------------------------------------------------------------
# IMAP response parsing. imaplib hands back responses as raw lines and literal tuples; the tests
# need the structure (ENVELOPE, BODYSTRUCTURE, FETCH items), so this is a small, strict reader
# of IMAP data: atoms, quoted strings, literals, NIL and parenthesised lists.


class Atom(str):
    """An IMAP atom (FLAGS entries, keywords, NIL is None); strings are bytes."""


class Parser:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def at_end(self):
        self.skip_space()
        return self.i >= len(self.d)

    def skip_space(self):
        while self.i < len(self.d) and self.d[self.i:self.i + 1] in (b" ", b"\r", b"\n"):
            self.i += 1

    def value(self):
        self.skip_space()
        if self.i >= len(self.d):
            raise ValueError("IMAP data ends early: %r" % self.d[-80:])
        c = self.d[self.i:self.i + 1]
        if c == b"(":
            self.i += 1
            items = []
            while True:
                self.skip_space()
                if self.d[self.i:self.i + 1] == b")":
                    self.i += 1
                    return items
                items.append(self.value())
        if c == b'"':
            out = bytearray()
            self.i += 1
            while True:
                ch = self.d[self.i:self.i + 1]
                if ch == b"":
                    raise ValueError("unterminated quoted string")
                if ch == b"\\":
                    out += self.d[self.i + 1:self.i + 2]
                    self.i += 2
                elif ch == b'"':
                    self.i += 1
                    return bytes(out)
                else:
                    out += ch
                    self.i += 1
        m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(self.d, self.i)
        if m:  # literal (~{n} is a BINARY literal)
            n = int(m.group(1))
            start = m.end()
            if start + n > len(self.d):
                raise ValueError("literal runs past the data")
            self.i = start + n
            return self.d[start:start + n]
        # Atom; a section like BODY[HEADER.FIELDS (SUBJECT)]<0> is one atom, spaces included.
        start = self.i
        depth = 0
        while self.i < len(self.d):
            ch = self.d[self.i:self.i + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in (b" ", b"(", b")", b"\r", b"\n"):
                break
            self.i += 1
        tok = self.d[start:self.i].decode("utf-8", "replace")
        if not tok:
            raise ValueError("unexpected %r at %d in %r" % (c, self.i, self.d[:200]))
        return None if tok.upper() == "NIL" else Atom(tok)


def joined(data):
    """imaplib's list of lines and (line, literal) tuples as one byte string of IMAP data."""
    out = b""
    for part in data:
        if part is None:
            continue
        if isinstance(part, tuple):
            out += b" " + part[0] + b"\r\n" + part[1]
        else:
            out += b" " + part
    return out


def parse_fetch(data):
    """imaplib FETCH data -> {sequence number: {ITEM (upper case): value}}."""
    p = Parser(joined(data))
    out = {}
    while not p.at_end():
        seq = int(p.value())
        items = p.value()
        d = out.setdefault(seq, {})
        for k, v in zip(items[0::2], items[1::2]):
            d[k.upper()] = v
    return out


def parse_list(data):
    """imaplib LIST data -> {mailbox name: (attributes upper-cased, delimiter)}."""
    p = Parser(joined(data))
    out = {}
    while not p.at_end():
        attrs, delim, name = p.value(), p.value(), p.value()
        name = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        out[name] = ({a.upper() for a in attrs}, delim.decode() if delim else None)
    return out


def text(v):
    return None if v is None else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))


def params(v):
    """A body parameter list ("CHARSET" "utf-8" ...) as {lower name: value}."""
    if v is None:
        return {}
    return {text(k).lower(): text(x) for k, x in zip(v[0::2], v[1::2])}


def response_code(data, name):
    """The arguments of response code [NAME ...] in a tagged reply's text, as a list of str."""
    m = re.search(rb"\[" + name.encode() + rb" ([^\]]*)\]", b" ".join(d for d in data if d))
    return m.group(1).decode().split() if m else None


def q(name):
    """A quoted IMAP string: imaplib sends arguments as they are, so a mailbox name with a space
    would otherwise become two arguments."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def flag_set(flags):
    """FLAGS as a set of str, without \\Recent: IMAP4rev2 dropped it and a server may or may not
    report it, so no test depends on it."""
    return {str(f) for f in flags} - {"\\Recent"}


def uid_set(s):
    """'4:6,9' -> [4, 5, 6, 9]."""
    out = []
    for part in s.split(","):
        a, _, b = part.partition(":")
        out += list(range(int(a), int(b or a) + 1))
    return out


# --------------------------------------------------------------------------------------------
# Modified UTF-7 (RFC 3501 5.1.3), which mailbox names use on the wire without UTF8=ACCEPT.


def mutf7_encode(s):
    out, pending = [], []

    def flush():
        if pending:
            b64 = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + b64.replace(b"/", b",").decode() + "-")
            pending.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    def dec(m):
        b64 = m.group(1)
        if not b64:
            return "&"
        b64 = b64.replace(",", "/")
        return base64.b64decode(b64 + "=" * (-len(b64) % 4)).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, s)


# --------------------------------------------------------------------------------------------
# Messages


def message_id(tag):
    return "<%s.%s@client.test>" % (tag, os.urandom(6).hex())


DATE = "Tue, 04 Mar 2025 10:15:00 +0000"


def sample_messages(account):
    """Three messages as sent, with what the server must report for them.

    Built by hand (not with the email package) so that every byte, and so every BODYSTRUCTURE
    size and line count, is known here. Each part body ends with an empty line before the
    boundary: the CRLF before "--boundary" belongs to the boundary (RFC 2046), so the part's size
    is the length of `body` exactly and its line count is the number of CRLFs in it.
    """
    msgs = []

    mid = message_id("report")
    body = ("The quarterly pumpernickel figures are below.\r\n"
            "Revenue: 42\r\nCosts: 17\r\n")
    raw = ("From: Alice Example <%s>\r\nTo: Demo <%s>\r\nSubject: Quarterly report alpha\r\n"
           "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
           "\r\n" % (SENDER, account, DATE, mid)) + body
    msgs.append({"raw": raw.encode(), "mid": mid, "subject": "Quarterly report alpha",
                 "from": ("Alice Example", "alice", "client.test"),
                 "structure": ("text", "plain", {"charset": "us-ascii"}, "7bit",
                               len(body), body.count("\r\n"))})

    mid = message_id("photos")
    boundary = "=_b0undary_42"
    text_body = "See the lighthouse photo attached.\r\nRegards, Alice\r\n"
    attachment = bytes(range(256)) * 3 + b"postern"  # binary: every byte value
    att_b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n").decode()
    raw = ("From: Alice Example <%s>\r\nTo: Demo <%s>\r\nSubject: Photos from the trip\r\n"
           "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="%s"\r\n'
           "\r\n"
           "This is a multi-part message in MIME format.\r\n"
           "--%s\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n"
           "\r\n%s\r\n"
           "--%s\r\n"
           'Content-Type: application/octet-stream; name="photo.bin"\r\n'
           "Content-Transfer-Encoding: base64\r\n"
           'Content-Disposition: attachment; filename="photo.bin"\r\n'
           "\r\n%s\r\n"
           "--%s--\r\n"
           % (SENDER, account, DATE, mid, boundary, boundary, text_body, boundary, att_b64,
              boundary))
    msgs.append({"raw": raw.encode(), "mid": mid, "subject": "Photos from the trip",
                 "from": ("Alice Example", "alice", "client.test"), "boundary": boundary,
                 "text_body": text_body.encode(), "attachment": attachment,
                 "att_b64": att_b64.encode()})

    mid = message_id("cafe")
    body = "Grüße aus Köln: das Menü hat heute Zucchini.\r\n"
    raw = ("From: =?UTF-8?Q?Bob_M=C3=BCller?= <bob@client.test>\r\nTo: Demo <%s>\r\n"
           "Subject: =?UTF-8?Q?Caf=C3=A9_men=C3=BC?=\r\n"
           "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
           "\r\n" % (account, DATE, mid)) + body
    msgs.append({"raw": raw.encode("utf-8"), "mid": mid,
                 "subject": "=?UTF-8?Q?Caf=C3=A9_men=C3=BC?=",
                 "from": ("=?UTF-8?Q?Bob_M=C3=BCller?=", "bob", "client.test"),
                 "structure": ("text", "plain", {"charset": "utf-8"}, "8bit",
                               len(body.encode("utf-8")), body.count("\r\n"))})
    return msgs


def simple_message(account, subject, body, mid=None, sender=SENDER):
    mid = mid or message_id("m")
    raw = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s"
           % (sender, account, subject, email.utils.formatdate(), mid, body))
    return raw.encode(), mid


def deliver(inst, raws, connections=1):
    """Delivers each message (bytes, CRLF line ends) by SMTP to the instance's account.

    With connections > 1 the messages are spread over that many SMTP sessions running at once,
    each sending many transactions, so that the server's group commit batches them.
    """
    def send(batch):
        with inst.smtp(timeout=60) as s:
            for raw in batch:
                opts = ["BODY=8BITMIME"] if any(b > 127 for b in raw) else []
                refused = s.sendmail(SENDER, [inst.account], raw, mail_options=opts)
                if refused:
                    raise AssertionError("refused: %r" % refused)

    if connections <= 1:
        send(raws)
        return
    errors = []

    def run(batch):
        try:
            send(batch)
        except Exception as e:  # reported below, from the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(raws[i::connections],))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def header_value(raw, name):
    msg = email.parser.BytesHeaderParser().parsebytes(raw)
    v = msg.get(name)
    return None if v is None else str(v).strip()


# --------------------------------------------------------------------------------------------
# Base class: one fresh data directory and server per test.


def wait_for_imap(port, proc, timeout=30.0):
    """The harness waits for SMTP; the IMAP listeners must also greet before a client starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with h.connect(port, timeout=5.0) as s:
                s.settimeout(5.0)
                if s.recv(1024).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with status %s" % proc.returncode)
        if time.monotonic() > deadline:
            raise RuntimeError("no IMAP greeting on port %d within %.0fs" % (port, timeout))
        time.sleep(0.05)


class ImapCase(unittest.TestCase):
    def setUp(self):
        self.inst = h.Instance(BINARY, prefix="postern-imap-")
        self.addCleanup(self.inst.close)
        self.inst.start()
        wait_for_imap(self.inst.imap_port, self.inst.proc)
        self.tmp = tempfile.mkdtemp(prefix="postern-imap-client-")
        if not os.environ.get("POSTERN_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmp, True)

    def tearDown(self):
        # Whatever a client did, the server must still be up and stop cleanly. The clients are
        # still connected (their LOGOUT is a cleanup, which runs after tearDown): a graceful
        # stop must end idle IMAP sessions at once, as it does idle SMTP sessions.
        running = self.inst.running()
        rc = self.inst.stop()
        self.assertTrue(running, "the server died during the test: " + self.inst.diagnosis())
        self.assertEqual(rc, 0, "server exit status %s; %s" % (rc, self.inst.diagnosis()))
        self.assertEqual(self.inst.sanitizer_reports(), [], self.inst.diagnosis())

    # -- imaplib helpers ---------------------------------------------------------------------

    def imaps(self, login=True):
        """An imaplib client over implicit TLS, logged in, closed (LOGOUT) at cleanup."""
        m = imaplib.IMAP4_SSL("127.0.0.1", self.inst.imaps_port,
                              ssl_context=h.insecure_tls_context(), timeout=30)
        self.addCleanup(self._logout, m)
        if login:
            typ, data = m.login(self.inst.account, self.inst.password)
            self.assertEqual(typ, "OK", data)
        return m

    @staticmethod
    def _logout(m):
        if m.state == "LOGOUT":  # logged out already
            return
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            try:
                m.shutdown()  # the server is gone already: just close the socket
            except OSError:
                pass

    def ok(self, result, what=""):
        typ, data = result
        self.assertEqual(typ, "OK", "%s: %s %r" % (what, typ, data))
        return data

    def select(self, m, mailbox="INBOX", readonly=False):
        data = self.ok(m.select(mailbox, readonly), "SELECT " + mailbox)
        return int(data[0])

    def fetch(self, m, seqset, items, uid=False):
        if uid:
            data = self.ok(m.uid("FETCH", seqset, items), "UID FETCH %s %s" % (seqset, items))
        else:
            data = self.ok(m.fetch(seqset, items), "FETCH %s %s" % (seqset, items))
        return parse_fetch(data)

    def search(self, m, *criteria, uid=False, charset=None):
        if uid:
            data = self.ok(m.uid("SEARCH", *criteria), "UID SEARCH %s" % (criteria,))
        else:
            data = self.ok(m.search(charset, *criteria), "SEARCH %s" % (criteria,))
        return [int(x) for x in b" ".join(d for d in data if d).split()]

    def list_mailboxes(self, m, pattern="*"):
        return parse_list(self.ok(m.list('""', pattern), "LIST"))

    def flags_of(self, m, seq):
        return flag_set(self.fetch(m, str(seq), "(FLAGS)")[seq]["FLAGS"])

    def deliver_samples(self):
        msgs = sample_messages(self.inst.account)
        deliver(self.inst, [x["raw"] for x in msgs])
        return msgs

    def pop_untagged(self, m, name):
        """The untagged responses `name` imaplib collected since the last call, and forgets them."""
        return m.response(name)[1] if name in m.untagged_responses else []

    def read_line(self, m, deadline):
        """One line from a client whose command imaplib is not handling (IDLE)."""
        m.sock.settimeout(max(0.1, deadline - time.monotonic()))
        line = m.readline()
        if not line:
            self.fail("server closed the connection")
        return line

    def wait_for_line(self, m, pattern, timeout=10.0, what=""):
        """Reads lines until one matches `pattern` (bytes regex); returns (match, lines read)."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.read_line(m, deadline)
            except (TimeoutError, OSError):
                break
            seen.append(line)
            mo = re.match(pattern, line)
            if mo:
                return mo, seen
        self.fail("%s: no line matching %r within %.0fs; got %r" % (what, pattern, timeout, seen))


# --------------------------------------------------------------------------------------------
# (a) imaplib


class Imaplib(ImapCase):
    def assert_special_use(self, mailboxes):
        self.assertIn("INBOX", mailboxes, mailboxes)
        for name, flag in SPECIAL_USE.items():
            self.assertIn(name, mailboxes, mailboxes)
            attrs, delim = mailboxes[name]
            self.assertIn(flag.upper(), attrs, "%s: %s" % (name, attrs))
            self.assertEqual(delim, "/", name)

    def test_a01_starttls_login_disabled_until_tls(self):
        m = imaplib.IMAP4("127.0.0.1", self.inst.imap_port, timeout=30)
        self.addCleanup(self._logout, m)
        caps = set(m.capabilities)
        self.assertIn("STARTTLS", caps, caps)
        self.assertIn("LOGINDISABLED", caps, caps)
        self.assertFalse([c for c in caps if c.startswith("AUTH=")],
                         "SASL mechanisms offered before TLS: %s" % caps)
        # The server must refuse the password in clear text, whatever the client believes.
        with self.assertRaises(imaplib.IMAP4.error):
            m.login(self.inst.account, self.inst.password)
        with self.assertRaises(imaplib.IMAP4.error):
            m.authenticate("PLAIN", lambda _: b"\0%s\0%s" % (self.inst.account.encode(),
                                                              self.inst.password.encode()))
        self.ok(m.starttls(ssl_context=h.insecure_tls_context()), "STARTTLS")
        caps = set(m.capabilities)  # imaplib asks again after the handshake
        self.assertNotIn("LOGINDISABLED", caps, caps)
        self.assertNotIn("STARTTLS", caps, caps)
        self.assertIn("AUTH=PLAIN", caps, caps)
        self.ok(m.login(self.inst.account, self.inst.password), "LOGIN after STARTTLS")
        self.assert_special_use(self.list_mailboxes(m))

    def test_a02_starttls_discards_pipelined_commands(self):
        """Bytes sent after STARTTLS in the same packet must not run inside TLS (CVE-2011-0411
        class): the server answers STARTTLS, then either starts TLS and ignores 'b2 CAPABILITY',
        or closes the connection."""
        s = h.connect(self.inst.imap_port, timeout=10)
        with s:
            s.recv(4096)  # greeting
            s.sendall(b"b1 STARTTLS\r\nb2 CAPABILITY\r\n")
            reply = b""
            while b"b1 " not in reply:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "connection closed after STARTTLS")
                reply += chunk
            self.assertRegex(reply, rb"b1 OK")
            self.assertNotIn(b"b2", reply)
            try:
                tls = h.insecure_tls_context().wrap_socket(s, server_hostname="mail.example.test")
            except (ssl.SSLError, OSError):
                return  # closing the connection on pipelined bytes is a safe answer too
            tls.sendall(b"b3 NOOP\r\n")
            got = b""
            while b"b3 " not in got:
                chunk = tls.recv(4096)
                self.assertTrue(chunk, "connection closed after TLS: %r" % got)
                got += chunk
            self.assertNotIn(b"b2 ", got, "the pipelined command ran inside TLS")
            self.assertIn(b"b3 OK", got)
            tls.close()

    def test_a03_login_capabilities_and_bad_password(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.inst.imaps_port,
                              ssl_context=h.insecure_tls_context(), timeout=30)
        self.addCleanup(self._logout, m)
        # Before login over TLS: LOGIN is allowed and SASL PLAIN offered.
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login(self.inst.account, self.inst.password + "x")
        self.assertIn(b"AUTHENTICATIONFAILED", str(cm.exception).encode())
        # SASL PLAIN (imaplib sends it without SASL-IR: AUTHENTICATE, "+", credentials).
        self.ok(m.authenticate("PLAIN", lambda _: b"\0%s\0%s" % (
            self.inst.account.encode(), self.inst.password.encode())), "AUTHENTICATE PLAIN")
        typ, data = m.capability()
        caps = set(data[0].decode().upper().split())
        missing = [c for c in PLANNED_CAPABILITIES if c not in caps]
        self.assertEqual(missing, [], "capabilities after login: %s" % sorted(caps))
        # NAMESPACE: personal namespace "" with "/" as the delimiter.
        ns = self.ok(m.namespace(), "NAMESPACE")
        self.assertRegex(b" ".join(ns), rb'^\(\("" "/"\)\)')

    def test_a04_list_special_use_and_extended(self):
        m = self.imaps()
        mailboxes = self.list_mailboxes(m)
        self.assert_special_use(mailboxes)
        self.assertEqual(set(mailboxes), {"INBOX"} | set(SPECIAL_USE), mailboxes)
        # LIST "" "" gives the hierarchy delimiter.
        data = self.ok(m.list('""', '""'), 'LIST "" ""')
        self.assertRegex(b" ".join(d for d in data if d), rb'^\(.*\) "/" ""$')
        # RFC 6154: the SPECIAL-USE selection option lists only the special-use mailboxes.
        typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
        self.assertEqual(typ, "OK", data)
        only = parse_list(m.response("LIST")[1])
        self.assertEqual(set(only), set(SPECIAL_USE), only)
        # RFC 5819 LIST-STATUS: a STATUS response with each mailbox.
        deliver(self.inst, [simple_message(self.inst.account, "count me", "x\r\n")[0]])
        typ, data = m._simple_command("LIST", '""', '"*"', "RETURN",
                                      "(SPECIAL-USE STATUS (MESSAGES UIDNEXT))")
        self.assertEqual(typ, "OK", data)
        parse_list(m.response("LIST")[1])
        statuses = {}
        for line in m.response("STATUS")[1]:
            p = Parser(joined([line]))
            name, items = p.value(), p.value()
            statuses[text(name)] = dict(zip((str(k).upper() for k in items[0::2]),
                                            (int(v) for v in items[1::2])))
        self.assertEqual(statuses.get("INBOX", {}).get("MESSAGES"), 1, statuses)
        self.assertEqual(statuses.get("Archive", {}).get("MESSAGES"), 0, statuses)

    def test_a05_fetch_matches_what_was_sent(self):
        msgs = self.deliver_samples()
        m = self.imaps()
        self.assertEqual(self.select(m), 3)
        res = self.fetch(m, "1:3", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE "
                                   "BODY.PEEK[])")
        self.assertEqual(sorted(res), [1, 2, 3], res.keys())
        for seq, sent in zip((1, 2, 3), msgs):
            r = res[seq]
            whole = r["BODY[]"]
            # The server prepends its own trace headers (Return-Path, Delivered-To, Received)
            # and must change nothing else.
            self.assertTrue(whole.endswith(sent["raw"]),
                            "message %d: BODY[] does not end with the message sent; got %r"
                            % (seq, whole[:600]))
            prefix = whole[:-len(sent["raw"])]
            self.assertIn(b"Received:", prefix, prefix)
            self.assertTrue(prefix == b"" or prefix.endswith(b"\r\n"), prefix)
            self.assertEqual(int(r["RFC822.SIZE"]), len(whole), "RFC822.SIZE of %d" % seq)
            self.assertEqual(flag_set(r["FLAGS"]), set(), "new mail has no flags")
            self.assertIsNotNone(imaplib.Internaldate2tuple(
                b'INTERNALDATE "' + r["INTERNALDATE"] + b'"'), r["INTERNALDATE"])
            env = r["ENVELOPE"]
            self.assertEqual(text(env[0]), DATE)
            self.assertEqual(text(env[1]), sent["subject"])
            frm = [tuple(text(x) for x in a) for a in env[2]]
            name, mbox, host = sent["from"]
            self.assertEqual(frm, [(name, None, mbox, host)])
            # No Sender/Reply-To header: RFC 3501 says both are set from From.
            self.assertEqual(env[3], env[2], "envelope sender")
            self.assertEqual(env[4], env[2], "envelope reply-to")
            to = [tuple(text(x) for x in a) for a in env[5]]
            local, _, domain = self.inst.account.partition("@")
            self.assertEqual(to, [("Demo", None, local, domain)])
            self.assertIsNone(env[6])  # cc
            self.assertIsNone(env[7])  # bcc
            self.assertIsNone(env[8])  # in-reply-to
            self.assertEqual(text(env[9]), sent["mid"])

        for seq in (1, 3):
            bs, (typ, sub, prm, enc, size, lines) = res[seq]["BODYSTRUCTURE"], \
                msgs[seq - 1]["structure"]
            self.assertEqual((text(bs[0]).lower(), text(bs[1]).lower()), (typ, sub), bs)
            self.assertEqual(params(bs[2]), prm, bs)
            self.assertEqual(text(bs[5]).lower(), enc, bs)
            self.assertEqual((int(bs[6]), int(bs[7])), (size, lines), "size, lines: %r" % (bs,))

        # The multipart message: two parts, each with its exact size, the attachment with its
        # disposition (clients list attachments from it), then subtype and boundary.
        bs, sent = res[2]["BODYSTRUCTURE"], msgs[1]
        self.assertIsInstance(bs[0], list, bs)
        self.assertIsInstance(bs[1], list, bs)
        self.assertEqual(text(bs[2]).lower(), "mixed", bs)
        self.assertEqual(params(bs[3]).get("boundary"), sent["boundary"], bs)
        p1, p2 = bs[0], bs[1]
        self.assertEqual((text(p1[0]).lower(), text(p1[1]).lower()), ("text", "plain"), p1)
        self.assertEqual(params(p1[2]), {"charset": "utf-8"}, p1)
        self.assertEqual((int(p1[6]), int(p1[7])),
                         (len(sent["text_body"]), sent["text_body"].count(b"\r\n")), p1)
        self.assertEqual((text(p2[0]).lower(), text(p2[1]).lower()),
                         ("application", "octet-stream"), p2)
        self.assertEqual(params(p2[2]), {"name": "photo.bin"}, p2)
        self.assertEqual(text(p2[5]).lower(), "base64", p2)
        self.assertEqual(int(p2[6]), len(sent["att_b64"]), p2)
        # Extension data of a non-text part: md5, then disposition.
        self.assertGreaterEqual(len(p2), 9, "BODYSTRUCTURE lacks extension data: %r" % (p2,))
        self.assertEqual(text(p2[8][0]).lower(), "attachment", p2)
        self.assertEqual(params(p2[8][1]), {"filename": "photo.bin"}, p2)

        # Sections: the parts, a header field, and BINARY (decoded by the server).
        part = self.fetch(m, "2", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[HEADER.FIELDS (SUBJECT)] "
                                  "BINARY.PEEK[2] BINARY.SIZE[2])")[2]
        self.assertEqual(part["BODY[1]"], sent["text_body"])
        self.assertEqual(part["BODY[2]"], sent["att_b64"])
        hdr = [v for k, v in part.items() if k.startswith("BODY[HEADER.FIELDS")]
        self.assertEqual(hdr, [b"Subject: Photos from the trip\r\n\r\n"], part.keys())
        self.assertEqual(part["BINARY[2]"], sent["attachment"])
        self.assertEqual(int(part["BINARY.SIZE[2]"]), len(sent["attachment"]))
        # A partial fetch.
        partial = self.fetch(m, "1", "(BODY.PEEK[TEXT]<4.11>)")[1]
        self.assertEqual(partial["BODY[TEXT]<4>"], b"quarterly p")
        # PEEK kept every message unseen.
        for seq in (1, 2, 3):
            self.assertEqual(self.flags_of(m, seq), set())

    def test_a06_store_flags_and_implicit_seen(self):
        self.deliver_samples()
        m = self.imaps()
        self.select(m)
        data = self.ok(m.store("1", "+FLAGS", "(\\Seen)"), "STORE +FLAGS")
        self.assertIn("\\Seen", flag_set(parse_fetch(data)[1]["FLAGS"]), data)
        self.assertEqual(self.flags_of(m, 1), {"\\Seen"})
        self.ok(m.store("1", "+FLAGS.SILENT", "(\\Flagged \\Answered)"))
        self.assertEqual(self.flags_of(m, 1), {"\\Seen", "\\Flagged", "\\Answered"})
        self.ok(m.store("1", "-FLAGS", "(\\Answered)"))
        self.ok(m.store("1", "FLAGS", "(\\Flagged)"))
        self.assertEqual(self.flags_of(m, 1), {"\\Flagged"})
        # FETCH BODY[] (not PEEK) marks the message \Seen.
        self.fetch(m, "2", "(BODY[])")
        self.assertIn("\\Seen", self.flags_of(m, 2))
        self.assertEqual(self.search(m, "UNSEEN"), [1, 3])
        self.assertEqual(self.search(m, "FLAGGED"), [1])
        # Flags survive the session.
        m2 = self.imaps()
        self.select(m2, readonly=True)
        self.assertEqual(self.flags_of(m2, 1), {"\\Flagged"})
        self.assertEqual(self.flags_of(m2, 2), {"\\Seen"})

    def test_a07_copy_and_move_with_copyuid(self):
        msgs = self.deliver_samples()
        m = self.imaps()
        self.select(m)
        uids = sorted(self.fetch(m, "1:3", "(UID)").items())
        uid1, uid2 = int(uids[0][1]["UID"]), int(uids[1][1]["UID"])
        status = self.ok(m.status("Archive", "(UIDVALIDITY UIDNEXT MESSAGES)"), "STATUS")
        arch_validity = int(re.search(rb"UIDVALIDITY (\d+)", status[0]).group(1))

        data = self.ok(m.copy("1", "Archive"), "COPY")
        code = response_code(data, "COPYUID")
        self.assertIsNotNone(code, "COPY without COPYUID: %r" % data)
        self.assertEqual(int(code[0]), arch_validity)
        self.assertEqual(uid_set(code[1]), [uid1])
        copied_uid = uid_set(code[2])[0]

        # imaplib files every response code, tagged ones too, under its name: forget COPY's.
        self.pop_untagged(m, "COPYUID")
        typ, data = m.uid("MOVE", str(uid2), "Archive")
        self.assertEqual(typ, "OK", data)
        # RFC 6851: COPYUID in an untagged OK before the EXPUNGE; the tagged reply is
        # tolerated too. Either way imaplib has it under COPYUID now.
        codes = self.pop_untagged(m, "COPYUID")
        code = codes[-1].decode().split() if codes else None
        self.assertIsNotNone(code, "MOVE without COPYUID")
        self.assertEqual(uid_set(code[1]), [uid2])
        moved_uid = uid_set(code[2])[0]
        self.assertEqual(self.pop_untagged(m, "EXPUNGE"), [b"2"])
        self.assertEqual(self.search(m, "ALL"), [1, 2])

        self.assertEqual(self.select(m, "Archive"), 2)
        got = self.fetch(m, "%d,%d" % (copied_uid, moved_uid), "(UID BODY.PEEK[])", uid=True)
        by_uid = {int(v["UID"]): v["BODY[]"] for v in got.values()}
        self.assertTrue(by_uid[copied_uid].endswith(msgs[0]["raw"]))
        self.assertTrue(by_uid[moved_uid].endswith(msgs[1]["raw"]))
        # The copy in INBOX is untouched, the moved one gone.
        self.select(m)
        self.assertEqual(self.search(m, "HEADER", "Message-ID", '"%s"' % msgs[1]["mid"]), [])

    def test_a08_append_to_sent_with_appenduid(self):
        m = self.imaps()
        raw, mid = simple_message("bob@client.test", "Sent by me", "Appended body.\r\n",
                                  sender=self.inst.account)
        when = (2024, 7, 1, 12, 30, 0)
        date = imaplib.Time2Internaldate(time.mktime(when + (0, 0, -1)))
        data = self.ok(m.append("Sent", "(\\Seen $Forwarded)", date, raw), "APPEND")
        code = response_code(data, "APPENDUID")
        self.assertIsNotNone(code, "APPEND without APPENDUID: %r" % data)
        validity, uid = int(code[0]), int(code[1])
        status = self.ok(m.status("Sent", "(MESSAGES UIDNEXT UIDVALIDITY)"), "STATUS")
        st = dict(re.findall(rb"(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)", status[0]))
        self.assertEqual(int(st[b"MESSAGES"]), 1, status)
        self.assertEqual(int(st[b"UIDVALIDITY"]), validity, status)
        self.assertGreater(int(st[b"UIDNEXT"]), uid, status)
        self.assertEqual(self.select(m, "Sent"), 1)
        r = self.fetch(m, str(uid), "(UID FLAGS INTERNALDATE BODY.PEEK[])", uid=True)[1]
        self.assertEqual(r["BODY[]"], raw, "APPEND stores the message unchanged")
        self.assertEqual(flag_set(r["FLAGS"]), {"\\Seen", "$Forwarded"})
        got = imaplib.Internaldate2tuple(b'INTERNALDATE "' + r["INTERNALDATE"] + b'"')
        self.assertEqual(time.mktime(got), time.mktime(when + (0, 0, -1)), r["INTERNALDATE"])
        # APPEND to a mailbox that does not exist: NO [TRYCREATE].
        typ, data = m.append("NoSuchFolder", None, None, raw)
        self.assertEqual(typ, "NO", data)
        self.assertIn(b"TRYCREATE", b" ".join(data))

    def test_a09_search(self):
        self.deliver_samples()
        m = self.imaps()
        self.select(m)
        uids = [int(v["UID"]) for _, v in sorted(self.fetch(m, "1:3", "(UID)").items())]

        def expect(want, *criteria, uid=False, literal=None):
            # A subtest each, so that one wrong answer does not hide the others.
            what = " ".join(criteria) + (" {%s}" % literal if literal else "")
            with self.subTest(search=what):
                if literal:
                    # imaplib sends m.literal as a synchronising literal after the criteria.
                    m.literal = literal.encode()
                got = self.search(m, *criteria, uid=uid, charset="UTF-8" if literal else None)
                self.assertEqual(got, want, "SEARCH %s" % what)

        expect([1], "SUBJECT", '"report"')
        expect([2], "BODY", "lighthouse")
        expect([1], "TEXT", "pumpernickel")
        expect([1, 2], "FROM", "alice")
        expect([], "BODY", "nonexistentword")
        expect([2, 3], "OR", "SUBJECT", "photos", "FROM", "bob")
        expect([2, 3], "NOT", "SUBJECT", "report")
        expect([2], "LARGER", "1000")
        expect([uids[1]], "SUBJECT", "photos", uid=True)
        # UTF-8 search strings (CHARSET UTF-8, in a literal). The 8bit body is searched as
        # UTF-8; the Subject is an RFC 2047 encoded word (=?UTF-8?Q?Caf=C3=A9_men=C3=BC?=),
        # which must be decoded to match: what a user types into a client's search box is
        # "menü", never the encoded form.
        expect([3], "BODY", literal="Grüße")
        expect([3], "SUBJECT", literal="menü")
        expect([3], "SUBJECT", literal="Café")
        # ESEARCH (RFC 4731).
        typ, data = m._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
        self.assertEqual(typ, "OK", data)
        es = b" ".join(m.response("ESEARCH")[1])
        self.assertRegex(es, rb"MIN 1\b")
        self.assertRegex(es, rb"MAX 3\b")
        self.assertRegex(es, rb"COUNT 3\b")

    def test_a10_expunge_and_uid_expunge(self):
        msgs = self.deliver_samples()
        m = self.imaps()
        self.select(m)
        uids = [int(v["UID"]) for _, v in sorted(self.fetch(m, "1:3", "(UID)").items())]
        self.ok(m.store("1,3", "+FLAGS.SILENT", "(\\Deleted)"))
        self.pop_untagged(m, "EXPUNGE")
        data = self.ok(m.expunge(), "EXPUNGE")
        # Either order is valid ("3" then "1", or "1" then "2"); two expunges either way.
        self.assertEqual(len([d for d in data if d]), 2, data)
        self.assertEqual(self.search(m, "ALL"), [1])
        r = self.fetch(m, "1", "(UID ENVELOPE)")[1]
        self.assertEqual((int(r["UID"]), text(r["ENVELOPE"][9])), (uids[1], msgs[1]["mid"]))

        # UID EXPUNGE (UIDPLUS) removes only the listed \Deleted messages.
        deliver(self.inst, [simple_message(self.inst.account, "n%d" % i, "x\r\n")[0]
                            for i in range(2)])
        self.ok(m.noop())
        self.assertEqual(self.search(m, "ALL"), [1, 2, 3])
        new = [int(v["UID"]) for _, v in sorted(self.fetch(m, "2:3", "(UID)").items())]
        self.ok(m.store("2:3", "+FLAGS.SILENT", "(\\Deleted)"))
        self.pop_untagged(m, "EXPUNGE")
        typ, data = m.uid("EXPUNGE", str(new[0]))
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.pop_untagged(m, "EXPUNGE"), [b"2"])
        left = self.fetch(m, "1:*", "(UID FLAGS)")
        self.assertEqual(sorted(int(v["UID"]) for v in left.values()), [uids[1], new[1]])
        # CLOSE expunges silently; the next SELECT sees what is left.
        self.ok(m.close(), "CLOSE")
        self.assertEqual(self.select(m), 1)

    def test_a11_condstore(self):
        self.deliver_samples()
        m = self.imaps()
        # ENABLE CONDSTORE (as imapflow does): from then on SELECT reports HIGHESTMODSEQ.
        self.ok(m.enable("CONDSTORE"), "ENABLE CONDSTORE")
        self.assertIn(b"CONDSTORE", b" ".join(self.pop_untagged(m, "ENABLED")))
        self.select(m)
        hms = self.pop_untagged(m, "HIGHESTMODSEQ")
        self.assertTrue(hms and int(hms[0]) > 0, "SELECT after ENABLE CONDSTORE without "
                                                 "HIGHESTMODSEQ")
        before = {s: int(v["MODSEQ"][0]) for s, v in self.fetch(m, "1:3", "(MODSEQ)").items()}
        self.ok(m.store("2", "+FLAGS", "(\\Flagged)"))
        after = {s: int(v["MODSEQ"][0]) for s, v in self.fetch(m, "1:3", "(MODSEQ)").items()}
        self.assertGreater(after[2], max(before.values()), (before, after))
        self.assertEqual((after[1], after[3]), (before[1], before[3]))
        changed = self.fetch(m, "1:*", "(FLAGS) (CHANGEDSINCE %d)" % max(before.values()))
        self.assertEqual(sorted(changed), [2], changed)
        # UNCHANGEDSINCE older than the message's modseq: the STORE is refused ([MODIFIED 2]).
        typ, data = m._simple_command("STORE", "2", "(UNCHANGEDSINCE %d)" % before[2],
                                      "+FLAGS", "(\\Seen)")
        self.assertEqual(typ, "OK", data)
        self.assertIn(b"MODIFIED", b" ".join(d for d in data if d), data)
        self.assertNotIn("\\Seen", self.flags_of(m, 2))

    def test_a12_mailbox_with_non_ascii_name(self):
        self.assertEqual(mutf7_encode("Café"), "Caf&AOk-")
        self.assertEqual(mutf7_decode("R&AOk-sum&AOk-/2024 & co"), "Résumé/2024 & co")
        m = self.imaps()
        cafe, resume = mutf7_encode("Café"), mutf7_encode("Résumé")
        self.ok(m.create(cafe), "CREATE " + cafe)
        self.assertIn(cafe, self.list_mailboxes(m))
        raw, _ = simple_message(self.inst.account, "in the cafe", "x\r\n")
        self.ok(m.append(cafe, None, None, raw), "APPEND")
        self.ok(m.rename(cafe, resume), "RENAME")
        child = resume + "/" + mutf7_encode("Zürich & 2024")
        self.ok(m.create(q(child)), "CREATE " + child)
        boxes = self.list_mailboxes(m)
        self.assertNotIn(cafe, boxes)
        self.assertIn(resume, boxes)
        self.assertIn(child, boxes)
        self.assertEqual(mutf7_decode(child), "Résumé/Zürich & 2024")
        self.assertIn("\\HASCHILDREN", boxes[resume][0], boxes[resume])
        self.assertIn("\\HASNOCHILDREN", boxes[child][0], boxes[child])
        # The message moved with its mailbox.
        status = self.ok(m.status(resume, "(MESSAGES)"), "STATUS")
        self.assertRegex(status[0], rb"MESSAGES 1\b")
        self.assertEqual(self.select(m, resume), 1)
        self.ok(m.close())
        # An invalid modified UTF-7 name is refused, not stored as something else.
        typ, _ = m.create("Bad&Jjo")
        self.assertNotEqual(typ, "OK", "CREATE accepted an unterminated modified UTF-7 name")
        self.ok(m.delete(q(child)), "DELETE " + child)
        self.ok(m.delete(resume), "DELETE " + resume)
        self.assertEqual(set(self.list_mailboxes(m)), {"INBOX"} | set(SPECIAL_USE))
        # INBOX cannot be deleted.
        typ, _ = m.delete("INBOX")
        self.assertEqual(typ, "NO")

    def test_a13_two_sessions_see_each_others_changes(self):
        msgs = self.deliver_samples()
        a, b = self.imaps(), self.imaps()
        self.select(a)
        self.select(b)
        for name in ("FETCH", "EXPUNGE", "EXISTS"):
            self.pop_untagged(b, name)
        self.ok(a.store("1", "+FLAGS", "(\\Flagged)"))
        self.ok(b.noop(), "NOOP")
        fetched = parse_fetch(self.pop_untagged(b, "FETCH"))
        self.assertIn(1, fetched, "session b got no FETCH for a's flag change")
        self.assertIn("\\Flagged", flag_set(fetched[1]["FLAGS"]))

        self.ok(a.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
        self.ok(a.expunge())
        self.ok(b.noop(), "NOOP")
        self.assertEqual(self.pop_untagged(b, "EXPUNGE"), [b"2"])
        r = self.fetch(b, "1:*", "(ENVELOPE)")
        self.assertEqual([text(r[s]["ENVELOPE"][9]) for s in sorted(r)],
                         [msgs[0]["mid"], msgs[2]["mid"]])

        deliver(self.inst, [simple_message(self.inst.account, "fourth", "x\r\n")[0]])
        self.ok(b.noop(), "NOOP")
        self.assertEqual(self.pop_untagged(b, "EXISTS"), [b"3"])

    def test_a14_idle_sees_delivery_flags_and_expunge(self):
        self.deliver_samples()
        a, b = self.imaps(), self.imaps()
        self.assertEqual(self.select(a), 3)
        self.select(b)
        # IDLE by hand: imaplib (3.11) has no IDLE command.
        a.send(b"a1 IDLE\r\n")
        self.wait_for_line(a, rb"\+", what="IDLE continuation")
        deliver(self.inst, [simple_message(self.inst.account, "while idling", "x\r\n")[0]])
        self.wait_for_line(a, rb"\* 4 EXISTS\r\n", what="EXISTS during IDLE")
        self.ok(b.store("1", "+FLAGS", "(\\Seen)"))
        self.wait_for_line(a, rb"\* 1 FETCH \(.*\\Seen", what="flag change during IDLE")
        self.ok(b.store("3", "+FLAGS.SILENT", "(\\Deleted)"))
        self.ok(b.expunge())
        self.wait_for_line(a, rb"\* 3 EXPUNGE\r\n", what="EXPUNGE during IDLE")
        a.send(b"DONE\r\n")
        self.wait_for_line(a, rb"a1 OK", what="IDLE completion")
        # imaplib carries on after the hand-made exchange.
        self.assertEqual(self.search(a, "ALL"), [1, 2, 3])


# --------------------------------------------------------------------------------------------
# (b) imapflow


def ensure_imapflow():
    """Installs the pinned imapflow (package-lock.json) unless node_modules has it already."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise AssertionError("node and npm are needed (scripts/install-deps)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    if int(re.match(r"v(\d+)", version).group(1)) < 20:
        raise AssertionError("imapflow needs Node.js 20 or later; node is %s" % version.strip())
    if os.path.exists(os.path.join(IMAPFLOW_DIR, "node_modules", "imapflow", "package.json")):
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=IMAPFLOW_DIR, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError("npm ci in %s failed:\n%s%s" % (IMAPFLOW_DIR, r.stdout, r.stderr))


class ImapFlow(ImapCase):
    def run_check(self):
        """Runs check.mjs; delivers a message when it says it is idling; returns its result."""
        env = dict(os.environ, IMAP_HOST="127.0.0.1", IMAPS_PORT=str(self.inst.imaps_port),
                   IMAP_PORT=str(self.inst.imap_port), IMAP_USER=self.inst.account,
                   IMAP_PASS=self.inst.password)
        err_path = os.path.join(self.tmp, "node.stderr")
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(["node", os.path.join(IMAPFLOW_DIR, "check.mjs")],
                                    cwd=IMAPFLOW_DIR, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err)
        self.addCleanup(h.kill_process, proc)
        events, buf = [], b""
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        result = None
        while result is None and time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ev = json.loads(line)
                events.append(ev.get("event"))
                if ev.get("event") == "idle":
                    self.idle_mid = simple_message(self.inst.account, "imapflow idle",
                                                   "Delivered while imapflow idles.\r\n")
                    deliver(self.inst, [self.idle_mid[0]])
                elif ev.get("event") in ("result", "error"):
                    result = ev
        sel.close()
        proc.stdout.close()
        proc.wait(timeout=30)
        with open(err_path, errors="replace") as f:
            stderr = f.read()
        if result is None:
            self.fail("check.mjs gave no result (events %s, exit %s): %s"
                      % (events, proc.returncode, stderr[-3000:]))
        if result["event"] == "error":
            self.fail("imapflow failed at step %r: %s (%s %s)\n%s\nimapflow log:\n%s"
                      % (result.get("step"), result.get("message"), result.get("responseStatus"),
                         result.get("responseText"), result.get("stack"),
                         "\n".join(result.get("trace") or [])))
        self.assertEqual(proc.returncode, 0, stderr)
        return result

    def test_b_imapflow(self):
        ensure_imapflow()
        msgs = sample_messages(self.inst.account)
        deliver(self.inst, [x["raw"] for x in msgs])
        r = self.run_check()
        log = "\nimapflow log:\n" + "\n".join(r.get("trace") or [])

        caps = {c.upper() for c in r["capabilities"]}
        self.assertTrue({"IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE"} <= caps, caps)
        self.assertIn("CONDSTORE", {e.upper() for e in r["enabled"]}, "ENABLE CONDSTORE" + log)

        boxes = {b["path"]: b for b in r["mailboxes"]}
        self.assertEqual(set(boxes), {"INBOX"} | set(SPECIAL_USE), boxes)
        for name, flag in SPECIAL_USE.items():
            self.assertEqual(boxes[name]["specialUse"], flag, boxes[name])
            self.assertEqual(boxes[name]["delimiter"], "/")
        self.assertEqual(boxes["INBOX"]["specialUse"], "\\Inbox")

        self.assertEqual(r["inbox"]["exists"], 3, r["inbox"])
        got = r["messages"]
        self.assertEqual([m["seq"] for m in got], [1, 2, 3])
        for m, sent in zip(got, msgs):
            source = base64.b64decode(m["source"])
            self.assertTrue(source.endswith(sent["raw"]),
                            "imapflow source of %d does not end with what was sent: %r"
                            % (m["seq"], source[:400]))
            self.assertEqual(m["size"], len(source))
            env = m["envelope"]
            self.assertEqual(env["messageId"], sent["mid"])
            self.assertEqual(env["from"][0]["address"], "%s@%s" % sent["from"][1:])
            self.assertEqual(set(m["flags"]) - {"\\Recent"}, set())
        # imapflow decodes encoded words in the envelope.
        self.assertEqual(got[2]["envelope"]["subject"], "Café menü")
        self.assertEqual(got[2]["envelope"]["from"][0]["name"], "Bob Müller")
        self.assertEqual(got[0]["envelope"]["subject"], "Quarterly report alpha")

        bs = got[1]["bodyStructure"]
        self.assertEqual(bs["type"], "multipart/mixed", bs)
        kids = bs["childNodes"]
        self.assertEqual([k["type"] for k in kids], ["text/plain", "application/octet-stream"])
        self.assertEqual([k["part"] for k in kids], ["1", "2"])
        self.assertEqual(kids[0]["size"], len(msgs[1]["text_body"]))
        self.assertEqual(kids[1]["disposition"], "attachment", kids[1])
        self.assertEqual(kids[1]["dispositionParameters"]["filename"], "photo.bin")
        self.assertEqual(got[0]["bodyStructure"]["type"], "text/plain")
        self.assertEqual(got[0]["bodyStructure"]["parameters"]["charset"], "us-ascii")

        self.assertEqual(base64.b64decode(r["attachment"]["data"]), msgs[1]["attachment"],
                         "downloaded attachment differs" + log)
        uids = [m["uid"] for m in got]
        self.assertEqual(r["searchSubject"], [uids[0]])
        self.assertEqual(r["searchBody"], [uids[1]])

        self.assertEqual(r["flagged"]["uid"], uids[0])
        self.assertTrue(r["flagged"]["ok"])
        self.assertIn("\\Flagged", r["flagged"]["flags"])

        moved = r["moved"]["result"]
        self.assertEqual(moved["destination"], "Archive", moved)
        self.assertEqual([pair[0] for pair in moved["uidMap"]], [uids[1]],
                         "imapflow got no COPYUID for MOVE: %r%s" % (moved, log))
        self.assertEqual(r["existsAfterMove"], 2)
        self.assertEqual(r["archiveStatus"]["messages"], 1)
        self.assertEqual(r["archiveLast"]["messageId"], msgs[1]["mid"])
        self.assertEqual(r["archiveLast"]["uid"], moved["uidMap"][0][1])

        self.assertTrue(r["idleAcknowledged"], "IDLE was never acknowledged with '+'" + log)
        self.assertIsNotNone(r["idleExists"], "no 'exists' event during IDLE" + log)
        self.assertEqual(r["idleExists"]["count"], 3, r["idleExists"])

        self.assertEqual(set(r["starttls"]["paths"]), {"INBOX"} | set(SPECIAL_USE))
        self.assertNotIn("LOGINDISABLED", {c.upper() for c in r["starttls"]["capabilities"]})

        # What imapflow did is what the server kept: seen through imaplib.
        m = self.imaps()
        self.select(m)
        res = self.fetch(m, "1:*", "(FLAGS ENVELOPE)")
        by_mid = {text(v["ENVELOPE"][9]): flag_set(v["FLAGS"]) for v in res.values()}
        self.assertEqual(set(by_mid), {msgs[0]["mid"], msgs[2]["mid"], self.idle_mid[1]})
        self.assertIn("\\Flagged", by_mid[msgs[0]["mid"]])


# --------------------------------------------------------------------------------------------
# (c) mbsync


def maildir_files(root):
    """{path relative to root: bytes} of every message file under a Maildir++ tree."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) not in ("cur", "new"):
            continue
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def without_tuid(raw):
    """The message without the X-TUID header that mbsync (1.4) adds to every message it copies
    to the other side, whatever the store (it finds the copy by it if the UID is not known)."""
    nl = b"\r\n" if b"\r\n" in raw else b"\n"
    head, sep, body = raw.partition(nl + nl)
    head = re.sub(rb"(?m)^X-TUID: [^\r\n]*" + re.escape(nl), b"", head + nl, count=1)
    return head[:-len(nl)] + sep + body


class Mbsync(ImapCase):
    COUNT = 1000

    def mbsync(self, rc):
        """Runs `mbsync -a` with its IMAP conversation logged (-Dn: commands, untagged lines,
        literal sizes; no message text); returns the commands it sent."""
        r = subprocess.run(["mbsync", "-c", rc, "-a", "-Dn"], capture_output=True,
                           text=True, errors="replace", timeout=300)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, "mbsync exited %d; the end of its conversation:\n%s\n%s"
                         % (r.returncode, out[-4000:], self.inst.diagnosis()))
        # ">>> 12 UID FETCH 1 (BODY.PEEK[])", possibly after "(N in progress) ".
        return [line.split(">>> ", 1)[1] for line in out.splitlines() if ">>> " in line]

    def server_messages(self):
        """{Message-ID: (flags, bytes)} of INBOX, read with imaplib."""
        m = self.imaps()
        self.select(m, readonly=True)
        res = self.fetch(m, "1:*", "(FLAGS BODY.PEEK[])")
        out = {}
        for v in res.values():
            mid = header_value(v["BODY[]"], "Message-ID")
            out[mid] = (flag_set(v["FLAGS"]), v["BODY[]"])
        self._logout(m)
        return out

    def test_c_mbsync(self):
        if not shutil.which("mbsync"):
            self.fail("mbsync is not installed (scripts/install-deps: isync)")
        acct = self.inst.account
        raws = []
        for i in range(self.COUNT):
            # Sizes from 200 bytes to ~4 KiB, so that some messages span several TLS records.
            body = "".join("bulk %d line %d: the quick brown fox\r\n" % (i, j)
                           for j in range(1 + i % 100))
            raws.append(simple_message(acct, "bulk %d" % i, body,
                                       mid="<bulk-%d@client.test>" % i)[0])
        t0 = time.monotonic()
        deliver(self.inst, raws, connections=4)
        delivered_in = time.monotonic() - t0

        maildir = os.path.join(self.tmp, "mail")
        os.makedirs(maildir)
        rc = os.path.join(self.tmp, "mbsyncrc")
        cert = os.path.join(self.inst.data_dir, "tls", "cert.pem")
        self.assertTrue(os.path.exists(cert), cert)
        with open(rc, "w") as f:
            f.write(f"""\
# mbsync trusts a certificate listed in CertificateFile as it is, without a host name check:
# that pins the test server's self-signed certificate.
IMAPAccount postern
Host 127.0.0.1
Port {self.inst.imaps_port}
User {acct}
Pass {self.inst.password}
SSLType IMAPS
AuthMechs PLAIN
CertificateFile {cert}
SystemCertificates no

IMAPStore remote
Account postern

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel postern
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync All
Expunge Both
SyncState *
""")
        t0 = time.monotonic()
        sent = self.mbsync(rc)
        first_sync = time.monotonic() - t0
        # mbsync pipelines one UID FETCH per message, all at once (PipelineDepth is unlimited).
        fetches = [c for c in sent if "BODY.PEEK[]" in c]
        self.assertEqual(len(fetches), self.COUNT, sent[:20])
        local = maildir_files(maildir)
        self.assertEqual(len(local), self.COUNT, "messages in the local Maildir")
        server = self.server_messages()
        self.assertEqual(len(server), self.COUNT)
        local_by_mid = {header_value(b, "Message-ID"): (p, b) for p, b in local.items()}
        self.assertEqual(set(local_by_mid), set(server))
        for mid, (_flags, body) in server.items():
            # mbsync stores LF line ends in a Maildir and adds X-TUID; nothing else may differ.
            self.assertEqual(without_tuid(local_by_mid[mid][1]), body.replace(b"\r\n", b"\n"),
                             "local copy of %s differs from the server's" % mid)

        # Nothing changed: a second sync must leave the Maildir as it is, and neither fetch a
        # message nor change anything on the server (only list, select, UID FETCH (UID FLAGS)).
        sent = self.mbsync(rc)
        self.assertEqual(maildir_files(maildir), local, "the second sync changed the Maildir")
        transfers = [c for c in sent if re.search(r"BODY|APPEND|STORE|EXPUNGE|COPY|MOVE", c)]
        self.assertEqual(transfers, [], "the no-op sync transferred or changed something")

        # Local changes: flag one (Maildir info ":2,FS"), delete one, add one.
        flagged_mid, deleted_mid = "<bulk-10@client.test>", "<bulk-20@client.test>"
        path = local_by_mid[flagged_mid][0]
        base = os.path.basename(path).split(":2,")[0]
        os.rename(os.path.join(maildir, path),
                  os.path.join(maildir, os.path.dirname(os.path.dirname(path)), "cur",
                               base + ":2,FS"))
        os.remove(os.path.join(maildir, local_by_mid[deleted_mid][0]))
        new_raw, new_mid = simple_message(acct, "written locally", "From the Maildir side.\r\n")
        new_path = os.path.join(maildir, "INBOX", "new", "%d.%d.postern-test" % (time.time(),
                                                                                 os.getpid()))
        with open(new_path, "wb") as f:
            f.write(new_raw.replace(b"\r\n", b"\n"))
        t0 = time.monotonic()
        self.mbsync(rc)
        third_sync = time.monotonic() - t0

        server = self.server_messages()
        self.assertIn("\\Flagged", server[flagged_mid][0])
        self.assertIn("\\Seen", server[flagged_mid][0])
        self.assertNotIn(deleted_mid, server, "the local deletion was not expunged on the server")
        self.assertIn(new_mid, server, "the local message was not uploaded")
        # Uploaded as it was written, with CRLF line ends, plus mbsync's X-TUID header.
        self.assertEqual(without_tuid(server[new_mid][1]), new_raw)
        self.assertEqual(len(server), self.COUNT)
        self.assertEqual(server[new_mid][0], set(), "the new message has no flags")
        print("\nmbsync: delivered %d in %.1fs; sync %.1fs, no-op sync, two-way sync %.1fs"
              % (self.COUNT, delivered_in, first_sync, third_sync), file=sys.stderr)


# --------------------------------------------------------------------------------------------
# (d) mutt, in a terminal


class Tmux:
    """A private tmux server (its own socket) running one program in a fixed-size window."""

    def __init__(self, workdir, env):
        self.sock = os.path.join(workdir, "tmux.sock")
        self.env = env

    def run(self, *args, check=True):
        r = subprocess.run(["tmux", "-S", self.sock] + list(args), capture_output=True,
                           text=True, env=self.env, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("tmux %s: %s" % (" ".join(args), r.stderr))
        return r

    def start(self, command):
        # remain-on-exit: the last screen stays readable for the failure message.
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "132", "-y", "40",
                 command, ";", "set-option", "-t", "t", "remain-on-exit", "on")

    def screen(self):
        r = self.run("capture-pane", "-p", "-t", "t", check=False)
        return r.stdout if r.returncode == 0 else "(no screen: %s)" % r.stderr.strip()

    def keys(self, *keys):
        self.run("send-keys", "-t", "t", *keys)

    def wait_for(self, needle, timeout=30.0):
        deadline = time.monotonic() + timeout
        scr = ""
        while time.monotonic() < deadline:
            scr = self.screen()
            if needle in scr:
                return scr
            time.sleep(0.2)
        raise AssertionError("%r did not appear on the screen within %.0fs; it shows:\n%s"
                             % (needle, timeout, scr))

    def kill(self):
        self.run("kill-server", check=False)


def wait_for_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            return True
        time.sleep(0.2)
    return False


class Mutt(ImapCase):
    def test_d_mutt_reads_a_message(self):
        for tool in ("mutt", "tmux"):
            if not shutil.which(tool):
                self.fail("%s is not installed (scripts/install-deps)" % tool)
        acct = self.inst.account
        raw, mid = simple_message(acct, "Lighthouse keeper notes",
                                  "The lamp was lit at dusk; the sea stayed calm.\r\n")
        other = sample_messages(acct)[2]["raw"]  # the UTF-8 subject, decoded by mutt
        deliver(self.inst, [raw, other])

        home = os.path.join(self.tmp, "home")
        os.makedirs(home)
        certs = os.path.join(self.tmp, "certificates")
        shutil.copy(os.path.join(self.inst.data_dir, "tls", "cert.pem"), certs)
        piped = os.path.join(self.tmp, "piped.eml")
        status = os.path.join(self.tmp, "mutt.status")
        rc = os.path.join(self.tmp, "muttrc")
        url = "imaps://127.0.0.1:%d/" % self.inst.imaps_port
        with open(rc, "w") as f:
            f.write(f"""\
set imap_user="{acct}"
set imap_pass="{self.inst.password}"
set folder="{url}"
set spoolfile="+INBOX"
# The self-signed certificate is trusted because it is in certificate_file; the host name
# (127.0.0.1) is not the certificate's, so that check is off.
set certificate_file="{certs}"
set ssl_verify_host=no
set ssl_force_tls=yes
# Nothing cached locally: every header and body comes from the server.
set header_cache=""
set message_cachedir=""
# Sorted by subject, the two messages have a known order: "Café menü", "Lighthouse ...".
set sort=subject
set quit=yes
set move=no
set wait_key=no
set pipe_decode=no
set mark_old=no
set beep=no
set charset="utf-8"
""")
        env = dict(os.environ, HOME=home, LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="screen",
                   TMPDIR=self.tmp)
        env.pop("TMUX", None)
        tmux = Tmux(self.tmp, env)
        self.addCleanup(tmux.kill)
        # -d 2 writes mutt's IMAP conversation to ~/.muttdebug0, for the failure message; the
        # shell records mutt's exit status.
        tmux.start("mutt -d 2 -n -F '%s' -f '%sINBOX'; echo $? > '%s'" % (rc, url, status))

        def conversation():
            """mutt's side of the IMAP conversation (AUTHENTICATE lines left out)."""
            try:
                with open(os.path.join(home, ".muttdebug0"), errors="replace") as f:
                    lines = [x.rstrip() for x in f if re.search(r"\d[<>] ", x)
                             and "AUTHENTICATE" not in x and " LOGIN " not in x]
                return "\n".join(lines[-60:])
            except OSError as e:
                return str(e)

        try:
            index = tmux.wait_for("Lighthouse keeper notes")
            self.assertIn("Café menü", index, "mutt shows the decoded UTF-8 subject")
            tmux.keys("j", "Enter")  # the second message
            pager = tmux.wait_for("the sea stayed calm")
            self.assertIn("Subject: Lighthouse keeper notes", pager)
            # Pipe the message as stored (pipe_decode=no) to a file.
            tmux.keys("|")
            tmux.wait_for("Pipe to")
            tmux.keys("cat > '%s'" % piped, "Enter")
            self.assertTrue(wait_for_file(piped, 20), "mutt piped nothing")
            tmux.keys("q")  # back to the index
            tmux.wait_for("Café menü")
            tmux.keys("q")  # quit: mutt stores the \Seen flag and logs out
            self.assertTrue(wait_for_file(status, 30), "mutt did not exit")
            with open(status) as f:
                self.assertEqual(f.read().strip(), "0", "mutt's exit status")
        except AssertionError as e:
            raise AssertionError("%s\nscreen:\n%s\nmutt's IMAP conversation:\n%s\n%s"
                                 % (e, tmux.screen(), conversation(), self.inst.diagnosis())) \
                from None

        with open(piped, "rb") as f:
            got = f.read()
        # mutt keeps messages with LF line ends; the message sent must be the end of it.
        self.assertTrue(got.endswith(raw.replace(b"\r\n", b"\n")), "mutt piped %r" % got[:800])
        self.assertEqual(header_value(got, "Message-ID"), mid)
        # Reading it marked it \Seen on the server; the other one is still unseen.
        m = self.imaps()
        self.select(m, readonly=True)
        r = self.fetch(m, "1:*", "(FLAGS ENVELOPE)")
        flags = {text(v["ENVELOPE"][9]): flag_set(v["FLAGS"]) for v in r.values()}
        self.assertEqual(len(flags), 2, flags)
        self.assertEqual(flags.pop(mid), {"\\Seen"}, conversation())
        self.assertEqual(list(flags.values()), [set()], conversation())


if __name__ == "__main__":
    unittest.main()
