#!/usr/bin/env python3
"""A full disk during delivery: the data directory lives on a small tmpfs of its own; once it is
full, DATA gets 452 4.3.1 (never 250), the session survives, nothing partial becomes visible,
and delivery resumes when space is freed. Needs root (mount).

    python3 tests/integration/test_disk_full.py --postern build/debug/src/cli/postern
"""

import os
import shutil
import smtplib
import subprocess
import tempfile
import unittest

import postern_harness as h

BINARY, _ = h.parse_args()


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="postern-full-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", self.root], check=True)
        self.inst = h.Instance(BINARY, root=self.root)
        # The log stays off the full disk.
        self.inst.stderr_path = os.path.join(tempfile.gettempdir(),
                                             "postern-full-%d.log" % os.getpid())

    def tearDown(self):
        self.inst.stop()
        subprocess.run(["umount", self.root], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def fill(self):
        path = os.path.join(self.root, "filler")
        with open(path, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        return path

    def send(self, smtp, subject):
        msg = "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\n%s\r\n" % (subject, subject, ("x" * 76 + "\r\n") * 300)
        try:
            smtp.sendmail("a@example.org", [self.inst.account], msg)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()

    def test_full_disk_gives_452_and_recovers(self):
        self.inst.start()
        with self.inst.smtp() as s:
            self.assertEqual(self.send(s, "before")[0], 250)
            filler = self.fill()
            code, text = self.send(s, "during")
            self.assertEqual(code, 452, text)
            self.assertTrue(text.startswith("4.3.1"), text)
            self.assertEqual(s.noop()[0], 250)  # the session survives
            os.remove(filler)
            self.assertEqual(self.send(s, "after")[0], 250)
        self.inst.stop()
        self.assertEqual(self.inst.check().returncode, 0)
        self.assertEqual([m["subject"] for m in self.inst.mail_list()], ["before", "after"])


if __name__ == "__main__":
    unittest.main()
