#!/usr/bin/env python3
"""Inbound mail authentication end to end: SPF, DKIM and DMARC checked by the real server on
its MX port, with every sender domain published in the DNSSEC-signed test world (tests/world).
Messages signed by dkimpy and by the npm mailauth library (Ed25519 and RSA) pass; a changed
byte fails; each combination of SPF/DKIM outcome and DMARC policy is delivered, refused or
filed in Junk as RFC 7489 says; ambiguous authors are refused; forged Authentication-Results
are removed and ours added.

    python3 tests/integration/test_mailauth.py --postern build/debug/src/cli/postern

Needs nsd, ldnsutils, openssl, python3-dkim and Node.js (scripts/install-deps installs them;
npm ci runs here for mailauth).
"""

import email
import email.message
import email.policy
import gzip
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
import xml.etree.ElementTree as ET

import postern_harness as h

sys.path.insert(0, os.path.join(h.REPO_ROOT, "tests", "world"))
from dnsworld import DnsWorld  # noqa: E402

BINARY, _ = h.parse_args()
MAILAUTH_DIR = os.path.join(h.REPO_ROOT, "tests", "interop", "mailauth")
DKIM_SIGN = os.path.join(h.REPO_ROOT, "tests", "support", "dkim_sign.py")
CLIENT = "127.0.0.1"  # where the test's SMTP client connects from


def txt(name, text):
    """A zone-file TXT record, split into 255-byte character-strings."""
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return "%s TXT %s" % (name, " ".join('"%s"' % p for p in parts))


def openssl(*args):
    return subprocess.run(["openssl"] + list(args), check=True, capture_output=True).stdout


class MailAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = cls.world = None
        try:
            cls.start_all()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_all(cls):
        cls.tmp = tempfile.mkdtemp(prefix="postern-mailauth-")
        cls.keys = {}
        records = {}
        for name, alg in (("ed", "ed25519"), ("rsa", "rsa")):
            path = os.path.join(cls.tmp, name + ".pem")
            if alg == "ed25519":
                openssl("genpkey", "-algorithm", "ed25519", "-out", path)
            else:
                openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", path)
            cls.keys[name] = path
            # dkim_sign.py prints the record of the key it is given.
            probe = os.path.join(cls.tmp, "probe.eml")
            with open(probe, "wb") as f:
                f.write(b"From: a@signed.test\r\n\r\nx\r\n")
            records[name] = cls.dkimpy_sign(probe, name, "signed.test", name)[1]
        cls.world = DnsWorld(os.path.join(cls.tmp, "dns"))
        dkim = [txt("%s._domainkey" % n, records[n]) for n in records]
        cls.world.zone("signed.test", records=[
            txt("@", "v=spf1 ip4:127.0.0.99 -all"),
            txt("_dmarc", "v=DMARC1; p=reject; sp=quarantine"),
            "news A 127.0.0.99"] + dkim)
        cls.world.zone("spfpass.test", records=[
            txt("@", "v=spf1 ip4:%s -all" % CLIENT), txt("bounce", "v=spf1 ip4:%s -all" % CLIENT),
            txt("_dmarc", "v=DMARC1; p=reject")])
        cls.world.zone("include.test", records=[
            txt("@", "v=spf1 include:spfpass.test -all"), txt("_dmarc", "v=DMARC1; p=reject")])
        cls.world.zone("quarantine.test", records=[
            txt("@", "v=spf1 -all"), txt("_dmarc", "v=DMARC1; p=quarantine")])
        cls.world.zone("monitor.test", records=[
            txt("@", "v=spf1 -all"), txt("_dmarc", "v=DMARC1; p=none")])
        cls.world.zone("nodmarc.test", records=[txt("@", "v=spf1 -all")])
        # pct=0: every message is outside the sample, so p=reject becomes quarantine.
        cls.world.zone("sampled.test", records=[
            txt("@", "v=spf1 -all"), txt("_dmarc", "v=DMARC1; p=reject; pct=0")])
        cls.world.zone("thirdparty.test", records=dkim)  # signs for others, no alignment
        cls.world.zone("strict.test", records=[
            txt("@", "v=spf1 -all"), txt("bounce", "v=spf1 ip4:%s -all" % CLIENT),
            txt("_dmarc", "v=DMARC1; p=reject; adkim=s; aspf=s")] + dkim)
        cls.world.zone("softfail.test", records=[txt("@", "v=spf1 ~all")])
        cls.world.zone("bogus.test", bogus=True, records=[
            txt("@", "v=spf1 -all"), txt("_dmarc", "v=DMARC1; p=reject")])
        # DMARC aggregate reports: reports.test asks for them at our demo account, and
        # example.test (ours) authorises that (RFC 7489 7.1); unauth.test asks without it.
        cls.inst = h.Instance(BINARY, prefix="postern-mailauth-", mailauth=True)
        rua = "v=DMARC1; p=quarantine; rua=mailto:%s" % cls.inst.account
        cls.world.zone("reports.test", records=[
            txt("@", "v=spf1 ip4:%s -all" % CLIENT), txt("_dmarc", rua)])
        cls.world.zone("unauth.test", records=[
            txt("@", "v=spf1 ip4:%s -all" % CLIENT), txt("_dmarc", rua)])
        cls.world.zone("example.test", records=[
            txt("reports.test._report._dmarc", "v=DMARC1")])
        cls.world.start()

        cls.inst.use_dns_world(cls.world)
        cls.inst.set_key("queue", "scan_interval_ms", "200")
        cls.inst.start()
        cls.hostname = cls.config_value("server", "hostname")

    @classmethod
    def config_value(cls, table, key):
        section = None
        with open(cls.inst.config) as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif section == table and line.startswith(key + " = "):
                    return line.split(" = ", 1)[1].strip("'\"")
        raise AssertionError("no %s.%s" % (table, key))

    @classmethod
    def tearDownClass(cls):
        for part in (cls.inst, cls.world):
            try:
                if part is not None:
                    part.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print("teardown:", e, file=sys.stderr)
        if cls.inst is not None:
            cls.inst.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- signing with the independent implementations ----------------------------------

    @classmethod
    def dkimpy_sign(cls, path, key, domain, selector, canon="relaxed/relaxed"):
        algorithm = "ed25519-sha256" if key == "ed" else "rsa-sha256"
        out = path + ".signed"
        r = subprocess.run(["/usr/bin/python3", DKIM_SIGN, algorithm, canon, domain, selector,
                            path, out, cls.keys[key]], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("dkim_sign.py: " + r.stderr)
        with open(out, "rb") as f:
            signed = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return signed, r.stdout.strip()

    @classmethod
    def mailauth_sign(cls, path, key, domain, selector, canon="relaxed/relaxed"):
        if not os.path.isdir(os.path.join(MAILAUTH_DIR, "node_modules", "mailauth")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=MAILAUTH_DIR,
                           check=True, capture_output=True, timeout=600)
        out = path + ".signed"
        r = subprocess.run(["node", "sign.mjs", cls.keys[key], domain, selector, canon, path,
                            out], cwd=MAILAUTH_DIR, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("mailauth sign: " + r.stdout + r.stderr)
        with open(out, "rb") as f:
            return f.read()

    # -- helpers -----------------------------------------------------------------------

    def message(self, from_addr, extra_headers=""):
        """A message with a unique subject (the key to find it again)."""
        subject = "t-" + uuid.uuid4().hex[:12]
        text = ("From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\n"
                "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@test>\r\n%s\r\n"
                "Hello,\r\nthis is a test of inbound authentication.\r\n" %
                (from_addr, self.inst.account, subject, subject, extra_headers))
        return subject, text.encode()

    def write(self, data):
        path = os.path.join(self.tmp, uuid.uuid4().hex + ".eml")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def send(self, mail_from, data):
        """(code, reply text) of the end of data; 250 for accepted."""
        with smtplib.SMTP(CLIENT, self.inst.port, timeout=60) as s:
            s.ehlo("client.test")
            try:
                s.sendmail(mail_from, [self.inst.account], data)
                return 250, ""
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode()

    def stored(self, subject, mailbox="INBOX"):
        for m in self.inst.mail_list(mailbox):
            if m["subject"] == subject:
                return self.inst.message(m["uid"], mailbox)
        return None

    def results(self, stored):
        """Our Authentication-Results field, unfolded."""
        head = stored.split("\r\n\r\n", 1)[0].replace("\r\n\t", " ").replace("\r\n ", " ")
        ours = [l for l in head.split("\r\n")
                if l.lower().startswith("authentication-results: " + self.hostname.lower())]
        self.assertEqual(len(ours), 1, head)
        return ours[0]

    def assert_delivered(self, subject, mailbox="INBOX", code=250, reply="", expect=()):
        self.assertEqual(code, 250, reply)
        stored = self.stored(subject, mailbox)
        self.assertIsNotNone(stored, "%s not in %s" % (subject, mailbox))
        ar = self.results(stored)
        for e in expect:
            self.assertIn(e, ar)
        return stored

    # -- tests -------------------------------------------------------------------------

    def test_a_independent_signatures_pass(self):
        for signer in ("dkimpy", "mailauth"):
            for key in ("ed", "rsa"):
                for canon in ("relaxed/relaxed", "simple/simple"):
                    with self.subTest(signer=signer, key=key, canon=canon):
                        subject, data = self.message("ann@signed.test")
                        path = self.write(data)
                        signed = (self.dkimpy_sign(path, key, "signed.test", key, canon)[0]
                                  if signer == "dkimpy" else
                                  self.mailauth_sign(path, key, "signed.test", key, canon))
                        # SPF fails (127.0.0.1 is not allowed): DKIM alone passes DMARC.
                        code, reply = self.send("ann@signed.test", signed)
                        alg = "ed25519-sha256" if key == "ed" else "rsa-sha256"
                        self.assert_delivered(subject, code=code, reply=reply, expect=(
                            "spf=fail", "dkim=pass", "header.d=signed.test", "header.a=" + alg,
                            "dmarc=pass", "header.from=signed.test"))

    def test_b_changed_signed_message_is_refused(self):
        for change in (b"inbound authentication", b"Subject: "):
            subject, data = self.message("ann@signed.test")
            signed, _ = self.dkimpy_sign(self.write(data), "ed", "signed.test", "ed")
            i = signed.index(change) + len(change) - 2
            tampered = signed[:i] + bytes([signed[i] ^ 0x01]) + signed[i + 1:]
            code, reply = self.send("ann@signed.test", tampered)
            self.assertEqual(code, 550, reply)
            self.assertTrue(reply.startswith("5.7.1"), reply)
            self.assertIsNone(self.stored(subject))

    def test_c_policies(self):
        # (From domain, MAIL FROM, expected: mailbox or reply code, enhanced code, A-R parts)
        cases = [
            ("signed.test", "ann@signed.test", 550, "5.7.1", ()),
            ("spfpass.test", "ann@spfpass.test", "INBOX", None,
             ("spf=pass smtp.mailfrom=ann@spfpass.test", "spf=none smtp.helo=client.test",
              "dmarc=pass")),
            ("include.test", "ann@include.test", "INBOX", None, ("spf=pass", "dmarc=pass")),
            # Relaxed alignment: SPF passes for a subdomain of the author's domain.
            ("spfpass.test", "ann@bounce.spfpass.test", "INBOX", None, ("dmarc=pass",)),
            ("quarantine.test", "ann@quarantine.test", "Junk", None, ("dmarc=fail",)),
            ("monitor.test", "ann@monitor.test", "INBOX", None, ("spf=fail", "dmarc=fail")),
            ("sampled.test", "ann@sampled.test", "Junk", None,
             ('dmarc=fail reason="p=reject dis=quarantine (pct)"',)),
            ("nodmarc.test", "ann@nodmarc.test", 550, "5.7.23", ()),
            ("softfail.test", "ann@softfail.test", "INBOX", None, ("spf=softfail", "dmarc=none")),
            ("news.signed.test", "ann@news.signed.test", "Junk", None, ("dmarc=fail",)),
            ("bogus.test", "ann@bogus.test", 451, "4.4.3", ()),
            ("unlisted.test", "ann@unlisted.test", "INBOX", None, ("spf=none", "dmarc=none")),
        ]
        for domain, mail_from, want, enhanced, expect in cases:
            with self.subTest(domain=domain, mail_from=mail_from):
                subject, data = self.message("ann@" + domain)
                code, reply = self.send(mail_from, data)
                if isinstance(want, int):
                    self.assertEqual(code, want, reply)
                    self.assertTrue(reply.startswith(enhanced), reply)
                    self.assertIsNone(self.stored(subject))
                else:
                    self.assert_delivered(subject, want, code, reply, expect)
                    other = "INBOX" if want == "Junk" else "Junk"
                    self.assertIsNone(self.stored(subject, other))

    def test_c2_alignment(self):
        # A valid signature of another domain does not satisfy the author's p=reject.
        subject, data = self.message("ann@signed.test")
        signed, _ = self.dkimpy_sign(self.write(data), "ed", "thirdparty.test", "ed")
        code, reply = self.send("ann@signed.test", signed)
        self.assertEqual(code, 550, reply)
        self.assertIsNone(self.stored(subject))
        # Strict alignment: SPF passing for a subdomain does not count, while a signature of
        # the exact domain does.
        subject, data = self.message("ann@strict.test")
        code, reply = self.send("ann@bounce.strict.test", data)
        self.assertEqual(code, 550, reply)
        subject, data = self.message("ann@strict.test")
        signed, _ = self.dkimpy_sign(self.write(data), "rsa", "strict.test", "rsa")
        code, reply = self.send("ann@bounce.strict.test", signed)
        self.assert_delivered(subject, code=code, reply=reply,
                              expect=("dkim=pass", "header.d=strict.test", "dmarc=pass"))

    def test_d_ambiguous_author_is_refused(self):
        for headers in ("From: a@spfpass.test\r\nFrom: b@spfpass.test\r\n",
                        "From: a@spfpass.test, b@other.test\r\n",
                        "From: undisclosed-recipients:;\r\n",
                        ""):
            with self.subTest(headers=headers):
                data = (headers + "To: %s\r\nSubject: ambiguous\r\n\r\nbody\r\n" %
                        self.inst.account).encode()
                code, reply = self.send("ann@spfpass.test", data)
                self.assertEqual(code, 550, reply)
                self.assertTrue(reply.startswith("5.7.1"), reply)

    def test_e_forged_results_are_removed(self):
        forged = ("Authentication-Results: %s; dkim=pass header.d=bank.test\r\n"
                  "Authentication-Results: elsewhere.test; spf=pass smtp.mailfrom=x@y.test\r\n"
                  % self.hostname.upper())
        subject, data = self.message("ann@spfpass.test", forged)
        code, reply = self.send("ann@spfpass.test", data)
        stored = self.assert_delivered(subject, code=code, reply=reply,
                                       expect=("spf=pass", "dmarc=pass"))
        self.assertNotIn("bank.test", stored)
        self.assertIn("Authentication-Results: elsewhere.test;", stored)

    def test_f_null_sender_checks_helo(self):
        subject, data = self.message("mailer-daemon@spfpass.test")
        with smtplib.SMTP(CLIENT, self.inst.port, timeout=60) as s:
            s.ehlo("spfpass.test")
            s.sendmail("", [self.inst.account], data)
        self.assert_delivered(subject, expect=("spf=pass", "smtp.helo=spfpass.test",
                                               "dmarc=pass"))

    def test_g_dmarc_aggregate_reports(self):
        sent = []
        for mail_from in ("a@reports.test", "b@reports.test", "c@reports.test",
                          "x@nodmarc.test", "y@nodmarc.test", "z@unauth.test"):
            domain = "unauth.test" if "unauth" in mail_from else "reports.test"
            subject, data = self.message("ann@" + domain)
            code, reply = self.send(mail_from, data)
            self.assertEqual(code, 250, reply)
            sent.append(subject)
        time.sleep(1)  # events are recorded just after the reply
        r = self.inst.run_cli(["reports", "dmarc", "--config", self.inst.config, "send",
                               "--all"], check=True)
        self.assertIn("reports 1 unauthorised 1", r.stdout)
        report = h.wait_until("the report in INBOX", lambda: [
            m for m in self.inst.mail_list() if m["subject"].startswith(
                "Report Domain: reports.test Submitter: " + self.hostname)])
        stored = self.inst.message(report[0]["uid"])
        msg = email.message_from_bytes(stored.encode(), policy=email.policy.default)
        self.assertTrue(stored.startswith("Return-Path: <postmaster@example.test>"), stored[:200])
        self.assertIn("DKIM-Signature:", stored)
        parts = [p for p in msg.walk() if p.get_content_type() == "application/gzip"]
        self.assertEqual(len(parts), 1, stored[:2000])
        xml = gzip.decompress(parts[0].get_payload(decode=True))
        self.assertTrue(validates_rfc7489(xml, self.tmp), xml.decode())
        root = ET.fromstring(xml)
        self.assertEqual(root.findtext("policy_published/domain"), "reports.test")
        rows = {(rec.findtext("row/policy_evaluated/disposition"),
                 rec.findtext("row/policy_evaluated/spf")): int(rec.findtext("row/count"))
                for rec in root.findall("record")}
        self.assertEqual(rows, {("none", "pass"): 3, ("quarantine", "fail"): 2})
        # The recorded events are gone once reported.
        r = self.inst.run_cli(["reports", "dmarc", "--config", self.inst.config, "send",
                               "--all"], check=True)
        self.assertIn("events 0 reports 0", r.stdout)

        # Reading reports: ours, and one another receiver sent (tests/vectors/dmarc).
        with open(os.path.join(h.REPO_ROOT, "tests", "vectors", "dmarc",
                               "received-report.xml"), "rb") as f:
            fixture = gzip.compress(f.read())
        subject, data = self.message("ann@spfpass.test")
        mime = email.message.EmailMessage()
        mime["From"] = "noreply@spfpass.test"
        mime["To"] = self.inst.account
        mime["Subject"] = "Report Domain: example.test Submitter: bigmail.test"
        mime.set_content("report attached")
        mime.add_attachment(fixture, maintype="application", subtype="gzip",
                            filename="bigmail.test!example.test!1796169600!1796255999.xml.gz")
        code, reply = self.send("noreply@spfpass.test", mime.as_bytes().replace(b"\n", b"\r\n"))
        self.assertEqual(code, 250, reply)
        show = self.inst.run_cli(["reports", "dmarc", "--config", self.inst.config, "show",
                                  self.inst.account], input=self.inst.password + "\n",
                                 check=True).stdout
        self.assertIn("report bigmail.test 1234567890123456789 domain=example.test p=reject", show)
        self.assertIn("192.0.2.10 count=17 disposition=none dkim=pass spf=pass", show)
        self.assertIn("2001:db8::25 count=3 disposition=reject dkim=fail spf=fail", show)
        self.assertIn("domain=reports.test p=quarantine", show)
        self.assertIn("reports 2 messages 25", show)


def validates_rfc7489(xml, tmp):
    """xmllint against RFC 7489 Appendix C as Debian's libmail-dmarc-perl ships it, without its
    targetNamespace (with it the schema does not compile; reports are sent without one)."""
    with open("/usr/share/perl5/auto/share/dist/Mail-DMARC/rua-schema.xsd") as f:
        schema = f.read().replace('targetNamespace="http://dmarc.org/dmarc-xml/0.1"', "")
    xsd, doc = os.path.join(tmp, "rua.xsd"), os.path.join(tmp, "report.xml")
    with open(xsd, "w") as f:
        f.write(schema)
    with open(doc, "wb") as f:
        f.write(xml)
    r = subprocess.run(["xmllint", "--noout", "--schema", xsd, doc], capture_output=True,
                       text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
    return r.returncode == 0


if __name__ == "__main__":
    unittest.main(verbosity=2)
