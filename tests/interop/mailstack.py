"""Private, throw-away mail daemons for interop tests and benchmarks.

Python standard library only.  Everything lives under a caller-supplied work
directory, listens on 127.0.0.1 only, and is stopped by PID:

  Postern   -- `postern quickstart` + `postern serve`
  Postfix   -- a private instance (own config/queue/data directories),
               started and stopped with `postfix -c DIR start|stop`
  Dovecot   -- a private instance with a passwd-file userdb: LMTP, and
               optionally IMAP over implicit TLS (imaps)
  SmtpSink  -- Postfix's smtp-sink test server

Must run as root (Postfix and Dovecot drop privileges themselves).
"""

import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import time

LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------- helpers

def free_port(host=LOOPBACK):
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=20.0, proc=None, what="server"):
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {host}:{port} within {timeout}s")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not "alive" for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def wait_pids_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if pid_alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def children_of(ppid):
    """PIDs whose parent is ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_cpu_seconds(pid):
    """utime+stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime/stime are fields 14/15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_tree_cpu_seconds(pid):
    """CPU seconds of a daemon and its children, including children that
    already exited and were reaped (cutime/cstime).  Deltas of this value
    measure a forking server (Postfix master, Dovecot master) over a period."""
    def own(p, with_reaped):
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if with_reaped:
            ticks += int(fields[13]) + int(fields[14])
        return ticks
    total = own(pid, True)
    for child in children_of(pid):
        try:
            total += own(child, True)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, key):
    """A 'kB' value (VmHWM, VmRSS, ...) from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def make_world_traversable(path):
    """Postfix and Dovecot drop privileges; they must reach their directories."""
    os.chmod(path, 0o755)


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


# ----------------------------------------------------------------- postern

class Postern:
    """A postern server created with `quickstart` in its own data directory."""

    def __init__(self, binary, workdir, domain, port, host=LOOPBACK,
                 config_overrides=None, argon2_mem_kib=8192, argon2_ops=1,
                 imap_port=None, imaps_port=None):
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.data = os.path.join(workdir, "postern-data")
        self.domain = domain
        self.host = host
        self.port = port
        # quickstart listens on 127.0.0.1:1143 and :1993 unless told otherwise: free ports
        # instead, so that instances (and other tests) do not collide.
        self.imap_port = imap_port if imap_port is not None else free_port(host)  # STARTTLS
        self.imaps_port = imaps_port if imaps_port is not None else free_port(host)  # TLS
        self.submission_port = free_port(host)
        self.submissions_port = free_port(host)
        self.config_overrides = config_overrides or {}
        self.argon2 = (argon2_mem_kib, argon2_ops)
        self.log_path = os.path.join(workdir, "postern.log")
        self.stderr_path = os.path.join(workdir, "postern.stderr")
        self.proc = None
        self.config = None
        self.account = None
        self.password = None
        self.passwords = {}

    def create(self):
        listeners = ["--smtp", f"{self.host}:{self.port}",
                     "--imap", f"{self.host}:{self.imap_port}",
                     "--imaps", f"{self.host}:{self.imaps_port}",
                     "--submission", f"{self.host}:{self.submission_port}",
                     "--submissions", f"{self.host}:{self.submissions_port}"]
        r = run([self.binary, "quickstart", "--domain", self.domain, "--data", self.data]
                + listeners + ["--json", "--argon2-mem-kib", str(self.argon2[0]),
                               "--argon2-ops", str(self.argon2[1])],
                stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(f"postern quickstart failed ({r.returncode}): {r.stderr}")
        info = json.loads(r.stdout)
        self.config = info["config"]
        self.account = info["account"]
        self.password = info["password"]
        self.passwords[self.account] = self.password
        # SPF/DKIM/DMARC need DNS, which these stacks do not have (and the peers they are
        # compared with check none of it): off unless the caller turns it on.
        overrides = {("log", "file"): self.log_path, ("mailauth", "enabled"): False}
        overrides.update(self.config_overrides)
        self.edit_config(overrides)
        return info

    def has_config_key(self, section, key):
        """Whether the config file sets `key` inside [section]."""
        with open(self.config) as f:
            text = f.read()
        pat = re.compile(r"^\[" + re.escape(section) + r"\]\s*$(?:(?!^\[).)*?^" + re.escape(key)
                         + r"\s*=", re.M | re.S)
        return pat.search(text) is not None

    def edit_config(self, overrides):
        """overrides: {(section, key): value}; value is a str, int or bool."""
        with open(self.config) as f:
            text = f.read()
        for (section, key), value in overrides.items():
            if isinstance(value, bool):
                lit = "true" if value else "false"
            elif isinstance(value, int):
                lit = str(value)
            else:
                lit = "'" + str(value) + "'"
            # Replace `key = ...` inside [section] only (not in a later table).
            pat = re.compile(r"(^\[" + re.escape(section) + r"\]\s*$(?:(?!^\[).)*?^"
                             + re.escape(key) + r"\s*=\s*)[^\n]*", re.M | re.S)
            text, n = pat.subn(lambda m: m.group(1) + lit, text, count=1)
            if n != 1:
                raise KeyError(f"postern config has no [{section}] {key}")
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, timeout=30.0):
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     start_new_session=True)
        err.close()
        wait_for_port(self.host, self.port, timeout, self.proc, "postern")
        for p in (self.imap_port, self.imaps_port):
            wait_for_port(self.host, p, timeout, self.proc, "postern imap")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=20.0):
        """SIGTERM, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def _cli(self, args, stdin_text, timeout=120):
        r = subprocess.run([self.binary] + args, input=stdin_text, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"postern {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def add_user(self, address, password):
        self._cli(["user", "--config", self.config, "add", address], password + "\n")
        self.passwords[address] = password

    def list_mail(self, address=None):
        """[(uid, size, message_id, subject)] of the account's INBOX."""
        address = address or self.account
        out = self._cli(["mail", "--config", self.config, "list", address],
                        self.passwords[address] + "\n")
        rows = []
        for line in out.splitlines():
            if not line.strip():
                continue
            parts = line.split("\t")
            while len(parts) < 4:
                parts.append("")
            rows.append((int(parts[0]), int(parts[1]), parts[2], parts[3]))
        return rows

    def get_mail(self, uid, address=None):
        address = address or self.account
        return self._cli(["mail", "--config", self.config, "list", address, "--uid", str(uid)],
                         self.passwords[address] + "\n")

    def cpu_seconds(self):
        return proc_cpu_seconds(self.pid)

    def vm_hwm_kib(self):
        return proc_status_kib(self.pid, "VmHWM")

    def log_tail(self, n=40):
        out = []
        for p in (self.log_path, self.stderr_path):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append(f"--- {p}\n" + "".join(f.readlines()[-n:]))
        return "\n".join(out)


# ----------------------------------------------------------------- postfix

POSTFIX_SERVICES = """\
# service   type  private unpriv  chroot  wakeup  maxproc command
{listen}     inet  n       -       n       -       -       smtpd
pickup      unix  n       -       n       60      1       pickup
cleanup     unix  n       -       n       -       0       cleanup
qmgr        unix  n       -       n       300     1       qmgr
tlsmgr      unix  -       -       n       1000?   1       tlsmgr
rewrite     unix  -       -       n       -       -       trivial-rewrite
bounce      unix  -       -       n       -       0       bounce
defer       unix  -       -       n       -       0       bounce
trace       unix  -       -       n       -       0       bounce
verify      unix  -       -       n       -       1       verify
flush       unix  n       -       n       1000?   0       flush
proxymap    unix  -       -       n       -       -       proxymap
proxywrite  unix  -       -       n       -       1       proxymap
smtp        unix  -       -       n       -       -       smtp
virtual     unix  -       n       n       -       -       virtual
relay       unix  -       -       n       -       -       smtp
showq       unix  n       -       n       -       -       showq
error       unix  -       -       n       -       -       error
retry       unix  -       -       n       -       -       error
discard     unix  -       -       n       -       -       discard
lmtp        unix  -       -       n       -       -       lmtp
anvil       unix  -       -       n       -       1       anvil
scache      unix  -       -       n       -       1       scache
postlog     unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance under workdir/postfix.

    relay_domains: {domain: transport} e.g. {"d.test": "smtp:[127.0.0.1]:2525"}.
    """

    def __init__(self, workdir, port, relay, host=LOOPBACK, extra_main=None,
                 hostname="relay.postern-interop.test", extra_listen=()):
        self.base = os.path.join(workdir, "postfix")
        self.config_dir = os.path.join(self.base, "etc")
        self.queue_dir = os.path.join(self.base, "spool")
        self.data_dir = os.path.join(self.base, "data")
        self.maillog = os.path.join(self.base, "maillog")
        self.host = host
        self.port = port
        self.relay = dict(relay)
        self.extra_main = extra_main or {}
        self.extra_listen = list(extra_listen)  # more smtpd listeners, "[::1]:25"
        self.hostname = hostname
        self.started = False
        self.known_pids = set()

    def main_cf(self):
        transports = ", ".join(f"{d}={t}" for d, t in self.relay.items())
        params = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydomain": "postern-interop.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": ", ".join(self.relay),
            "transport_maps": "inline:{ " + transports + " }",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.base,
            # Never bounce or defer for long; tests want failures fast.
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
        }
        params.update(self.extra_main)
        return "".join(f"{k} = {v}\n" for k, v in params.items())

    def setup(self):
        os.makedirs(self.config_dir)
        os.makedirs(self.queue_dir)
        os.makedirs(self.data_dir)
        for d in (self.base, self.config_dir, self.queue_dir):
            make_world_traversable(d)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(POSTFIX_SERVICES.format(listen=f"{self.host}:{self.port}"))
            for listen in self.extra_listen:
                f.write(f"{listen} inet n - n - - smtpd\n")
        # Creates the queue's subdirectories with the right owners and modes.
        r = self.postfix("check")
        if r.returncode != 0:
            raise RuntimeError(f"postfix check failed:\n{r.stdout}")
        return r.stdout

    def env(self):
        e = dict(os.environ)
        e["MAIL_CONFIG"] = self.config_dir
        return e

    def postfix(self, *args):
        return run(["postfix", "-c", self.config_dir] + list(args), env=self.env())

    def postconf(self, *args):
        return run(["postconf", "-c", self.config_dir] + list(args), env=self.env())

    def start(self, timeout=30.0):
        # No pipes for a command that leaves daemons behind (see Dovecot.start).
        out_path = os.path.join(self.base, "postfix.start.out")
        with open(out_path, "w") as out:
            rc = subprocess.call(["postfix", "-c", self.config_dir, "start"], env=self.env(),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        if rc != 0:
            with open(out_path, errors="replace") as f:
                raise RuntimeError(f"postfix start failed ({rc}):\n{f.read()}\n{self.log_tail()}")
        self.started = True
        wait_for_port(self.host, self.port, timeout, what="postfix smtpd")
        self.known_pids |= set(self.instance_pids())

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def instance_pids(self):
        """Live processes of this instance: those whose MAIL_CONFIG is ours."""
        needle = b"MAIL_CONFIG=" + self.config_dir.encode() + b"\0"
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read() + b"\0"
            except OSError:
                continue
            if needle in env and pid_alive(int(name)):
                pids.append(int(name))
        mp = self.master_pid()
        if mp and pid_alive(mp) and mp not in pids:
            pids.append(mp)
        return pids

    def stop(self, timeout=20.0):
        """`postfix stop`, then make sure no process of this instance is left.

        Returns the PIDs that had to be killed (empty when Postfix stopped cleanly).
        """
        mp = self.master_pid()
        if not self.started and not (mp and pid_alive(mp)):
            return []
        self.known_pids |= set(self.instance_pids())
        self.postfix("stop")
        self.started = False
        left = wait_pids_gone(sorted(self.known_pids | set(self.instance_pids())), timeout)
        killed = []
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        wait_pids_gone(killed, 5)
        return killed

    def queue_count(self):
        """Messages in the incoming/active/deferred queues."""
        n = 0
        for q in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue_dir, q)):
                n += len(files)
        return n

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "--- " + self.maillog + "\n" + "".join(self.log_text().splitlines(True)[-n:])


