#!/usr/bin/env python3
"""The command line: exit codes (docs/operations.md), config errors naming file:line, account
administration with passwords on stdin, recovery, deletion (crypto-shredding), aliases, and
the privilege drop of `serve`.

    python3 tests/integration/test_cli.py --postern build/debug/src/cli/postern
"""

import os
import pwd
import subprocess
import unittest

import postern_harness as h

BINARY, _ = h.parse_args()


class Cli(unittest.TestCase):
    def setUp(self):
        self.inst = h.Instance(BINARY, prefix="postern-cli-")

    def tearDown(self):
        self.inst.close()

    def cli(self, *args, input=None):
        return self.inst.run_cli(list(args), input=input)

    def test_version_and_help(self):
        r = self.cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^postern \d+\.\d+\.\d+")
        self.assertEqual(self.cli("--help").returncode, 0)
        self.assertEqual(self.cli("no-such-command").returncode, 2)

    def test_quickstart_refuses_existing_config(self):
        r = self.cli("quickstart", "--domain", "example.test", "--data", self.inst.data_dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("exists already", r.stderr)
        r = self.cli("quickstart", "--domain", "not a domain", "--data", self.inst.root + "/x")
        self.assertEqual(r.returncode, 2)

    def test_config_error_names_file_and_line(self):
        bad = os.path.join(self.inst.root, "bad.toml")
        with open(bad, "w") as f:
            f.write("[server]\ndata_dir = '/tmp'\n[smtp]\nmax_recipients = 'many'\n")
        r = self.cli("serve", "--config", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn(bad + ":4:", r.stderr)
        self.assertIn("smtp.max_recipients must be an integer", r.stderr)
        with open(bad, "w") as f:
            f.write("[server]\ndata_dir = '/tmp'\ntypo = 1\n")
        r = self.cli("user", "list", "--config", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown key 'server.typo'", r.stderr)

    def test_dkim_keys_made_shown_and_rotated(self):
        import base64
        import re
        shown = self.cli("dkim", "--config", self.inst.config, "show").stdout.splitlines()
        self.assertEqual(sorted(shown), sorted(self.inst.info["dkim"]))
        self.assertEqual(len(shown), 2)
        line = re.compile(r'^(s\d{8}(?:n\d+)?[er])\._domainkey\.example\.test\. IN TXT '
                          r'((?:"[^"]{1,255}" ?)+)$')
        for text in shown:
            m = line.match(text)
            self.assertIsNotNone(m, text)
            record = "".join(re.findall(r'"([^"]*)"', m.group(2)))
            p = base64.b64decode(record.split("p=")[1])
            if m.group(1).endswith("e"):
                self.assertIn("k=ed25519", record)
                self.assertEqual(len(p), 32)
            else:
                self.assertIn("k=rsa", record)
                self.assertEqual(p[0], 0x30)  # SubjectPublicKeyInfo
                self.assertGreater(len(p), 290)  # RSA-2048
        r = self.cli("dkim", "--config", self.inst.config, "rotate", "example.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = r.stdout.splitlines()
        self.assertEqual(len(new), 2)
        self.assertFalse(set(new) & set(shown))  # new selectors, never reused
        after = self.cli("dkim", "--config", self.inst.config, "show", "example.test").stdout
        self.assertEqual(sorted(after.splitlines()), sorted(shown + new))
        self.assertEqual(self.cli("dkim", "--config", self.inst.config, "rotate",
                                  "nowhere.test").returncode, 4)

    def test_account_lifecycle(self):
        cfg = self.inst.config
        r = self.cli("user", "add", "--config", cfg, "carol@example.test", input="first pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        recovery = r.stdout.split("recovery key ")[1].split()[0]
        self.assertIn("carol@example.test", self.cli("user", "list", "--config", cfg).stdout)
        # Duplicate, unknown domain, empty password: usage errors.
        self.assertEqual(self.cli("user", "add", "--config", cfg, "carol@example.test",
                                  input="x\n").returncode, 2)
        self.assertEqual(self.cli("user", "add", "--config", cfg, "d@nowhere.test",
                                  input="x\n").returncode, 4)
        self.assertEqual(self.cli("user", "add", "--config", cfg, "e@example.test",
                                  input="\n").returncode, 2)
        # Reading mail needs the right password.
        self.assertEqual(self.cli("mail", "list", "--config", cfg, "carol@example.test",
                                  input="wrong\n").returncode, 3)
        self.assertEqual(self.cli("mail", "list", "--config", cfg, "carol@example.test",
                                  input="first pw\n").returncode, 0)
        # Password change, then recovery after "forgetting" it.
        self.assertEqual(self.cli("user", "passwd", "--config", cfg, "carol@example.test",
                                  input="wrong\nsecond\n").returncode, 3)
        self.assertEqual(self.cli("user", "passwd", "--config", cfg, "carol@example.test",
                                  input="first pw\nsecond\n").returncode, 0)
        self.assertEqual(self.cli("mail", "list", "--config", cfg, "carol@example.test",
                                  input="first pw\n").returncode, 3)
        r = self.cli("user", "passwd", "--recovery", "--config", cfg, "carol@example.test",
                     input=recovery + "\nthird\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.cli("mail", "list", "--config", cfg, "carol@example.test",
                                  input="third\n").returncode, 0)
        # Deletion destroys the keys: the account is gone.
        self.assertEqual(self.cli("user", "delete", "--config", cfg,
                                  "carol@example.test").returncode, 0)
        self.assertEqual(self.cli("mail", "list", "--config", cfg, "carol@example.test",
                                  input="third\n").returncode, 4)
        self.assertNotIn("carol@", self.cli("user", "list", "--config", cfg).stdout)

    def test_domain_and_alias_delivery(self):
        cfg = self.inst.config
        self.assertEqual(self.cli("domain", "add", "--config", cfg, "Second.Test").returncode, 0)
        self.assertEqual(self.cli("alias", "add", "--config", cfg, "info@second.test",
                                  self.inst.account).returncode, 0)
        self.assertEqual(self.cli("alias", "add", "--config", cfg, self.inst.account,
                                  self.inst.account).returncode, 2)
        self.inst.start()
        with self.inst.smtp() as s:
            s.sendmail("a@example.org", ["info@second.test"],
                       "Subject: via alias\r\nMessage-ID: <alias@test>\r\n\r\nhi\r\n")
        self.inst.stop()
        subjects = [m["subject"] for m in self.inst.mail_list()]
        self.assertEqual(subjects, ["via alias"])
        msg = self.inst.message(1)
        self.assertIn("Delivered-To: info@second.test\r\n", msg)

    def test_unreferenced_blobs_are_reported_and_swept(self):
        self.inst.start()
        with self.inst.smtp() as s:
            s.sendmail("a@example.org", [self.inst.account], "Subject: kept\r\n\r\nx\r\n")
        self.inst.stop()
        blobs = os.path.join(self.inst.data_dir, "blobs")
        bucket = sorted(os.listdir(blobs))[0]
        orphan = os.path.join(blobs, bucket, "orphanorphanorphan")  # as a crash leaves one
        with open(orphan, "wb") as f:
            f.write(b"ciphertext")
        r = self.inst.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 messages, 0 missing blobs, 1 unreferenced blobs", r.stdout)
        self.inst.start()
        self.inst.stop()
        self.assertFalse(os.path.exists(orphan))
        self.assertIn("0 unreferenced blobs", self.inst.check().stdout)
        self.assertEqual([m["subject"] for m in self.inst.mail_list()], ["kept"])

    @unittest.skipUnless(os.geteuid() == 0, "the privilege drop needs root")
    def test_serve_drops_privileges(self):
        nobody = pwd.getpwnam("nobody")
        subprocess.run(["chown", "-R", "%d:%d" % (nobody.pw_uid, nobody.pw_gid),
                        self.inst.data_dir], check=True)
        # The temp root itself must be reachable by nobody.
        os.chmod(self.inst.root, 0o755)
        self.inst.set_config("run_as_user = ''", "run_as_user = 'nobody'")
        self.inst.start()
        with open("/proc/%d/status" % self.inst.proc.pid) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        self.assertEqual(set(int(u) for u in uids), {nobody.pw_uid})
        with self.inst.smtp() as s:
            s.sendmail("a@example.org", [self.inst.account], "Subject: as nobody\r\n\r\nx\r\n")
        self.inst.stop()
        self.assertEqual([m["subject"] for m in self.inst.mail_list()], ["as nobody"])


if __name__ == "__main__":
    unittest.main()
