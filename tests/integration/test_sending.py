#!/usr/bin/env python3
"""Sending mail end to end: submission (python smtplib, swaks), DKIM signatures checked by
dkimpy and by the npm mailauth library, outbound delivery through the DNSSEC-signed test world
(tests/world) to a real Postfix acting as the remote MX on 127.0.0.5:25, retries after 4xx,
bounces (RFC 3464) into the sender's INBOX read back over IMAP, null MX, bogus DNSSEC, a dead
MX past the queue lifetime, the queue CLI, and queued mail surviving repeated SIGKILL.

    python3 tests/integration/test_sending.py --postern build/debug/src/cli/postern

Needs root (Postfix listens on port 25 and delivers as nobody), Postfix, nsd, ldnsutils,
python3-dkim, swaks and Node.js (scripts/install-deps installs them; npm ci runs here).
"""

import email
import email.policy
import glob
import imaplib
import json
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

import postern_harness as h

sys.path.insert(0, os.path.join(h.REPO_ROOT, "tests", "world"))
sys.path.insert(0, os.path.join(h.REPO_ROOT, "tests", "interop"))
from dnsworld import DnsWorld  # noqa: E402
import mailstack  # noqa: E402

BINARY, _ = h.parse_args()
MX_IP = "127.0.0.5"
DOWN_IP = "127.0.0.9"
MAILAUTH_DIR = os.path.join(h.REPO_ROOT, "tests", "interop", "mailauth")
DKIM_VERIFY = os.path.join(h.REPO_ROOT, "tests", "support", "dkim_verify.py")
LIFETIME = 20


