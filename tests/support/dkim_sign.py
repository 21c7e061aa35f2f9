#!/usr/bin/python3
"""Signs a message with dkimpy (Debian's python3-dkim), an implementation independent of
postern's.  Usage: dkim_sign.py ALGORITHM CANON DOMAIN SELECTOR MESSAGE_FILE OUT_FILE
[KEY_PEM], ALGORITHM rsa-sha256 or ed25519-sha256, CANON e.g. relaxed/simple; without KEY_PEM
(an RSA or Ed25519 private key) it makes a key.  Writes the signed message to OUT_FILE and
prints the key's TXT record."""
import base64
import os
import subprocess
import sys
import tempfile

import dkim
import nacl.signing

if len(sys.argv) not in (7, 8):
    sys.exit(2)
algorithm, canon, domain, selector, message_file, out_file = sys.argv[1:7]
key_pem = sys.argv[7] if len(sys.argv) == 8 else None
header_canon, _, body_canon = canon.partition("/")
with open(message_file, "rb") as f:
    message = f.read()

def openssl_der(*args):
    return subprocess.run(["openssl", "pkey", "-in", key_pem, "-outform", "DER"] + list(args),
                          check=True, capture_output=True).stdout


if key_pem and algorithm == "ed25519-sha256":
    private = base64.b64encode(openssl_der()[-32:])  # the seed ends the PKCS#8 form
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(openssl_der("-pubout")[-32:]).decode()
elif key_pem:
    with open(key_pem, "rb") as f:
        private = f.read()
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(openssl_der("-pubout")).decode()
elif algorithm == "ed25519-sha256":
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode()
else:
    with tempfile.TemporaryDirectory() as d:
        pem = os.path.join(d, "k.pem")
        subprocess.run(["openssl", "genrsa", "-out", pem, "2048"], check=True,
                       capture_output=True)
        with open(pem, "rb") as f:
            private = f.read()
        der = subprocess.run(["openssl", "rsa", "-in", pem, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

sig = dkim.sign(message, selector.encode(), domain.encode(), private,
                canonicalize=(header_canon.encode(), (body_canon or "simple").encode()),
                signature_algorithm=algorithm.encode(),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
with open(out_file, "wb") as f:
    f.write(sig + message)
print(record)
