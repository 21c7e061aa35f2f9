#!/usr/bin/env python3
"""Inbound SMTP delivery against the real binary on loopback.

    python3 tests/integration/test_smtp_delivery.py --postern build/debug/src/cli/postern

(a) smtplib delivers over STARTTLS and in plain text; `mail list` and `mail list --uid` show it
    with Return-Path, Delivered-To and a Received header.
(b) swaks delivers.
(c) RCPT verdicts: unknown local user 550 5.1.1, foreign domain 550 5.7.1, postmaster@domain
    and <postmaster> accepted (and delivered to the postmaster account).
(d) zero-access: a unique marker in Subject and body, and a unique sender, appear in no file of
    the data directory and not in the server log.
(e) max_connections_per_ip = 2: a third concurrent connection is greeted with 421 4.7.0.
(f) command_timeout_seconds = 2: an idle client gets 421 4.4.2 and is disconnected.
(g) `postern check` passes after the server stopped.
"""

import email.message
import email.utils
import os
import secrets
import subprocess
import sys
import signal
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern_harness as harness  # noqa: E402

POSTERN, _ = harness.parse_args()
DOMAIN = "example.test"
DEMO = "demo@" + DOMAIN


def make_message(sender, subject, body, to=DEMO):
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = "<%s@client.test>" % secrets.token_hex(12)
    msg.set_content(body)
    return msg


def unfolded_headers(text):
    """The header section of `text` with folded lines joined, as a list of lines."""
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


class ServerTestCase(unittest.TestCase):
    """Helpers shared by the test classes; `inst` is the class's running instance."""

    inst = None

    def find(self, message_id, count=1):
        entries = [e for e in self.inst.mail_list() if e["message_id"] == message_id]
        self.assertEqual(len(entries), count, "message %s stored %d times, want %d"
                         % (message_id, len(entries), count))
        return entries[0] if count == 1 else entries

    def stop_and_check(self, inst):
        """(g): a graceful stop exits 0 without sanitizer reports, and `postern check` passes."""
        was_running = inst.running()
        rc = inst.stop()
        self.assertTrue(was_running, "server died: " + inst.diagnosis())
        self.assertEqual(rc, 0, "server exit status %s; %s" % (rc, inst.diagnosis()))
        self.assertEqual(inst.sanitizer_reports(), [], inst.diagnosis())
        chk = inst.check()
        self.assertEqual(chk.returncode, 0, "postern check: %s%s" % (chk.stdout, chk.stderr))
        self.assertIn("0 missing blobs", chk.stdout)
        return chk


