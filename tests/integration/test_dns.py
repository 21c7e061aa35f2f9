#!/usr/bin/env python3
"""postern's validating resolver (libunbound) against the DNSSEC-signed test world
(tests/world/dnsworld.py, nsd on loopback): every answer carries the right status.

    python3 tests/integration/test_dns.py --postern build/debug/src/cli/postern
"""

import os
import subprocess
import sys
import tempfile
import unittest

import postern_harness as h

sys.path.insert(0, os.path.join(h.REPO_ROOT, "tests", "world"))
from dnsworld import DnsWorld  # noqa: E402

BINARY, _ = h.parse_args()


class Dns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.world = DnsWorld(tempfile.mkdtemp(prefix="postern-dns-"))
        cls.world.zone("example.test", records=[
            "@ MX 10 mx.example.test.", "@ MX 20 mx2.example.test.", "mx A 127.0.0.2",
            "mx AAAA ::1", "@ TXT \"v=spf1 \" \"-all\"",
            "_25._tcp.mx TLSA 3 1 1 " + "ab" * 32, "alias CNAME mx.example.test."])
        cls.world.zone("nullmx.test", records=["@ MX 0 ."])
        cls.world.zone("plain.test", secure=False, records=["@ A 127.0.0.3", "@ MX 5 plain.test."])
        cls.world.zone("bad.test", bogus=True, records=["@ A 127.0.0.4"])
        cls.world.start()

    @classmethod
    def tearDownClass(cls):
        cls.world.close()

    def dns(self, name, rtype):
        r = subprocess.run([BINARY, "dns", name, rtype, "--trust-anchor", self.world.trust_anchor,
                            "--forward", "127.0.0.1@%d" % self.world.port,
                            "--option", "do-not-query-localhost:no", "--resolve-zone", "test."],
                           capture_output=True, text=True, timeout=60)
        lines = r.stdout.strip().splitlines()
        self.assertTrue(lines, r.stderr)
        head = dict(kv.split("=", 1) for kv in lines[0].split() if "=" in kv and '"' not in kv)
        return r.returncode, head, sorted(lines[1:])

    def test_secure_records(self):
        rc, head, recs = self.dns("example.test", "MX")
        self.assertEqual((rc, head["security"]), (0, "secure"))
        self.assertEqual(recs, ["MX 10 mx.example.test", "MX 20 mx2.example.test"])
        _, head, recs = self.dns("example.test", "TXT")
        self.assertEqual(recs, ["TXT v=spf1 -all"])  # character-strings joined
        _, head, recs = self.dns("_25._tcp.mx.example.test", "TLSA")
        self.assertEqual((head["security"], recs), ("secure", ["TLSA 3 1 1 " + "ab" * 32]))
        _, head, recs = self.dns("mx.example.test", "AAAA")
        self.assertEqual(recs, ["AAAA ::1"])
        _, head, recs = self.dns("alias.example.test", "A")
        self.assertEqual((head["security"], recs), ("secure", ["A 127.0.0.2"]))

    def test_null_mx(self):
        _, head, recs = self.dns("nullmx.test", "MX")
        self.assertEqual((head["security"], recs), ("secure", ["MX 0 ."]))

    def test_insecure_zone(self):
        rc, head, recs = self.dns("plain.test", "A")
        self.assertEqual((rc, head["security"], recs), (0, "insecure", ["A 127.0.0.3"]))

    def test_bogus_zone_gives_no_data(self):
        rc, head, recs = self.dns("bad.test", "A")
        self.assertEqual((head["security"], recs), ("bogus", []))

    def test_nxdomain_is_proven(self):
        rc, head, recs = self.dns("nope.example.test", "A")
        self.assertEqual((rc, head["rcode"], head["security"], recs), (4, "3", "secure", []))


if __name__ == "__main__":
    unittest.main()
