"""Shared helpers for the postern integration tests (Python standard library only).

An `Instance` is one data directory created by `postern quickstart` plus, at most, one running
`postern serve` process.  Everything binds 127.0.0.1 on ports the OS hands out (bind port 0).
Every process started here is recorded and stopped (SIGTERM, then SIGKILL) when the test stops
it, when the instance is closed, and again at interpreter exit, so a failing test cannot leave
a server behind.
"""

import atexit
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_BINARY = os.path.join("build", "debug", "src", "cli", "postern")

# Argon2id cost for test accounts: enough to be real, cheap enough for the ASan build.
ARGON2_MEM_KIB = 8192
ARGON2_OPS = 1

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UBSan
    "WARNING: ThreadSanitizer",
)


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(flags=(), options=None):
    """Removes --postern PATH, the boolean `flags` (e.g. ("--quick",)) and the valued `options`
    ({"--name": default}) from sys.argv.

    Returns (absolute binary path, {flag: bool or option value}); what is left in sys.argv goes
    to unittest.
    """
    binary = None
    seen = {f: False for f in flags}
    seen.update(options or {})
    valued = set(options or {}) | {"--postern"}
    rest = [sys.argv[0]]
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if name in valued:
            if not eq:
                if i + 1 >= len(args):
                    sys.exit(name + " needs a value")
                value = args[i + 1]
                i += 1
            if name == "--postern":
                binary = value
            else:
                seen[name] = value
        elif a in flags:
            seen[a] = True
        else:
            rest.append(a)
        i += 1
    sys.argv[:] = rest
    if binary is None:
        binary = DEFAULT_BINARY
        if not os.path.exists(binary):
            binary = os.path.join(REPO_ROOT, DEFAULT_BINARY)
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        sys.exit("postern binary not found or not executable: " + binary)
    return binary, seen


# --------------------------------------------------------------------------------------------
# Processes: every server started is registered here and stopped at exit whatever happens.

_live = set()
_live_lock = threading.Lock()
_closing = False  # set at exit: no new servers from then on (a test thread may still run)


def _register(proc):
    with _live_lock:
        if not _closing:
            _live.add(proc)
            return
    kill_process(proc)
    raise RuntimeError("the test harness is shutting down")


def _unregister(proc):
    with _live_lock:
        _live.discard(proc)


def stop_process(proc, grace=10.0):
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        try:
            proc.terminate()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
    _unregister(proc)
    return proc.returncode


def kill_process(proc):
    """SIGKILL and reap."""
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    proc.wait()
    _unregister(proc)
    return proc.returncode


@atexit.register
def _stop_all():
    global _closing
    with _live_lock:
        _closing = True
        procs = list(_live)
    for p in procs:
        stop_process(p, grace=3.0)


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):  # not the main thread, or not supported
        pass


# --------------------------------------------------------------------------------------------
# Network


