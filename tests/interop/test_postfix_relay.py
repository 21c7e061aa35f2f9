#!/usr/bin/env python3
"""Interop: a real Postfix relays mail to postern over SMTP with STARTTLS.

    python3 tests/interop/test_postfix_relay.py --postern build/debug/src/cli/postern

Starts postern (quickstart config) on a free 127.0.0.1 port and a private
Postfix 3.x instance (own config, queue and data directories in a temporary
directory) whose transport_maps send the postern domain to
[127.0.0.1]:POSTERN_PORT with smtp_tls_security_level = may.  Messages are
submitted to Postfix with smtplib; the test waits until `postern mail list`
shows them, then checks Subject/Message-ID/body, that postern's Received
header says "with ESMTPS" (Postfix used STARTTLS), that Postfix logged
status=sent, and that `postfix stop` leaves no Postfix process behind.

Must run as root (Postfix needs it).  Exit status 0 on success.
Python standard library only.
"""

import argparse
import concurrent.futures
import email.utils
import hashlib
import os
import shutil
import signal
import smtplib
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mailstack  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOMAIN = "interop.test"
SENDER = "alice@sender.postern-interop.test"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def make_messages(account, second, bulk):
    """(envelope recipients, message bytes, subject, message-id, body-check) tuples."""
    msgs = []

    def build(n, subject, rcpts, body, extra=""):
        mid = email.utils.make_msgid(idstring=f"interop{n}", domain="sender.postern-interop.test")
        head = (f"From: Alice <{SENDER}>\r\n"
                f"To: {', '.join(rcpts)}\r\n"
                f"Subject: {subject}\r\n"
                f"Date: {email.utils.formatdate(localtime=False)}\r\n"
                f"Message-ID: {mid}\r\n"
                f"MIME-Version: 1.0\r\n{extra}")
        data = (head + "\r\n" + body).encode("utf-8")
        msgs.append({"rcpts": rcpts, "data": data, "subject": subject, "mid": mid,
                     "body": body})

    build(1, "interop plain 1", [account],
          "Hello from Postfix.\r\nSecond line.\r\n",
          "Content-Type: text/plain; charset=us-ascii\r\n")
    # Lines starting with dots exercise dot-stuffing on both hops.
    build(2, "interop dots 2", [account],
          ".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n",
          "Content-Type: text/plain; charset=us-ascii\r\n")
    # Two local recipients in one transaction.
    build(3, "interop two recipients 3", [account, second],
          "For both of you.\r\n",
          "Content-Type: text/plain; charset=us-ascii\r\n")
    # 8-bit body (Postfix relays it as 8BITMIME).
    build(4, "interop 8bit 4", [account],
          "Grüße aus Köln — ünïcödé body.\r\n",
          "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
    # A large message: many TLS records, several DATA reads.
    line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    big = "".join(f"{i:06d} {line}" for i in range(6000))  # ~480 KB
    build(5, "interop large 5", [account], big,
          "Content-Type: text/plain; charset=us-ascii\r\n")
    for i in range(bulk):
        build(100 + i, f"interop bulk {100 + i}", [account],
              f"Bulk message {i}; Postfix delivers these over parallel TLS sessions.\r\n" * 20,
              "Content-Type: text/plain; charset=us-ascii\r\n")
    return msgs


def body_of(full_text):
    """Body of a message printed by `mail list --uid`, with CRLF line ends."""
    text = full_text.replace("\r\n", "\n")
    sep = text.find("\n\n")
    body = text[sep + 2:] if sep >= 0 else ""
    return body.replace("\n", "\r\n")


def header_blocks(full_text, name):
    """Unfolded values of every header `name` in the message header."""
    text = full_text.replace("\r\n", "\n")
    head = text.split("\n\n", 1)[0]
    out, cur = [], None
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and cur is not None:
            cur += " " + line.strip()
            continue
        if cur is not None:
            out.append(cur)
            cur = None
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            cur = v.strip()
    if cur is not None:
        out.append(cur)
    return out


def wait_for_mail(postern, address, want_mids, timeout):
    deadline = time.monotonic() + timeout
    rows = []
    while True:
        rows = postern.list_mail(address)
        have = {r[2] for r in rows}
        if want_mids <= have:
            return rows
        if time.monotonic() > deadline:
            missing = sorted(want_mids - have)
            raise Failure(f"{address}: messages missing after {timeout}s: {missing}; have {rows}")
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postern", default=os.path.join(REPO, "build/debug/src/cli/postern"),
                    help="postern binary (default: build/debug/src/cli/postern)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for delivery (default 120)")
    ap.add_argument("--bulk", type=int, default=40,
                    help="extra small messages beyond the 5 special ones (default 40)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("SKIP/FAIL: must run as root (private Postfix instance)", file=sys.stderr)
        return 2
    if not shutil.which("postfix"):
        print("FAIL: postfix not installed (scripts/install-deps)", file=sys.stderr)
        return 2
    if not os.access(args.postern, os.X_OK):
        print(f"FAIL: postern binary not executable: {args.postern}", file=sys.stderr)
        return 2

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    work = tempfile.mkdtemp(prefix="postern-interop-")
    mailstack.make_world_traversable(work)
    t0 = time.monotonic()
    postern = postfix = None
    ok = False
    try:
        postern = mailstack.Postern(args.postern, work, DOMAIN, mailstack.free_port())
        postern.create()
        second = f"bob@{DOMAIN}"
        postern.add_user(second, "bob-interop-password-1")
        postern.start()
        print(f"postern pid {postern.pid} on 127.0.0.1:{postern.port}")

        postfix = mailstack.Postfix(
            work, mailstack.free_port(),
            relay={DOMAIN: f"smtp:[127.0.0.1]:{postern.port}"})
        warnings = postfix.setup()
        if warnings.strip():
            print("postfix check said:\n" + warnings)
        postfix.start()
        print(f"postfix master pid {postfix.master_pid()} on 127.0.0.1:{postfix.port}")

        msgs = make_messages(postern.account, second, args.bulk)

        def submit(batch):
            with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as s:
                s.ehlo("client.postern-interop.test")
                for m in batch:
                    refused = s.sendmail(SENDER, m["rcpts"], m["data"])
                    if refused:
                        raise Failure(f"postfix refused {refused}")
        # Several submission sessions at once, so Postfix opens parallel
        # STARTTLS sessions to postern.
        batches = [msgs[i::4] for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(len(batches)) as pool:
            for f in [pool.submit(submit, b) for b in batches]:
                f.result()
        print(f"submitted {len(msgs)} messages to postfix over {len(batches)} sessions")

        want = {postern.account: {m["mid"] for m in msgs},
                second: {m["mid"] for m in msgs if second in m["rcpts"]}}
        rows_by_addr = {}
        for addr, mids in want.items():
            rows_by_addr[addr] = wait_for_mail(postern, addr, mids, args.timeout)
        print(f"all messages stored by postern after {time.monotonic() - t0:.1f}s")

        for addr, rows in rows_by_addr.items():
            by_mid = {r[2]: r for r in rows}
            check(len(rows) == len(want[addr]),
                  f"{addr}: expected {len(want[addr])} messages, INBOX has {len(rows)}: {rows}")
            for m in msgs:
                if addr not in m["rcpts"]:
                    continue
                uid, size, mid, subject = by_mid[m["mid"]]
                check(subject == m["subject"], f"{addr} uid {uid}: subject {subject!r} != {m['subject']!r}")
                full = postern.get_mail(uid, addr)
                got_mids = header_blocks(full, "Message-ID")
                check(got_mids == [m["mid"]], f"{addr} uid {uid}: Message-ID headers {got_mids}")
                received = header_blocks(full, "Received")
                check(received, f"{addr} uid {uid}: no Received header")
                ours = [r for r in received if "(postern)" in r]
                check(ours, f"{addr} uid {uid}: no postern Received header in {received}")
                check("with ESMTPS" in ours[0],
                      f"{addr} uid {uid}: Postfix did not use STARTTLS; postern's Received: {ours[0]!r}")
                check(any("by relay.postern-interop.test" in r for r in received),
                      f"{addr} uid {uid}: Postfix's own Received header missing: {received}")
                got_body = body_of(full)
                want_body = m["body"]
                check(got_body.rstrip("\r\n") == want_body.rstrip("\r\n"),
                      f"{addr} uid {uid} ({m['subject']}): body differs: sent {len(want_body)} chars "
                      f"sha256 {hashlib.sha256(want_body.encode()).hexdigest()[:16]}, got {len(got_body)} "
                      f"chars sha256 {hashlib.sha256(got_body.encode()).hexdigest()[:16]}; "
                      f"got head {got_body[:120]!r}")
                check(size >= len(m["data"]), f"{addr} uid {uid}: size {size} < sent {len(m['data'])}")
        print("subjects, Message-IDs, bodies and 'with ESMTPS' Received headers match")

        # Postfix's view: everything sent over TLS, nothing left in the queue.
        deadline = time.monotonic() + 30
        while postfix.queue_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        check(postfix.queue_count() == 0, f"postfix queue not empty: {postfix.queue_count()} files")
        log = postfix.log_text()
        sent = [l for l in log.splitlines() if "postfix/smtp[" in l and "status=sent" in l]
        nrcpt = sum(len(m["rcpts"]) for m in msgs)
        check(len(sent) == nrcpt, f"postfix logged {len(sent)} status=sent lines, want {nrcpt}:\n"
              + postfix.log_tail(60))
        check(all(f"relay=127.0.0.1[127.0.0.1]:{postern.port}" in l for l in sent),
              "postfix relayed somewhere else:\n" + "\n".join(sent))
        check("TLS connection established to 127.0.0.1" in log,
              "postfix did not log a TLS connection to postern:\n" + postfix.log_tail(60))
        bad = [l for l in log.splitlines() if any(w in l for w in ("fatal:", "panic:", "status=deferred", "status=bounced"))]
        check(not bad, "postfix logged problems:\n" + "\n".join(bad))
        print("postfix log: status=sent via TLS for every recipient, queue empty")

        pids = postfix.instance_pids()
        killed = postfix.stop()
        check(not killed, f"postfix processes survived `postfix stop` and were killed: {killed}")
        left = [p for p in pids if mailstack.pid_alive(p)] + postfix.instance_pids()
        check(not left, f"postfix processes still running: {left}")
        print(f"postfix stopped ({len(pids)} processes gone)")

        status = postern.stop()
        check(status == 0, f"postern exited with status {status}\n" + postern.log_tail())
        print("postern stopped cleanly")
        ok = True
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except (Exception, KeyboardInterrupt):
        traceback.print_exc()
        print("FAIL: unexpected error or interrupted", file=sys.stderr)
    finally:
        if postfix is not None:
            try:
                postfix.stop()
            except Exception:
                traceback.print_exc()
        if postern is not None:
            postern.stop()
        if not ok:
            for who in (postfix, postern):
                if who is not None:
                    print(who.log_tail(60), file=sys.stderr)
        if args.keep or not ok:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'PASS' if ok else 'FAIL'} ({time.monotonic() - t0:.1f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
