#!/usr/bin/python3
"""Verifies a DKIM-signed message with dkimpy (Debian's python3-dkim), an implementation
independent of postern's.  Usage: dkim_verify.py MESSAGE_FILE RECORDS; exit 0 when every
signature verifies, 1 when one does not (or there is none), 2 on usage errors.  RECORDS is a
file holding one TXT record, served for any <selector>._domainkey name, or a .json file mapping
"<selector>._domainkey.<domain>" to its record.  Prints "pass|fail a=ALG s=SELECTOR" per
signature."""
import json
import re
import sys

import dkim

if len(sys.argv) != 3:
    sys.exit(2)
with open(sys.argv[1], "rb") as f:
    message = f.read()
with open(sys.argv[2], "rb") as f:
    raw = f.read()
records = json.loads(raw) if sys.argv[2].endswith(".json") else None


def dns(name, timeout=5):
    if records is None:
        return raw
    key = name.decode() if isinstance(name, bytes) else name
    return records.get(key.rstrip(".").lower(), "").encode() or None


d = dkim.DKIM(message)
sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
if not sigs:
    sys.exit(1)
ok = True
for i, (_, value) in enumerate(sigs):
    tags = dict(re.findall(rb"\s*([a-z]+)\s*=\s*([^;]*)", value))
    good = d.verify(idx=i, dnsfunc=dns)
    ok = ok and good
    print("%s a=%s s=%s" % ("pass" if good else "fail", tags.get(b"a", b"?").decode().strip(),
                            tags.get(b"s", b"?").decode().strip()))
sys.exit(0 if ok else 1)