class Sending(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = cls.postfix = cls.world = None
        try:
            cls.start_all()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_all(cls):
        cls.tmp = tempfile.mkdtemp(prefix="postern-send-")
        os.chmod(cls.tmp, 0o755)
        cls.world = DnsWorld(os.path.join(cls.tmp, "dns"))
        cls.world.zone("remote.test", records=["@ MX 10 mx.remote.test.", "mx A " + MX_IP])
        cls.world.zone("implicit.test", records=["@ A " + MX_IP])
        cls.world.zone("nullmx.test", records=["@ MX 0 ."])
        cls.world.zone("down.test", records=["@ MX 10 mx.down.test.", "mx A " + DOWN_IP])
        cls.world.zone("v6.test", records=["@ MX 10 mx.v6.test.", "mx AAAA ::1"])
        cls.world.zone("bogus.test", bogus=True,
                       records=["@ MX 10 mx.bogus.test.", "mx A " + MX_IP])
        cls.world.start()

        # The remote MX: Postfix delivering remote.test and implicit.test into Maildirs.
        cls.vmail = os.path.join(cls.tmp, "vmail")
        os.makedirs(cls.vmail)
        nobody = pwd.getpwnam("nobody")
        os.chown(cls.vmail, nobody.pw_uid, nobody.pw_gid)
        cls.access = os.path.join(cls.tmp, "access")
        with open(cls.access, "w") as f:
            f.write("later@remote.test 451 4.7.1 Try again later\n")
        boxes = ["bob@remote.test", "carol@remote.test", "later@remote.test",
                 "dave@implicit.test", "crash@remote.test", "x@bogus.test", "eve@v6.test"]
        key, cert = os.path.join(cls.tmp, "mx.key"), os.path.join(cls.tmp, "mx.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=mx.remote.test",
                        "-days", "2", "-keyout", key, "-out", cert], check=True,
                       capture_output=True)
        cls.postfix = mailstack.Postfix(cls.tmp, 25, {}, host=MX_IP, hostname="mx.remote.test",
                                        extra_listen=["[::1]:25"], extra_main={
            "inet_protocols": "all",
            "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key,
            "smtpd_tls_security_level": "may", "smtpd_tls_loglevel": "1",
            "relay_domains": "", "transport_maps": "",
            # Postfix wants inet_interfaces on an interface; 127.0.0.5 is only routed to lo.
            # master.cf binds smtpd to 127.0.0.5:25 alone.
            "inet_interfaces": "all",
            "virtual_mailbox_domains": "remote.test, implicit.test, bogus.test, v6.test",
            "virtual_mailbox_base": cls.vmail,
            "virtual_mailbox_maps": "inline:{ " + ", ".join(
                "%s=%s/" % (b, b.replace("@", "_")) for b in boxes) + " }",
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "smtpd_recipient_restrictions":
                "check_recipient_access texthash:%s, permit" % cls.access,
            "message_size_limit": "10240000"})
        cls.postfix.setup()
        cls.postfix.start()

        cls.inst = h.Instance(BINARY, prefix="postern-send-")
        i = cls.inst
        i.use_dns_world(cls.world)
        i.set_config("lifetime_seconds = 432000", "lifetime_seconds = %d" % LIFETIME)
        i.set_config("first_retry_seconds = 300", "first_retry_seconds = 1")
        i.set_config("max_retry_seconds = 14400", "max_retry_seconds = 2")
        i.set_config("scan_interval_ms = 1000", "scan_interval_ms = 200")
        i.set_config("connect_timeout_seconds = 30", "connect_timeout_seconds = 3")
        i.set_config("reply_timeout_seconds = 300", "reply_timeout_seconds = 20")
        cls.log = os.path.join(i.root, "postern.log")
        i.set_log_file(cls.log)
        i.start()
        cls.records = cls.dkim_records()

    @classmethod
    def tearDownClass(cls):
        for part in (cls.inst, cls.postfix, cls.world):
            try:
                if part is not None:
                    part.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print("teardown:", e, file=sys.stderr)
        if getattr(cls, "inst", None) is not None:
            print(cls.inst.sanitizer_reports() or "", file=sys.stderr)
        if os.environ.get("POSTERN_KEEP"):
            print("kept", cls.tmp, getattr(cls.inst, "root", ""), file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    @classmethod
    def dkim_records(cls):
        out = cls.inst.run_cli(["dkim", "--config", cls.inst.config, "show"], check=True).stdout
        records = {}
        for line in out.splitlines():
            name = line.split()[0].rstrip(".").lower()
            records[name] = "".join(re.findall(r'"([^"]*)"', line))
        return records

    def submit(self, rcpts, raw, port=None, user=None, password=None, sender=None):
        with h.SMTP("127.0.0.1", port or self.inst.submission_port, timeout=30) as s:
            s.ehlo("client.example.org")
            s.starttls(context=h.insecure_tls_context())
            s.ehlo("client.example.org")
            s.login(user or self.inst.account, password or self.inst.password)
            return s.sendmail(sender or self.inst.account, rcpts, raw)

    def message(self, subject, to, extra=""):
        return ("From: Demo <%s>\r\nTo: %s\r\nSubject: %s\r\n%s\r\nHello from postern.\r\n"
                ".leading dot line\r\n" % (self.inst.account, to, subject, extra)).encode()

    def maildir(self, box):
        return sorted(glob.glob(os.path.join(self.vmail, box.replace("@", "_"), "new", "*")))

    def delivered(self, box, subject, timeout=60):
        def find():
            for path in self.maildir(box):
                with open(path, "rb") as f:
                    data = f.read()
                if ("Subject: " + subject).encode() in data:
                    return data
            return None
        return h.wait_until("%s in %s's Maildir" % (subject, box), find, timeout)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def inbox_message(self, subject_part, timeout=60):
        """The first INBOX message whose subject contains subject_part, fetched over IMAP."""
        def find():
            for m in self.inst.mail_list():
                if subject_part in m["subject"]:
                    return m
            return None
        h.wait_until("'%s' in the INBOX" % subject_part, find, timeout)
        imap = imaplib.IMAP4("127.0.0.1", self.inst.imap_port)
        imap.starttls(ssl_context=h.insecure_tls_context())
        imap.login(self.inst.account, self.inst.password)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", "SUBJECT", '"%s"' % subject_part)
        uids = data[0].split()
        self.assertTrue(uids, "IMAP SEARCH found no '%s'" % subject_part)
        typ, data = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
        imap.logout()
        return email.message_from_bytes(data[0][1], policy=email.policy.default)

    def bounce_naming(self, address, timeout):
        """The stored text of the first bounce in the INBOX that names `address`."""
        def find():
            for m in self.inst.mail_list():
                if "Undelivered" in m["subject"]:
                    text = self.inst.message(m["uid"])
                    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
                    if "Final-Recipient: rfc822; " + address in text:
                        return text
            return None
        return h.wait_until("a bounce for " + address, find, timeout, 0.5)

    def delivery_status(self, msg):
        """(report fields, [per-recipient fields]) of a DSN parsed by Python's email package."""
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        # Python's parser may add an empty block for the CRLF before the boundary.
        blocks = [b for b in parts[1].get_payload() if len(b.keys())]
        return blocks[0], blocks[1:]

    def verify_dkim(self, data):
        path = os.path.join(self.tmp, "verify.eml")
        with open(path, "wb") as f:
            f.write(data)
        rec = os.path.join(self.tmp, "records.json")
        with open(rec, "w") as f:
            json.dump(self.records, f)
        py = subprocess.run(["/usr/bin/python3", DKIM_VERIFY, path, rec], capture_output=True,
                            text=True, timeout=60)
        self.assertEqual(py.returncode, 0, "dkimpy: " + py.stdout + py.stderr)
        algs = sorted(line.split()[1] for line in py.stdout.splitlines())
        self.assertEqual(algs, ["a=ed25519-sha256", "a=rsa-sha256"], py.stdout)
        if not os.path.isdir(os.path.join(MAILAUTH_DIR, "node_modules")):
            r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=MAILAUTH_DIR,
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        js = subprocess.run(["node", os.path.join(MAILAUTH_DIR, "verify.mjs"), path, rec],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(js.returncode, 0, "mailauth: " + js.stdout + js.stderr)
        self.assertEqual(sorted(l.split()[:2] for l in js.stdout.splitlines()),
                         [["pass", "ed25519-sha256"], ["pass", "rsa-sha256"]], js.stdout)

    # -- tests -----------------------------------------------------------------------------

    def test_a_smtplib_to_postfix_signed_and_fixed(self):
        raw = self.message("smtplib hello", "bob@remote.test",
                           "Bcc: carol@remote.test,\r\n secret@remote.test\r\n")
        refused = self.submit(["bob@remote.test", "carol@remote.test"], raw)
        self.assertEqual(refused, {})
        for box in ("bob@remote.test", "carol@remote.test"):
            data = self.delivered(box, "smtplib hello")
            headers = data.split(b"\n\n", 1)[0]
            self.assertNotIn(b"Bcc:", headers)
            self.assertNotIn(b"secret@remote.test", data)
            self.assertRegex(headers, rb"\nMessage-I[dD]: <[a-z0-9]+@mail\.example\.test>")
            self.assertRegex(headers, rb"\nDate: ")
            # The trace field names postern, not the submitting client's address.
            self.assertIn(b"by mail.example.test (postern) with ESMTPSA", headers)
            self.assertIn(b"\n.leading dot line", data)  # dot-stuffing undone by the MX
            # Postfix adds its own Received and Return-Path; the DKIM signatures survive it.
            self.verify_dkim(data)
        log = self.postfix.log_text()
        self.assertRegex(log, r"postfix/smtpd\[\d+\]: Anonymous TLS connection established")

    def test_b_swaks_implicit_tls_implicit_mx(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                            str(self.inst.submissions_port), "--tlsc", "--auth", "PLAIN",
                            "--auth-user", self.inst.account, "--auth-password", self.inst.password,
                            "--from", self.inst.account, "--to", "dave@implicit.test",
                            "--header", "Subject: swaks implicit", "--body", "via 465"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        data = self.delivered("dave@implicit.test", "swaks implicit")
        self.verify_dkim(data)

    def test_c_sender_authorisation_and_auth_rules(self):
        with h.SMTP("127.0.0.1", self.inst.submission_port, timeout=30) as s:
            s.ehlo("c.example.org")
            code, msg = s.docmd("AUTH PLAIN AGFubkBleGFtcGxlLnRlc3QAcHc=")
            self.assertEqual((code, msg[:6]), (538, b"5.7.11"))
            code, _ = s.docmd("MAIL FROM:<%s>" % self.inst.account)
            self.assertEqual(code, 530)
            s.starttls(context=h.insecure_tls_context())
            s.ehlo("c.example.org")
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login(self.inst.account, "wrong password")
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("nobody@example.test", "whatever")
            s.login(self.inst.account, self.inst.password)
            code, msg = s.docmd("MAIL FROM:<someone@example.test>")
            self.assertEqual((code, msg[:5]), (550, b"5.7.1"))
            code, msg = s.docmd("MAIL FROM:<%s>" % self.inst.account)
            self.assertEqual(code, 250)
            self.assertEqual(s.docmd("RCPT TO:<bob@remote.test>")[0], 250)
            code, msg = s.docmd("RCPT TO:<nosuchuser@example.test>")
            self.assertEqual((code, msg[:5]), (550, b"5.1.1"))
            self.assertEqual(s.docmd("DATA")[0], 354)
            s.send(b"From: ceo@example.test\r\nSubject: spoof\r\n\r\nx\r\n.\r\n")
            code, msg = s.getreply()
            self.assertEqual((code, msg[:5]), (550, b"5.7.1"))
        # An alias of the account may be used as sender and author.
        self.inst.run_cli(["alias", "--config", self.inst.config, "add", "sales@example.test",
                           self.inst.account], check=True)
        raw = ("From: sales@example.test\r\nTo: bob@remote.test\r\nSubject: from alias\r\n\r\n"
               "hi\r\n").encode()
        self.assertEqual(self.submit(["bob@remote.test"], raw, sender="sales@example.test"), {})
        self.delivered("bob@remote.test", "from alias")

    def test_d_temporary_failure_then_delivery(self):
        raw = self.message("retry me", "later@remote.test")
        self.submit(["later@remote.test"], raw)
        h.wait_until("a deferral", lambda: re.search(
            r"queue\.deferred.*later@remote\.test.*451 4\.7\.1", self.log_text()), 30)
        with open(self.access, "w") as f:
            f.write("")
        self.postfix.postfix("reload")
        self.delivered("later@remote.test", "retry me", timeout=30)
        self.assertEqual(len(self.maildir("later@remote.test")), 1)

    def test_e_permanent_failure_bounces_into_inbox(self):
        raw = self.message("to nobody", "nobody@remote.test")
        self.submit(["nobody@remote.test", "bob@remote.test"], raw)
        self.delivered("bob@remote.test", "to nobody")
        dsn = self.inbox_message("Undelivered Mail Returned to Sender")
        report, rcpts = self.delivery_status(dsn)
        self.assertEqual(report["Reporting-MTA"], "dns; mail.example.test")
        self.assertEqual(len(rcpts), 1)
        self.assertEqual(rcpts[0]["Final-Recipient"], "rfc822; nobody@remote.test")
        self.assertEqual(rcpts[0]["Action"], "failed")
        self.assertTrue(rcpts[0]["Status"].startswith("5.1."), rcpts[0]["Status"])
        self.assertEqual(rcpts[0]["Remote-MTA"], "dns; mx.remote.test")
        self.assertIn("Subject: to nobody", str(list(dsn.iter_parts())[2].get_payload()))
        self.assertEqual(dsn["From"].addresses[0].username, "MAILER-DAEMON")

    def test_f_null_mx_and_bogus_dnssec(self):
        self.submit(["x@nullmx.test"], self.message("null mx", "x@nullmx.test"))
        text = self.bounce_naming("x@nullmx.test", 30)
        self.assertIn("Status: 5.1.10", text)
        self.submit(["x@bogus.test"], self.message("bogus zone", "x@bogus.test"))
        h.wait_until("a DNSSEC deferral", lambda: re.search(
            r"queue\.deferred.*x@bogus\.test.*451 4\.4\.3", self.log_text()), 30)
        self.assertEqual(self.maildir("x@bogus.test"), [])

    def test_g_dead_mx_bounces_after_lifetime_and_queue_cli(self):
        self.submit(["y@down.test"], self.message("dead end", "y@down.test"))
        cli = ["queue", "--config", self.inst.config]
        def queued():
            for line in self.inst.run_cli(cli + ["list"], check=True).stdout.splitlines():
                qid = line.split()[0]
                if line.endswith("message(s)"):
                    continue
                show = self.inst.run_cli(cli + ["show", qid]).stdout
                if "recipient: <y@down.test> pending" in show:
                    return qid
            return None
        qid = h.wait_until("the queued message", queued, 10)
        self.inst.run_cli(cli + ["hold", qid], check=True)
        self.assertIn("HELD", self.inst.run_cli(cli + ["list"], check=True).stdout)
        for action in ("release", "retry"):
            self.inst.run_cli(cli + [action, qid], check=True)
        self.assertEqual(self.inst.run_cli(cli + ["show", "nosuchid"]).returncode, 4)
        text = self.bounce_naming("y@down.test", LIFETIME + 40)
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 4.4.1", text)
        self.assertNotEqual(self.inst.run_cli(cli + ["show", qid]).returncode, 0,
                            "message still queued after its lifetime")

    def test_i_requiretls_needs_a_verified_next_hop(self):
        # RFC 8689: the MX (Postfix with a self-signed certificate, no REQUIRETLS) cannot take
        # it; the message is never sent in the clear or to an unverified host, and bounces.
        with h.SMTP("127.0.0.1", self.inst.submission_port, timeout=30) as s:
            s.ehlo("c.example.org")
            s.starttls(context=h.insecure_tls_context())
            s.ehlo("c.example.org")
            self.assertTrue(s.has_extn("requiretls"))
            s.login(self.inst.account, self.inst.password)
            s.sendmail(self.inst.account, ["carol@remote.test"],
                       self.message("must be private", "carol@remote.test"),
                       mail_options=["REQUIRETLS"])
        text = self.bounce_naming("carol@remote.test", LIFETIME + 40)
        self.assertRegex(text, r"Status: (4\.7\.5|5\.7\.30)")
        for path in self.maildir("carol@remote.test"):
            with open(path, "rb") as f:
                self.assertNotIn(b"must be private", f.read())

    def test_j_ipv6_mx(self):
        self.submit(["eve@v6.test"], self.message("over ipv6", "eve@v6.test"))
        self.delivered("eve@v6.test", "over ipv6", timeout=30)
        self.assertRegex(self.postfix.log_text(), r"connect from \S+\[::1\]")

    def test_h_local_recipient_delivered_without_smtp(self):
        before = self.postfix.log_text().count("postfix/smtpd")
        self.submit([self.inst.account], self.message("note to self", self.inst.account))
        h.wait_until("the local delivery", lambda: [
            m for m in self.inst.mail_list() if m["subject"] == "note to self"], 30)
        self.assertEqual(self.postfix.log_text().count("postfix/smtpd"), before)


class QueueCrash(unittest.TestCase):
    """Messages acknowledged by submission survive SIGKILL of postern during delivery: each
    reaches the remote MX (a duplicate is possible when the kill falls between Postfix's 250
    and postern's record of it, RFC 5321 6.1) and none is lost."""

    def test_repeated_sigkill(self):
        Sending.setUpClass.__func__(Sending)  # the same world, Postfix and server
        try:
            s = Sending
            inst = s.inst
            total, kills = 120, 4
            acked = []
            for k in range(kills + 1):
                start = len(acked)
                per_round = total // (kills + 1)
                with h.SMTP("127.0.0.1", inst.submission_port, timeout=30) as c:
                    c.ehlo("crash.example.org")
                    c.starttls(context=h.insecure_tls_context())
                    c.ehlo("crash.example.org")
                    c.login(inst.account, inst.password)
                    for n in range(start, start + per_round):
                        raw = ("From: %s\r\nTo: crash@remote.test\r\nSubject: crash %d\r\n\r\n"
                               "body %d\r\n" % (inst.account, n, n)).encode()
                        c.sendmail(inst.account, ["crash@remote.test"], raw)
                        acked.append(n)
                if k < kills:
                    time.sleep(0.3)
                    inst.kill()
                    inst.start()
            def counts():
                seen = {}
                for path in glob.glob(os.path.join(s.vmail, "crash_remote.test", "new", "*")):
                    with open(path, "rb") as f:
                        m = re.search(rb"Subject: crash (\d+)", f.read())
                    if m:
                        seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
                return seen
            h.wait_until("every acknowledged message at the MX",
                       lambda: len(counts()) == len(acked), 120, 0.5)
            seen = counts()
            lost = [n for n in acked if n not in seen]
            dupes = sum(c - 1 for c in seen.values())
            print("crash test: %d acknowledged, %d delivered, %d lost, %d duplicates, %d kills"
                  % (len(acked), len(seen), len(lost), dupes, kills))
            self.assertEqual(lost, [])
            # Several messages went over one connection (the lane reuses it).
            reused = [int(n) for n in re.findall(r"disconnect from .* mail=(\d+)",
                                                 s.postfix.log_text())]
            print("crash test: most transactions on one connection: %d" % max(reused))
            self.assertGreater(max(reused), 1)
            h.wait_until("an empty queue", lambda: "0 message(s)" in inst.run_cli(
                ["queue", "--config", inst.config, "list"], check=True).stdout, 30)
        finally:
            Sending.tearDownClass.__func__(Sending)


if __name__ == "__main__":
    unittest.main()