class DeliveryTests(ServerTestCase):
    """(a), (b), (c) against one server; (g) runs last (test names sort alphabetically)."""

    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance(POSTERN, domain=DOMAIN, prefix="postern-delivery-")
        cls.addClassCleanup(cls.inst.close)
        cls.inst.start()
        cls.delivered = []  # Message-IDs expected in the INBOX at the end

    def deliver_smtplib(self, tls):
        token = secrets.token_hex(8)
        sender = "alice-%s@client.test" % token[:6]
        body = "Hello from smtplib, token %s.\nSecond line.\n" % token
        msg = make_message(sender, "smtplib %s %s" % ("tls" if tls else "plain", token), body)
        with self.inst.smtp() as c:
            code, _ = c.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertTrue(c.has_extn("starttls"), "STARTTLS not offered")
            if tls:
                code, _ = c.starttls(context=harness.insecure_tls_context())
                self.assertEqual(code, 220)
                code, _ = c.ehlo("client.test")
                self.assertEqual(code, 250)
                self.assertFalse(c.has_extn("starttls"), "STARTTLS offered again inside TLS")
            refused = c.send_message(msg, from_addr=sender, to_addrs=[DEMO])
            self.assertEqual(refused, {})
        self.delivered.append(msg["Message-ID"])

        entry = self.find(msg["Message-ID"])
        self.assertEqual(entry["subject"], msg["Subject"])
        text = self.inst.message(entry["uid"])
        self.assertIn("Hello from smtplib, token %s." % token, text)
        self.assertIn("Second line.", text)
        headers = unfolded_headers(text)
        self.assertEqual(headers[0], "Return-Path: <%s>" % sender)
        self.assertIn("Delivered-To: " + DEMO, headers)
        received = [h for h in headers if h.startswith("Received: ")]
        self.assertEqual(len(received), 1, headers)
        self.assertIn("by mail.%s" % DOMAIN, received[0])
        self.assertIn("[127.0.0.1]", received[0])
        self.assertIn("for <%s>" % DEMO, received[0])
        # RFC 3848: ESMTPS when the message came over TLS.
        self.assertIn("with ESMTPS " if tls else "with ESMTP ", received[0])
        self.assertIn("Subject: " + msg["Subject"], headers)
        self.assertEqual(entry["size"], len(text.encode()), "listed size vs message size")

    def test_a1_smtplib_starttls(self):
        self.deliver_smtplib(tls=True)

    def test_a2_smtplib_plain(self):
        self.deliver_smtplib(tls=False)

    def test_b_swaks(self):
        token = secrets.token_hex(8)
        mid = "<swaks-%s@client.test>" % token
        subject = "swaks %s" % token
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.inst.port),
             "--helo", "swaks.client.test", "--from", "bob@client.test", "--to", DEMO,
             "--header", "Subject: " + subject, "--header", "Message-Id: " + mid,
             "--body", "swaks body %s" % token, "--timeout", "20"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "swaks failed:\n" + r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<-  250 2\.0\.0 Ok: queued as \S+")
        self.delivered.append(mid)
        entry = self.find(mid)
        self.assertEqual(entry["subject"], subject)
        text = self.inst.message(entry["uid"])
        self.assertIn("swaks body %s" % token, text)
        self.assertTrue(text.startswith("Return-Path: <bob@client.test>\r\n"), text[:200])
        self.assertIn("Received: from swaks.client.test ([127.0.0.1])", text)

    def test_c_recipients(self):
        with self.inst.smtp() as c:
            c.ehlo("client.test")
            self.assertEqual(c.mail("carol@client.test")[0], 250)
            code, text = c.rcpt("unknown@" + DOMAIN)
            self.assertEqual((code, text.split()[0]), (550, b"5.1.1"), text)
            code, text = c.rcpt("someone@other.test")
            self.assertEqual((code, text.split()[0]), (550, b"5.7.1"), text)
            code, text = c.rcpt("postmaster@" + DOMAIN)
            self.assertEqual(code, 250, text)
            code, text = c.rcpt("postmaster")  # smtplib sends RCPT TO:<postmaster>
            self.assertEqual(code, 250, text)
            c.rset()
        # Both forms deliver to the postmaster account (the demo account).
        for rcpt in ("postmaster@" + DOMAIN, "postmaster"):
            token = secrets.token_hex(6)
            msg = make_message("carol@client.test", "to %s %s" % (rcpt, token), "pm " + token,
                               to="postmaster@" + DOMAIN)
            with self.inst.smtp() as c:
                self.assertEqual(c.send_message(msg, from_addr="carol@client.test",
                                                to_addrs=[rcpt]), {})
            self.delivered.append(msg["Message-ID"])
            entry = self.find(msg["Message-ID"])
            text = self.inst.message(entry["uid"])
            self.assertIn("pm " + token, text)
            self.assertIn("Delivered-To: ", text)
        # A transaction whose only recipients were refused has nothing to deliver.
        with self.inst.smtp() as c:
            c.ehlo("client.test")
            c.mail("carol@client.test")
            c.rcpt("unknown@" + DOMAIN)
            code, _ = c.docmd("DATA")
            self.assertEqual(code // 100, 5, "DATA without an accepted recipient: %d" % code)

    def test_g_check_after_stop(self):
        chk = self.stop_and_check(self.inst)
        listed = [e["message_id"] for e in self.inst.mail_list()]
        for mid in self.delivered:
            self.assertIn(mid, listed)
        self.assertIn("%d messages" % len(listed), chk.stdout)


class ZeroAccessTest(ServerTestCase):
    """(d): no plaintext of the message, nor the sender, on disk or in the log."""

    def test_d_zero_access(self):
        inst = harness.Instance(POSTERN, domain=DOMAIN, prefix="postern-zeroaccess-")
        self.addCleanup(inst.close)
        self.inst = inst
        log_path = os.path.join(inst.root, "postern.log")  # outside the data dir; scanned too
        inst.set_log_file(log_path)
        inst.set_config("level = 'info'", "level = 'debug'")

        marker = "zamark" + secrets.token_hex(16)
        sender = "zasender-%s@sender.test" % secrets.token_hex(10)
        needles = [marker.encode(), sender.encode(), sender.split("@")[0].encode()]
        sent = []

        def deliver(tls):
            body = ("The secret is %s.\n" % marker) * 40
            msg = make_message("Zed <%s>" % sender, "secret %s" % marker, body)
            with inst.smtp() as c:
                c.ehlo("client.test")
                if tls:
                    c.starttls(context=harness.insecure_tls_context())
                    c.ehlo("client.test")
                self.assertEqual(c.send_message(msg, from_addr=sender, to_addrs=[DEMO]), {})
            sent.append(msg)

        def scan(when):
            files = list(harness.files_under(inst.data_dir))
            self.assertIn(os.path.join(inst.data_dir, "postern.db"), files)
            blobs = [f for f in files if os.sep + "blobs" + os.sep in f]
            self.assertGreaterEqual(len(blobs), len(sent), "no blob files? %s" % files)
            hits = harness.grep_files(inst.data_dir, needles)
            self.assertEqual(hits, {}, "plaintext in the data dir (%s)" % when)
            for path in (log_path, inst.stderr_path):
                with open(path, "rb") as f:
                    log = f.read()
                for n in needles:
                    self.assertNotIn(n, log, "plaintext in %s (%s)" % (path, when))
            return files

        # 1. SIGKILL right after delivery: the WAL keeps whatever the transaction wrote.
        inst.start()
        deliver(tls=False)
        inst.kill()
        files = scan("after SIGKILL")
        # 2. A second message over TLS, then a graceful stop (WAL checkpointed into the db).
        inst.start()
        deliver(tls=True)
        self.stop_and_check(inst)
        scan("after stop")
        self.assertTrue(any(f.endswith("postern.db-wal") for f in files),
                        "expected a WAL after SIGKILL: %s" % files)
        with open(log_path) as f:
            self.assertIn("smtp.deliver.ok", f.read(), "the log file was not used")

        # Not vacuous: the messages are there, and readable with the password.
        listed = inst.mail_list()
        self.assertEqual(len(listed), 2)
        for msg in sent:
            entry = self.find(msg["Message-ID"])
            self.assertEqual(entry["subject"], "secret " + marker)
            self.assertIn("The secret is %s." % marker, inst.message(entry["uid"]))


class LimitTests(ServerTestCase):
    """(e) and (f), each on its own server with the limit lowered."""

    def instance(self, *changes):
        """A started server whose config has each (old, new) text replacement applied."""
        inst = harness.Instance(POSTERN, domain=DOMAIN, prefix="postern-limits-")
        self.addCleanup(inst.close)
        for old, new in changes:
            inst.set_config(old, new)
        inst.start()
        self.inst = inst
        return inst

    def converse(self, s, steps):
        """Sends each command and checks the code of its reply."""
        for command, expected in steps:
            s.sendall(command + b"\r\n")
            self.assertEqual(harness.read_reply(s)[0], expected, command)

    def transaction(self, inst, ehlo=True):
        steps = [(b"MAIL FROM:<a@client.test>", 250),
                 (b"RCPT TO:<%s>" % inst.account.encode(), 250), (b"DATA", 354)]
        return ([(b"EHLO client.test", 250)] if ehlo else []) + steps

    def open(self, inst):
        s = harness.connect(inst.port)
        self.addCleanup(s.close)
        return s

    def assert_closed(self, s, timeout=5.0):
        s.settimeout(timeout)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            return
        self.assertEqual(data, b"", "connection still open, got %r" % data)

    def open_greeted(self, inst, timeout=5.0):
        """A connection that got 220. A session that just ended (the readiness probe's) may
        hold its slot for a moment after the client saw it close, so 421 is retried."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.open(inst)
            code, text = harness.read_reply(s)
            if code == 220:
                return s
            s.close()
            if time.monotonic() > deadline:
                self.fail("no 220 greeting: %s" % text)
            time.sleep(0.05)

    def test_e_connections_per_ip(self):
        inst = self.instance(("max_connections_per_ip = 20", "max_connections_per_ip = 2"))
        first = self.open_greeted(inst)
        second = self.open_greeted(inst)
        third = self.open(inst)
        code, text = harness.read_reply(third)
        self.assertEqual(code, 421, text)
        self.assertTrue(text.startswith("421 4.7.0 "), text)
        self.assert_closed(third)
        # The first two still work: refusing a client must not disturb the others.
        for name, s in (("first", first), ("second", second)):
            try:
                s.sendall(b"NOOP\r\n")
                r = harness.read_reply(s)
            except OSError as e:
                r = e
            if not (isinstance(r, tuple) and r[0] == 250):
                time.sleep(1.0)  # let a dying server finish its report
                self.fail("after the 421, NOOP on the %s connection gave %r; %s"
                          % (name, r, inst.diagnosis()))
        # A slot is released when a client leaves.
        first.sendall(b"QUIT\r\n")
        self.assertEqual(harness.read_reply(first)[0], 221)
        self.assert_closed(first)
        self.open_greeted(inst)  # the slot is released
        self.stop_and_check(inst)

    def test_f_idle_timeout(self):
        inst = self.instance(("command_timeout_seconds = 300", "command_timeout_seconds = 2"))
        idle, after_ehlo, partial = self.open(inst), self.open(inst), self.open(inst)
        for s in (idle, after_ehlo, partial):
            self.assertEqual(harness.read_reply(s)[0], 220)
        after_ehlo.sendall(b"EHLO client.test\r\n")
        self.assertEqual(harness.read_reply(after_ehlo)[0], 250)
        partial.sendall(b"MAIL FROM:<slow@client.test")  # never finished
        start = time.monotonic()
        for name, s in (("idle", idle), ("after EHLO", after_ehlo), ("partial line", partial)):
            r = harness.read_reply(s, timeout=15)
            elapsed = time.monotonic() - start
            self.assertIsNotNone(r, "%s: closed without a reply" % name)
            code, text = r
            self.assertEqual(code, 421, "%s: %s" % (name, text))
            self.assertTrue(text.startswith("421 4.4.2 "), "%s: %s" % (name, text))
            self.assertGreater(elapsed, 1.0, "%s: timed out too early" % name)
            self.assertLess(elapsed, 10.0, "%s: timed out too late" % name)
            self.assert_closed(s)
        self.stop_and_check(inst)

    def test_f2_deadline_follows_each_reply(self):
        """The command deadline restarts after every reply, and after a message (whose data
        deadline is much longer) the short command deadline applies again."""
        inst = self.instance(("command_timeout_seconds = 300", "command_timeout_seconds = 2"),
                             ("data_timeout_seconds = 300", "data_timeout_seconds = 60"))
        s = self.open(inst)
        self.assertEqual(harness.read_reply(s)[0], 220)
        for command in (b"EHLO client.test\r\n", b"NOOP\r\n", b"NOOP\r\n"):
            time.sleep(1.2)  # within the deadline each time, beyond it in total
            s.sendall(command)
            self.assertEqual(harness.read_reply(s)[0], 250, command)
        self.converse(s, self.transaction(inst, ehlo=False))
        s.sendall(b"Subject: deadline\r\n\r\nx\r\n.\r\n")
        self.assertEqual(harness.read_reply(s)[0], 250)
        start = time.monotonic()
        r = harness.read_reply(s, timeout=30)
        elapsed = time.monotonic() - start
        self.assertIsNotNone(r)
        self.assertTrue(r[1].startswith("421 4.4.2 "), r)
        self.assertLess(elapsed, 6.0, "the 60 s data deadline outlived the message")
        self.assert_closed(s)
        self.stop_and_check(inst)

    def test_f3_slow_message_keeps_its_session(self):
        """The data deadline is per block: a message that keeps arriving, slowly, is accepted
        even though it takes longer than the deadline in total; silence mid-message is not."""
        inst = self.instance(("data_timeout_seconds = 300", "data_timeout_seconds = 2"))
        s = self.open(inst)
        self.assertEqual(harness.read_reply(s)[0], 220)
        self.converse(s, self.transaction(inst))
        s.sendall(b"Subject: slow\r\n\r\n")
        for i in range(4):  # 4 x 1.2 s: longer than the deadline in total
            time.sleep(1.2)
            s.sendall(b"block %d\r\n" % i)
        s.sendall(b".\r\n")
        self.assertEqual(harness.read_reply(s)[0], 250)
        # Silence in the middle of the next message ends the session.
        self.converse(s, self.transaction(inst, ehlo=False))
        s.sendall(b"Subject: stalled\r\n\r\nhalf")
        r = harness.read_reply(s, timeout=15)
        self.assertIsNotNone(r)
        self.assertTrue(r[1].startswith("421 4.4.2 "), r)
        self.stop_and_check(inst)
        self.assertEqual([m["subject"] for m in inst.mail_list()], ["slow"])

    def test_h_graceful_shutdown(self):
        """SIGTERM: an idle session gets 421 4.3.2 at once, a message being sent may finish
        (250, stored), and the server exits 0 soon after the last session ends."""
        inst = self.instance()
        idle = self.open(inst)
        busy = self.open(inst)
        for s in (idle, busy):
            self.assertEqual(harness.read_reply(s)[0], 220)
        self.converse(busy, self.transaction(inst))
        busy.sendall(b"Subject: in flight\r\n\r\nfirst half\r\n")
        inst.proc.send_signal(signal.SIGTERM)
        r = harness.read_reply(idle, timeout=10)
        self.assertIsNotNone(r)
        self.assertTrue(r[1].startswith("421 4.3.2 "), r)
        self.assert_closed(idle)
        time.sleep(0.5)
        busy.sendall(b"second half\r\n.\r\n")
        self.assertEqual(harness.read_reply(busy, timeout=10)[0], 250)
        r = harness.read_reply(busy, timeout=10)  # then the shutdown notice
        self.assertTrue(r is None or r[1].startswith("421 4.3.2 "), r)
        self.assertEqual(inst.proc.wait(timeout=15), 0)
        self.assertEqual([m["subject"] for m in inst.mail_list()], ["in flight"])


if __name__ == "__main__":
    unittest.main()
