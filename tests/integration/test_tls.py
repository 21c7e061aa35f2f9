#!/usr/bin/env python3
"""STARTTLS hardening, checked with the openssl client: TLS 1.2 and 1.3 only, and in TLS 1.2
only ECDHE key exchange with AEAD ciphers; no compression, no renegotiation.

    python3 tests/integration/test_tls.py --postern build/debug/src/cli/postern
"""

import subprocess
import unittest

import postern_harness as h

BINARY, _ = h.parse_args()


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = h.Instance(BINARY, prefix="postern-tls-")
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()
        cls.inst.close()

    def handshake(self, *args):
        """Runs openssl s_client with STARTTLS; returns (ok, output)."""
        cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect",
               "127.0.0.1:%d" % self.inst.port, "-servername", "mail.example.test"] + list(args)
        r = subprocess.run(cmd, input=b"QUIT\r\n", capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        ok = r.returncode == 0 and "Cipher is (NONE)" not in out and "Cipher is" in out
        return ok, out

    def test_tls13(self):
        ok, out = self.handshake("-tls1_3")
        self.assertTrue(ok, out)
        self.assertIn("TLSv1.3", out)

    def test_tls12_aead_with_ecdhe(self):
        for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
                       "ECDHE-ECDSA-AES256-GCM-SHA384"):
            ok, out = self.handshake("-tls1_2", "-cipher", cipher)
            self.assertTrue(ok, cipher + "\n" + out)
            self.assertIn("Cipher is " + cipher, out)

    def test_tls12_cbc_refused(self):
        for cipher in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA",
                       "ECDHE-ECDSA-AES128-SHA"):
            ok, out = self.handshake("-tls1_2", "-cipher", cipher + ":@SECLEVEL=0")
            self.assertFalse(ok, cipher + " was accepted\n" + out)

    def test_old_protocols_refused(self):
        for proto in ("-tls1", "-tls1_1"):
            ok, out = self.handshake(proto, "-cipher", "DEFAULT:@SECLEVEL=0")
            self.assertFalse(ok, proto + " was accepted\n" + out)

    def test_no_compression_no_client_renegotiation(self):
        ok, out = self.handshake("-tls1_2")
        self.assertTrue(ok, out)
        self.assertIn("Compression: NONE", out)
        # Client-initiated renegotiation: s_client sends one on an "R" line.
        cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect",
               "127.0.0.1:%d" % self.inst.port, "-tls1_2"]
        r = subprocess.run(cmd, input=b"R\n", capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        self.assertIn("RENEGOTIATING", out)  # the client asked...
        self.assertIn("no renegotiation", out)  # ...and the server refused with an alert
        self.assertNotEqual(r.returncode, 0, out)


if __name__ == "__main__":
    unittest.main()
