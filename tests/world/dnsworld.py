"""A private, DNSSEC-signed DNS world on loopback for tests (Python standard library only).

nsd (Debian's) serves a root zone, the `test.` TLD and the zones a test asks for, all signed
with ldns-signzone under their own keys and chained by DS records from the root down, on
127.0.0.1 at a free port. Resolvers under test forward to it and trust its root key:
`world.trust_anchor` is a file with the root KSK's DS record (unbound's trust-anchor-file
format). Zones can be signed and chained (secure), unsigned (insecure: no DS in the parent),
or bogus (signed, but the parent's DS names another key).

    world = DnsWorld(workdir)
    world.zone("example.test", secure=True, records=["@ MX 10 mx.example.test.",
                                                     "mx A 127.0.0.2"])
    world.start()
    ...
    world.stop()

Everything runs as the caller; nsd is stopped by PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

TTL = 300


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout.strip()


class Zone:
    def __init__(self, name, secure, bogus, records):
        self.name = name.rstrip(".") + "."
        self.secure = secure or bogus
        self.bogus = bogus
        self.records = list(records)
        self.children = []

    def file(self, workdir):
        return os.path.join(workdir, (self.name.strip(".") or "root") + ".zone")


class DnsWorld:
    def __init__(self, workdir, port=None):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self.address = "127.0.0.1"
        self.zones = {}
        self.proc = None
        self.trust_anchor = os.path.join(self.workdir, "root.ds")
        self.zone(".", secure=True)
        self.zone("test", secure=True)

    def zone(self, name, secure=True, bogus=False, records=()):
        """Adds (or extends) a zone; call before start()."""
        key = name.rstrip(".") + "."
        if key in self.zones:
            self.zones[key].records += list(records)
            return self.zones[key]
        z = Zone(name, secure, bogus, records)
        self.zones[key] = z
        return z

    def parent_of(self, zone):
        if zone.name == ".":
            return None
        best = self.zones["."]
        for z in self.zones.values():
            if z is zone or z.name == ".":
                continue
            if zone.name.endswith("." + z.name) and len(z.name) > len(best.name):
                best = z
        return best

    # -- building --------------------------------------------------------------------------

    def _keys(self, zone):
        """(ksk, zsk) basenames made by ldns-keygen (ED25519)."""
        ksk = run(["ldns-keygen", "-a", "ED25519", "-k", zone.name], self.workdir)
        zsk = run(["ldns-keygen", "-a", "ED25519", zone.name], self.workdir)
        return ksk, zsk

    def _write_zone(self, zone, extra):
        origin = zone.name
        lines = ["$ORIGIN %s" % origin, "$TTL %d" % TTL,
                 "@ SOA ns.test. hostmaster.test. 1 3600 600 86400 %d" % TTL,
                 "@ NS ns.test."]
        if origin == "test.":
            lines.append("ns A %s" % self.address)
        lines += zone.records + extra
        with open(zone.file(self.workdir), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _sign(self, zone, ksk, zsk):
        run(["ldns-signzone", "-n", "-e", "20371231000000", "-f",
             zone.file(self.workdir) + ".signed", zone.file(self.workdir), ksk, zsk],
            self.workdir)
        return zone.file(self.workdir) + ".signed"

    def build(self):
        # Children first: a parent needs its children's DS records (or their NS only).
        order = sorted(self.zones.values(),
                       key=lambda z: -(0 if z.name == "." else z.name.count(".")))
        ds = {}
        served = {}
        for zone in order:
            extra = []
            for child in self.zones.values():
                if self.parent_of(child) is zone:
                    extra.append("%s NS ns.test." % child.name)
                    extra += ds.get(child.name, [])
            self._write_zone(zone, extra)
            if zone.secure:
                ksk, zsk = self._keys(zone)
                served[zone.name] = self._sign(zone, ksk, zsk)
                with open(os.path.join(self.workdir, ksk + ".ds")) as f:
                    record = f.read().strip()
                if zone.bogus:
                    # A DS for a key that does not sign the zone: validation must fail.
                    other, _ = self._keys(Zone("x" + zone.name, True, False, []))
                    with open(os.path.join(self.workdir, other + ".ds")) as f:
                        fake = f.read().strip().split()
                    record = " ".join([zone.name] + fake[1:])
                ds[zone.name] = [record]
                if zone.name == ".":
                    with open(self.trust_anchor, "w") as f:
                        f.write(record + "\n")
            else:
                served[zone.name] = zone.file(self.workdir)
        conf = ["server:", "  ip-address: %s@%d" % (self.address, self.port),
                "  port: %d" % self.port, "  zonesdir: \"%s\"" % self.workdir,
                "  pidfile: \"%s/nsd.pid\"" % self.workdir,
                "  database: \"\"", "  username: \"\"", "  chroot: \"\"",
                "  xfrdfile: \"%s/xfrd.state\"" % self.workdir,
                "  zonelistfile: \"%s/zone.list\"" % self.workdir,
                "  logfile: \"%s/nsd.log\"" % self.workdir, "  verbosity: 1",
                "  server-count: 1", "  hide-version: yes",
                "remote-control:", "  control-enable: no"]
        for name, path in served.items():
            conf += ["zone:", "  name: \"%s\"" % name, "  zonefile: \"%s\"" % path]
        self.conf = os.path.join(self.workdir, "nsd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    # -- running -----------------------------------------------------------------------------

    def start(self, timeout=20.0):
        self.build()
        run(["nsd-checkconf", self.conf], self.workdir)
        self.proc = subprocess.Popen(["nsd", "-d", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + self.log())
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                "@" + self.address, "SOA", "test."],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError("nsd did not answer: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.workdir, "nsd.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def unbound_config(self):
        """Lines for a libunbound context (or unbound.conf) that resolves in this world."""
        # test. is a special-use name unbound answers itself (RFC 6761) unless told not to.
        return ["server:", "  do-not-query-localhost: no", "  local-zone: \"test.\" nodefault",
                "  trust-anchor-file: \"%s\"" % self.trust_anchor,
                "forward-zone:", "  name: \".\"",
                "  forward-addr: %s@%d" % (self.address, self.port)]

    def close(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
