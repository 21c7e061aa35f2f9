#!/usr/bin/python3
"""Verifies a DKIM-signed message with dkimpy (Debian's python3-dkim), an implementation
independent of postern's.  Usage: dkim_verify.py MESSAGE_FILE TXT_RECORD_FILE; exit 0 when
every signature verifies, 1 when one does not, 2 on usage errors.  The record file is served
for any <selector>._domainkey name the signature asks for."""
import sys

import dkim

if len(sys.argv) != 3:
    sys.exit(2)
with open(sys.argv[1], "rb") as f:
    message = f.read()
with open(sys.argv[2], "rb") as f:
    record = f.read()


def dns(name, timeout=5):
    return record


d = dkim.DKIM(message)
sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
if not sigs:
    sys.exit(1)
ok = all(d.verify(idx=i, dnsfunc=dns) for i in range(len(sigs)))
sys.exit(0 if ok else 1)