def free_port():
    """A port the OS considers free on 127.0.0.1 (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SelfConnect(OSError):
    pass


def connect(port, timeout=10.0, host="127.0.0.1"):
    """A TCP connection to host:port.

    With nothing listening on a port inside the ephemeral range, Linux can pick that very port
    as the source port and "connect" the socket to itself (TCP simultaneous open). Such a socket
    would talk to itself and keep the port busy, so it is closed and reported as a failure.
    """
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        if s.getsockname() == s.getpeername():
            raise SelfConnect("self-connected socket on port %d" % port)
    except Exception:
        s.close()
        raise
    return s


class SMTP(smtplib.SMTP):
    """smtplib.SMTP that refuses self-connected sockets (see connect())."""

    def _get_socket(self, host, port, timeout):
        return connect(port, timeout=timeout if timeout is not None else 10.0, host=host)


def insecure_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_reply(sock, timeout=10.0):
    """Reads one (possibly multi-line) SMTP reply from a raw socket: (code, text) or None at EOF."""
    sock.settimeout(timeout)
    data = b""
    lines = []
    while True:
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None if not lines and not data else (None, data.decode("latin-1"))
            data += chunk
        line, data = data.split(b"\n", 1)
        line = line.rstrip(b"\r").decode("latin-1")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            code = int(line[:3]) if line[:3].isdigit() else None
            return code, "\n".join(lines)


def wait_until(what, fn, timeout=60.0, interval=0.2):
    """fn()'s first true value, polled every `interval` seconds for at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def wait_for_smtp(port, proc=None, timeout=30.0):
    """Waits until an SMTP server greets with 220 on 127.0.0.1:port, then says QUIT."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with status %s before it listened" % proc.returncode)
        try:
            s = connect(port, timeout=5.0)
        except OSError as e:
            last = e
            time.sleep(0.02)
            continue
        try:
            r = read_reply(s, timeout=5.0)
            if r and r[0] == 220:
                s.sendall(b"QUIT\r\n")
                read_reply(s, timeout=5.0)
                s.recv(1024)  # wait for the server to close: its session is over
                return
            last = RuntimeError("greeting %r" % (r,))
        except OSError as e:
            last = e
        finally:
            s.close()
        time.sleep(0.02)
    raise RuntimeError("no SMTP greeting on port %d within %.0fs: %s" % (port, timeout, last))


# --------------------------------------------------------------------------------------------
# Instances


class Instance:
    """A quickstarted data directory, and the server that runs on it."""

    def __init__(self, binary, domain="example.test", root=None, prefix="postern-it-",
                 mailauth=False):
        self.binary = binary
        self.domain = domain
        self.root = root or tempfile.mkdtemp(prefix=prefix)
        self._own_root = root is None
        self.data_dir = os.path.join(self.root, "data")
        self.port = free_port()
        self.imap_port = free_port()  # IMAP with STARTTLS
        self.imaps_port = free_port()  # IMAP over implicit TLS
        self.submission_port = free_port()  # submission with STARTTLS
        self.submissions_port = free_port()  # submission over implicit TLS
        self.stderr_path = os.path.join(self.root, "server.stderr")
        self.proc = None
        self._stderr = None
        self.starts = 0
        out = self.run_cli(
            ["quickstart", "--domain", domain, "--data", self.data_dir,
             "--smtp", "127.0.0.1:%d" % self.port,
             "--imap", "127.0.0.1:%d" % self.imap_port,
             "--imaps", "127.0.0.1:%d" % self.imaps_port,
             "--submission", "127.0.0.1:%d" % self.submission_port,
             "--submissions", "127.0.0.1:%d" % self.submissions_port, "--json",
             "--argon2-mem-kib", str(ARGON2_MEM_KIB), "--argon2-ops", str(ARGON2_OPS)],
            check=True)
        self.info = json.loads(out.stdout)
        self.config = self.info["config"]
        self.account = self.info["account"]
        self.password = self.info["password"]
        if not mailauth:
            # SPF/DKIM/DMARC need DNS; tests without a DNS world (tests/world) turn them off
            # rather than wait for lookups that cannot leave this machine.
            self.set_key("mailauth", "enabled", "false")
        else:
            self.set_key("mailauth", "ignore_networks", "[]")  # tests connect from 127.0.0.1

    # -- config ----------------------------------------------------------------------------

    def set_config(self, old, new):
        """Replaces the text `old` (which must occur exactly once) by `new` in the TOML."""
        with open(self.config) as f:
            text = f.read()
        if text.count(old) != 1:
            raise AssertionError("%r occurs %d times in %s" % (old, text.count(old), self.config))
        with open(self.config, "w") as f:
            f.write(text.replace(old, new))

    def set_key(self, table, key, value):
        """Sets `key` of [table] to the TOML text `value`."""
        with open(self.config) as f:
            text = f.read()
        head, sep, tail = text.partition("\n[%s]\n" % table)
        if not sep:
            raise AssertionError("no [%s] in %s" % (table, self.config))
        lines = tail.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("["):
                break
            if line.split(" = ", 1)[0] == key:
                lines[i] = "%s = %s" % (key, value)
                with open(self.config, "w") as f:
                    f.write(head + sep + "\n".join(lines))
                return
        raise AssertionError("no %s in [%s] of %s" % (key, table, self.config))

    def use_dns_world(self, world):
        """Resolves through a tests/world DnsWorld and trusts its root key."""
        self.set_key("dns", "forwarders", "['127.0.0.1@%d']" % world.port)
        self.set_key("dns", "trust_anchor", "'%s'" % world.trust_anchor)
        self.set_key("dns", "options", "['do-not-query-localhost: no']")
        self.set_key("dns", "resolve_zones", "['test.']")

    def set_log_file(self, path):
        with open(self.config) as f:
            text = f.read()
        head, sep, tail = text.partition("[log]")
        if not sep or "file = ''" not in tail:
            raise AssertionError("no [log] file = '' in " + self.config)
        with open(self.config, "w") as f:
            f.write(head + sep + tail.replace("file = ''", "file = '%s'" % path, 1))

    # -- CLI -------------------------------------------------------------------------------

    def run_cli(self, args, input=None, check=False, timeout=120):
        """Runs the binary; stdout and stderr are decoded as UTF-8 with CRLF left alone."""
        r = subprocess.run([self.binary] + args, input=None if input is None else input.encode(),
                           capture_output=True, timeout=timeout)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        if check and r.returncode != 0:
            raise AssertionError("postern %s exited %d\nstdout: %s\nstderr: %s" %
                                 (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def mail_list_raw(self, uid=None, mailbox="INBOX"):
        # The option --config belongs to `mail`, so it goes before `list`.
        args = ["mail", "--config", self.config, "list", self.account, "--mailbox", mailbox]
        if uid is not None:
            args += ["--uid", str(uid)]
        return self.run_cli(args, input=self.password + "\n", check=True)

    def mail_list(self, mailbox="INBOX"):
        """A mailbox as a list of dicts: uid, size, message_id, subject."""
        out = []
        for line in self.mail_list_raw(mailbox=mailbox).stdout.splitlines():
            if not line:
                continue
            parts = line.split("\t", 3)
            if len(parts) != 4:
                raise AssertionError("malformed mail list line: %r" % line)
            out.append({"uid": int(parts[0]), "size": int(parts[1]),
                        "message_id": parts[2].strip(), "subject": parts[3].strip()})
        return out

    def message(self, uid, mailbox="INBOX"):
        """The whole stored message (CRLF line ends as stored)."""
        return self.mail_list_raw(uid=uid, mailbox=mailbox).stdout

    def check(self):
        """Runs `postern check`; returns the CompletedProcess."""
        return self.run_cli(["check", "--config", self.config])

    # -- server ----------------------------------------------------------------------------

    def start(self, wait=True, timeout=30.0):
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("server already running")
        self._close_stderr()
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr)
        _register(self.proc)
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self.proc

    def wait_ready(self, timeout=30.0):
        wait_for_smtp(self.port, self.proc, timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Graceful stop; returns the exit status (None if no server was started)."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc)
        self._close_stderr()
        return rc

    def kill(self):
        if self.proc is None:
            return None
        rc = kill_process(self.proc)
        return rc

    def _close_stderr(self):
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        text = self.stderr_text()
        return [m for m in SANITIZER_MARKERS if m in text]

    def diagnosis(self, lines=15):
        """A short account of the server's state for failure messages: exit status, and the
        sanitizer report's headline, project frames and summary if there is one, else the
        log's last lines."""
        status = "running" if self.running() else "exited with %s" % (
            self.proc.returncode if self.proc is not None else "never started")
        text = self.stderr_text()
        out = []
        if any(m in text for m in SANITIZER_MARKERS):
            src = os.path.join(REPO_ROOT, "src") + os.sep
            for line in text.splitlines():
                line = line.strip()
                if "ERROR:" in line or "SUMMARY:" in line or "runtime error:" in line:
                    out.append(line[:300])
                elif line.startswith("#") and src in line and len(out) < lines:
                    # "#8 0x... in function /path/file.cpp:265" -> "#8 function file.cpp:265"
                    parts = line.split(" in ", 1)
                    out.append("  " + parts[0].split()[0] + " " +
                               (parts[1] if len(parts) > 1 else line).replace(src, "src/")[:200])
        else:
            out = text.splitlines()[-lines:]
        return "server %s; its output:\n%s" % (status, "\n".join(out))

    def smtp(self, timeout=10.0):
        """A connected smtplib client (the host is given to the constructor so that
        starttls() has a server name for SNI)."""
        return SMTP("127.0.0.1", self.port, timeout=timeout)

    def close(self, keep=False):
        """Stops the server (if any) and removes the temp directory unless `keep`."""
        try:
            self.stop()
        finally:
            if self._own_root and not keep and not os.environ.get("POSTERN_KEEP_TMP"):
                shutil.rmtree(self.root, ignore_errors=True)


def files_under(root):
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(dirpath, name)


def grep_files(root, needles):
    """{path: [needles found]} for every file under root containing one of `needles` (bytes)."""
    hits = {}
    for path in files_under(root):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        found = [n for n in needles if n in data]
        if found:
            hits[path] = found
    return hits