# ----------------------------------------------------------------- dovecot

class Dovecot:
    """A private Dovecot instance speaking LMTP, storing sdbox mailboxes.

    mail_fsync stays at its default ("optimized"): a message is fsynced before
    the LMTP 250 reply.  Users come from a passwd-file with a static uid/gid
    of an unprivileged user.

    With imaps_port, it also serves IMAP over implicit TLS on that port (no
    plain IMAP listener) with a self-signed P-256 certificate made by openssl
    in its directory; users need a password then (add_user(user, password)).
    Sized for imap_max_connections concurrent IMAP sessions: imap-login runs
    in "high-performance" mode (service_count = 0, one long-lived login
    process per CPU, each proxying TLS for many connections), `service imap`
    allows that many processes (one per session), mail_max_userip_connections
    lets them all be the same user from 127.0.0.1.  imap_hibernate_timeout
    (e.g. "2s") moves sessions that IDLE that long into imap-hibernate.  The
    caller must raise RLIMIT_NOFILE before start(): the daemons inherit it.
    Without imaps_port the configuration is LMTP-only, exactly as before.
    """

    def __init__(self, workdir, lmtp_port, host=LOOPBACK, mail_user="nobody",
                 mail_group="nogroup", mail_format="sdbox", imaps_port=None,
                 imap_max_connections=1000, imap_hibernate_timeout=None,
                 password_scheme="PLAIN"):
        self.base = os.path.join(workdir, "dovecot")
        self.conf = os.path.join(self.base, "dovecot.conf")
        self.run_dir = os.path.join(self.base, "run")
        self.home_root = os.path.join(self.base, "home")
        self.users_file = os.path.join(self.base, "users")
        self.log_path = os.path.join(self.base, "dovecot.log")
        self.tls_cert = os.path.join(self.base, "tls-cert.pem")
        self.tls_key = os.path.join(self.base, "tls-key.pem")
        self.host = host
        self.port = lmtp_port
        self.imaps_port = imaps_port
        self.imap_max_connections = imap_max_connections
        self.imap_hibernate_timeout = imap_hibernate_timeout
        self.password_scheme = password_scheme
        self.uid = pwd.getpwnam(mail_user).pw_uid
        self.gid = grp.getgrnam(mail_group).gr_gid
        self.mail_format = mail_format
        self.master = None
        self.known_pids = set()
        self.users = []
        self.passwords = {}   # user -> plaintext password (IMAP users)
        self._pw_field = {}   # user -> passwd-file password field

    def home(self, user):
        return os.path.join(self.home_root, user)

    def write_users(self):
        with open(self.users_file + ".new", "w") as f:
            for u in self.users:
                f.write(f"{u}:{self._pw_field.get(u, '')}:{self.uid}:{self.gid}::{self.home(u)}::\n")
        os.chmod(self.users_file + ".new", 0o644)
        os.replace(self.users_file + ".new", self.users_file)

    def _password_field(self, password):
        if self.password_scheme.upper() == "PLAIN":
            return "{PLAIN}" + password
        r = run(["doveadm", "pw", "-s", self.password_scheme, "-p", password])
        if r.returncode != 0:
            raise RuntimeError(f"doveadm pw -s {self.password_scheme} failed: {r.stdout}")
        return r.stdout.strip()

    def add_user(self, user, password=None):
        """user: full address. Creates its (empty) home, owned by the mail uid.
        password: needed to log in by IMAP (LMTP needs none)."""
        if password is not None:
            if ":" in password or "\n" in password:
                raise ValueError("passwd-file passwords cannot hold ':' or newlines")
            self.passwords[user] = password
            self._pw_field[user] = self._password_field(password)
        h = self.home(user)
        os.makedirs(h, exist_ok=True)
        os.chown(h, self.uid, self.gid)
        if user not in self.users:
            self.users.append(user)
        self.write_users()  # passwd-file is re-read when its mtime changes

    def create_inbox(self, user):
        """Create the user's INBOX now.  Dovecot 2.3 can panic (index lock
        "Resource deadlock avoided") or answer 451 "Mailbox already exists"
        when several LMTP deliveries race to auto-create a new mailbox."""
        r = run(["doveadm", "-c", self.conf, "mailbox", "create", "-u", user, "INBOX"])
        if r.returncode != 0 and "exists" not in r.stdout:
            raise RuntimeError(f"doveadm mailbox create -u {user} INBOX failed: {r.stdout}")

    def remove_user_mail(self, user):
        shutil.rmtree(self.home(user), ignore_errors=True)

    def setup(self, users=(), passwords=None):
        """users: addresses; passwords: optional {address: password} for IMAP."""
        for d in (self.base, self.run_dir, self.home_root):
            os.makedirs(d, exist_ok=True)
            make_world_traversable(d)
        passwords = passwords or {}
        for u in users:
            self.add_user(u, passwords.get(u))
        self.write_users()
        if self.imaps_port is not None:
            self.make_tls_cert()
        self.write_config()
        os.makedirs(os.path.join(self.base, "state"), exist_ok=True)

    def make_tls_cert(self):
        """A self-signed ECDSA P-256 certificate, the same key type as postern's quickstart."""
        if os.path.exists(self.tls_cert) and os.path.exists(self.tls_key):
            return
        r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-keyout", self.tls_key, "-out", self.tls_cert])
        if r.returncode != 0:
            raise RuntimeError(f"openssl req failed: {r.stdout}")
        os.chmod(self.tls_key, 0o600)  # read by the master as root

    def imap_config(self):
        n = self.imap_max_connections
        ncpu = os.cpu_count() or 1
        hib = self.imap_hibernate_timeout
        hibernate = f"""\
# IDLE sessions move to imap-hibernate after this long; the imap process exits.
imap_hibernate_timeout = {hib}
service imap-hibernate {{
  client_limit = {n + 100}
  unix_listener imap-hibernate {{
    mode = 0660
    group = $default_internal_group
  }}
}}
""" if hib else "imap_hibernate_timeout = 0\n"
        imap_master = """\
  # imap-hibernate (user dovecot) hands sessions back through this socket.
  unix_listener imap-master {
    user = $default_internal_user
  }
  extra_groups = $default_internal_group
""" if hib else ""
        return f"""\
ssl = yes
ssl_cert = <{self.tls_cert}
ssl_key = <{self.tls_key}
ssl_min_protocol = TLSv1.2
# Per-service client limits (auth, anvil, stats, ...) must hold every session.
default_client_limit = {2 * n + 1000}
protocol imap {{
  # All benchmark sessions are one user from 127.0.0.1 (default limit: 10).
  mail_max_userip_connections = {n + 100}
}}
{hibernate}service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.imaps_port}
    ssl = yes
  }}
  # High-performance mode (Dovecot's advice for many connections): long-lived
  # login processes, one per CPU, each terminating and proxying TLS for up to
  # client_limit connections for their whole life.
  service_count = 0
  process_min_avail = {ncpu}
  client_limit = {n + 100}
}}
service imap {{
  # One imap process per session.
  process_limit = {n + 100}
{imap_master}}}
"""

    def write_config(self):
        """(Re)writes dovecot.conf from the current settings; takes effect at start()."""
        if self.mail_format == "maildir":
            location = "maildir:~/Maildir"
        else:
            location = f"{self.mail_format}:~/{self.mail_format}"
        protocols = "imap lmtp" if self.imaps_port is not None else "lmtp"
        ssl = self.imap_config() if self.imaps_port is not None else "ssl = no\n"
        conf = f"""\
# Private benchmark instance (generated).
base_dir = {self.run_dir}
state_dir = {self.base}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = {protocols}
listen = {self.host}
{ssl}default_internal_user = dovecot
default_login_user = dovenull
auth_mechanisms = plain
mail_location = {location}
# Default, stated for clarity: fsync once per saved message before replying.
mail_fsync = optimized
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {self.users_file}
}}
userdb {{
  driver = passwd-file
  args = {self.users_file}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {self.host}
    port = {self.port}
  }}
}}
"""
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self, timeout=30.0):
        # The daemon may keep inherited descriptors open: no pipes here, or
        # waiting for EOF would hang.
        out_path = os.path.join(self.base, "dovecot.start.out")
        pidfile = os.path.join(self.run_dir, "master.pid")
        try:
            os.unlink(pidfile)  # left by an earlier start of this instance
        except FileNotFoundError:
            pass
        with open(out_path, "w") as out:
            rc = subprocess.call(["dovecot", "-c", self.conf], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out)
        if rc != 0:
            with open(out_path, errors="replace") as f:
                raise RuntimeError(f"dovecot failed to start ({rc}):\n{f.read()}\n{self.log_tail()}")
        deadline = time.monotonic() + timeout
        while not os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(pidfile) as f:
            self.master = int(f.read().strip())
        wait_for_port(self.host, self.port, timeout, what="dovecot lmtp")
        if self.imaps_port is not None:
            wait_for_port(self.host, self.imaps_port, timeout, what="dovecot imaps")

    def pids(self):
        """The master and its children (every Dovecot service is forked by the master)."""
        if self.master is None:
            return []
        return [self.master] + children_of(self.master)

    def stop(self, timeout=20.0):
        if self.master is None:
            return []
        pids = self.pids()
        self.known_pids |= set(pids)
        if pid_alive(self.master):
            os.kill(self.master, signal.SIGTERM)
        left = wait_pids_gone(sorted(self.known_pids), timeout)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_pids_gone(left, 5)
        self.master = None
        return left

    def count_messages(self, user):
        """Messages saved to the user's INBOX, counted from the files on disk."""
        if self.mail_format == "maildir":
            root = os.path.join(self.home(user), "Maildir")
            n = 0
            for sub in ("new", "cur"):
                try:
                    n += sum(1 for e in os.scandir(os.path.join(root, sub)) if e.is_file())
                except FileNotFoundError:
                    pass
            return n
        d = os.path.join(self.home(user), self.mail_format, "mailboxes", "INBOX", "dbox-Mails")
        try:
            return sum(1 for e in os.scandir(d) if e.name.startswith("u."))
        except FileNotFoundError:
            return 0

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "--- " + self.log_path + "\n" + "".join(f.readlines()[-n:])
        except OSError:
            return ""


# ----------------------------------------------------------------- smtp-sink

def find_smtp_sink():
    for p in (shutil.which("smtp-sink"), "/usr/sbin/smtp-sink",
              "/usr/lib/postfix/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink",
              "/usr/libexec/postfix/smtp-sink"):
        if p and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError("smtp-sink not found (Debian package: postfix)")


class SmtpSink:
    def __init__(self, workdir, port, host=LOOPBACK, max_conn=1000):
        self.port = port
        self.host = host
        self.max_conn = max_conn
        self.log_path = os.path.join(workdir, "smtp-sink.log")
        self.proc = None

    def start(self, timeout=10.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [find_smtp_sink(), "-u", "nobody", "-m", str(self.max_conn),
             f"{self.host}:{self.port}", "1024"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for_port(self.host, self.port, timeout, self.proc, "smtp-sink")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
