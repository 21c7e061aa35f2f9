#!/usr/bin/env python3
"""The IMAP server over real sockets: STARTTLS and LOGINDISABLED, IDLE woken by an SMTP
delivery, UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ across a restart, zero-access with sessions (no
plaintext in the data directory after APPEND, the account's keys gone after logout), and the
session limits (login deadline, over-long lines).

    python3 tests/integration/test_imap.py --postern build/debug/src/cli/postern
"""

import imaplib
import os
import re
import socket
import ssl
import time
import unittest

import postern_harness as h

BINARY, _ = h.parse_args()


def imaps(inst):
    return imaplib.IMAP4_SSL("127.0.0.1", inst.imaps_port, ssl_context=h.insecure_tls_context(),
                             timeout=30)


def deliver(inst, subject, body, rcpt=None):
    with h.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        msg = "From: a@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (
            rcpt or inst.account, subject, body)
        s.sendmail("a@example.org", [rcpt or inst.account], msg.encode())


def read_line(sock):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


class Imap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = h.Instance(BINARY, prefix="postern-imap-")
        cls.log = os.path.join(cls.inst.root, "server.log")
        cls.inst.set_config("level = 'info'", "level = 'debug'")
        cls.inst.set_config("login_timeout_seconds = 60", "login_timeout_seconds = 3")
        cls.inst.set_log_file(cls.log)
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()
        reports = cls.inst.sanitizer_reports()
        cls.inst.close()
        if reports:
            raise AssertionError("sanitizer reports:\n" + reports)

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def test_a_starttls_and_logindisabled(self):
        s = h.connect(self.inst.imap_port)
        f = s.makefile("rb")
        greeting = f.readline().decode()
        self.assertIn("STARTTLS", greeting)
        self.assertIn("LOGINDISABLED", greeting)
        s.sendall(b"a LOGIN %s %s\r\n" % (self.inst.account.encode(), self.inst.password.encode()))
        self.assertTrue(f.readline().startswith(b"a NO [PRIVACYREQUIRED]"))
        # A command pipelined behind STARTTLS must not be executed inside TLS.
        s.sendall(b"b STARTTLS\r\nc CAPABILITY\r\n")
        self.assertTrue(f.readline().startswith(b"b OK"))
        tls = h.insecure_tls_context().wrap_socket(s, server_hostname="mail.example.test")
        tls.settimeout(10)
        tls.sendall(b"d NOOP\r\n")
        first = read_line(tls)
        self.assertTrue(first.startswith("d OK"), first)
        tls.sendall(b"e CAPABILITY\r\n")
        caps = read_line(tls)
        self.assertIn("AUTH=PLAIN", caps)
        self.assertNotIn("LOGINDISABLED", caps)
        read_line(tls)
        tls.sendall(b"f LOGIN %s %s\r\n" % (self.inst.account.encode(),
                                             self.inst.password.encode()))
        self.assertTrue(read_line(tls).startswith("f OK"))
        tls.close()

    def test_b_idle_sees_smtp_delivery(self):
        m = imaps(self.inst)
        m.login(self.inst.account, self.inst.password)
        typ, data = m.select("INBOX")
        before = int(data[0])
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        self.assertTrue(m.readline().startswith(b"+"))
        start = time.monotonic()
        deliver(self.inst, "idle test", "woken")
        line = m.readline()
        self.assertEqual(line.strip(), b"* %d EXISTS" % (before + 1))
        self.assertLess(time.monotonic() - start, 5)
        m.send(b"DONE\r\n")
        self.assertTrue(m.readline().startswith(tag + b" OK"))
        typ, data = m.fetch(str(before + 1), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"Subject: idle test", data[0][1])
        m.logout()

    def test_c_state_survives_restart(self):
        m = imaps(self.inst)
        m.login(self.inst.account, self.inst.password)
        m.create("Persist")
        for i in range(3):
            m.append("Persist", r"(\Seen)", None, b"Subject: p%d\r\n\r\nbody\r\n" % i)
        m.select("Persist")
        m.store("2", "+FLAGS", r"(\Flagged)")
        m.store("3", "+FLAGS", r"(\Deleted)")
        m.expunge()
        typ, st = m.status("Persist", "(UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)")
        m.logout()
        self.inst.stop()
        self.inst.start()
        m = imaps(self.inst)
        m.login(self.inst.account, self.inst.password)
        typ, st2 = m.status("Persist", "(UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)")
        self.assertEqual(st, st2)
        self.assertIn(b"UIDNEXT 4", st2[0])
        self.assertIn(b"MESSAGES 2", st2[0])
        m.select("Persist")
        typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
        self.assertEqual(len(data), 2)
        self.assertIn(b"\\Flagged", data[1])
        m.logout()

    def test_d_zero_access_with_sessions(self):
        marker_subject = "ZZSUBJ" + os.urandom(6).hex()
        marker_body = "ZZBODY" + os.urandom(6).hex()
        m = imaps(self.inst)
        m.login(self.inst.account, self.inst.password)
        msg = "Subject: %s\r\nFrom: me@example.test\r\n\r\n%s\r\n" % (marker_subject, marker_body)
        typ, data = m.append("Sent", None, None, msg.encode())
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"APPENDUID \d+ \d+")
        m.select("Sent")
        typ, found = m.search(None, "BODY", marker_body)
        self.assertNotEqual(found[0], b"")
        self.assertRegex(self.log_text(), r"imap\.keys\.live accounts=1")
        m.logout()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            last = re.findall(r"imap\.keys\.live accounts=(\d+)", self.log_text())[-1]
            if last == "0":
                break
            time.sleep(0.05)
        self.assertEqual(last, "0", "the account's keys stay in memory after logout")
        for root, _, files in os.walk(self.inst.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for marker in (marker_subject, marker_body):
                    self.assertNotIn(marker.encode(), data, os.path.join(root, name))
        log = self.log_text()
        self.assertNotIn(marker_subject, log)
        self.assertNotIn(self.inst.password, log)

    def test_e_login_deadline_and_long_line(self):
        s = h.connect(self.inst.imap_port)
        f = s.makefile("rb")
        f.readline()
        s.settimeout(15)
        start = time.monotonic()
        self.assertTrue(f.readline().startswith(b"* BYE"))
        self.assertLess(time.monotonic() - start, 10)
        s.close()
        s = h.connect(self.inst.imap_port)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"x " + b"A" * 70000 + b"\r\n")
        self.assertTrue(f.readline().startswith(b"x BAD"))
        self.assertEqual(f.readline().strip(), b"* BYE Closing")
        s.close()

    def test_f_two_clients_see_changes(self):
        a = imaps(self.inst)
        b = imaps(self.inst)
        for m in (a, b):
            m.login(self.inst.account, self.inst.password)
        deliver(self.inst, "shared", "x")
        a.select("INBOX")
        b.select("INBOX")
        typ, data = a.search(None, "SUBJECT", "shared")
        n = data[0].split()[-1]
        a.store(n, "+FLAGS", r"(\Flagged)")
        typ, data = b.noop()
        untagged = b"".join(x for x in b.untagged_responses.get("FETCH", []) if x)
        self.assertIn(b"\\Flagged", untagged)
        a.logout()
        b.logout()

    def test_g_quota(self):
        r = self.inst.run_cli(["user", "--config", self.inst.config, "quota", self.inst.account,
                               "1"], check=True)
        self.assertIn("quota 1 bytes", r.stdout)
        try:
            with h.SMTP("127.0.0.1", self.inst.port, timeout=30) as s:
                s.ehlo()
                s.mail("a@example.org")
                code, text = s.rcpt(self.inst.account)
                self.assertEqual(code, 452, text)
                self.assertIn(b"4.2.2", text)
            m = imaps(self.inst)
            m.login(self.inst.account, self.inst.password)
            typ, caps = m.capability()
            self.assertIn(b"QUOTA=RES-STORAGE", caps[0])
            typ, data = m.append("Sent", None, None, b"Subject: q\r\n\r\nx\r\n")
            self.assertEqual(typ, "NO")
            self.assertIn(b"OVERQUOTA", data[0])
            m.logout()
        finally:
            self.inst.run_cli(["user", "--config", self.inst.config, "quota", self.inst.account,
                               "0"], check=True)
        listing = self.inst.run_cli(["user", "--config", self.inst.config, "list"],
                                    check=True).stdout
        self.assertRegex(listing, re.escape(self.inst.account) + r" \d+ bytes\n")


if __name__ == "__main__":
    unittest.main()
