#!/usr/bin/python3
"""Turns the openspf RFC 7208 test suite (the YAML that Debian's python3-spf ships) into a
line-based fixture for tests/support/spf_suite_runner.cpp, which needs no YAML library.
Usage: spf_suite.py [SUITE.yml[.gz]] > spf_suite.txt (default: python3-spf's copy).

The fixture, one item a line, tokens separated by one space:

  SCENARIO description
  ZONE name A|AAAA|PTR|CNAME value
  ZONE name MX preference host
  ZONE name TXT string...         one record: its character-strings, joined without spaces
                                  (none: an empty RDATA, which DNS does not allow)
  ZONE name NODATA                the name exists but has no records the runner serves
  ZONE name TIMEOUT               queries at the name time out, except for the types
                                  that have a ZONE line above this one
  TEST id host mailfrom helo result[,result...] [explanation]
  END count                       the number of TEST lines, against a truncated fixture

A token is written bare when it is non-empty printable ASCII without space, quote or
backslash, otherwise in double quotes with \\" \\\\ and \\DDD (a decimal byte, as in RFC 1035
zone files) escapes, so "" is the empty string. ZONE lines of a scenario replace the previous
scenario's zone. A TEST's results are the acceptable ones, preferred first; its explanation,
when the suite gives one, must match ("DEFAULT" stands for none). Names outside the zone are
NXDOMAIN.

The records the suite gives as the obsolete SPF RR type are served as TXT where a name has no
TXT record, as the suite's own harness (python3-spf's testspf.py) does; a "TXT: NONE" entry
keeps them from it. No query of type SPF is made (RFC 7208 3.1 retired it)."""
import gzip
import sys

import yaml

DEFAULT_SUITE = "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz"


def token(value):
    if not isinstance(value, bytes):
        value = str(value).encode("utf-8", "surrogateescape")
    if value and all(0x21 <= b <= 0x7E and b not in b'"\\' for b in value):
        return value.decode("ascii")
    out = []
    for b in value:
        if b in b'"\\':
            out.append("\\" + chr(b))
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def zone_lines(name, records):
    """The ZONE lines of one name, in the order the suite lists its records."""
    records = records or []
    has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
    lines = []
    for r in records:
        if r == "TIMEOUT":
            lines.append(["TIMEOUT"])
            continue
        if not isinstance(r, dict) or len(r) != 1:
            raise ValueError("%s: unexpected record %r" % (name, r))
        ((rtype, value),) = r.items()
        if rtype == "SPF":
            if has_txt:
                continue
            rtype = "TXT"
        if rtype == "TXT":
            if value == "NONE":
                continue
            parts = value if isinstance(value, list) else [value]
            lines.append(["TXT"] + [token(p) for p in parts])
        elif rtype == "MX":
            preference, host = value
            lines.append(["MX", str(int(preference)), token(host)])
        elif rtype in ("A", "AAAA", "PTR", "CNAME"):
            lines.append([rtype, token(value)])
        else:
            raise ValueError("%s: unknown record type %s" % (name, rtype))
    if not lines:
        lines.append(["NODATA"])
    return [" ".join(["ZONE", token(name)] + line) for line in lines]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SUITE
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            scenarios = [s for s in yaml.safe_load_all(f) if s]
    except OSError as e:
        # Docker images may drop /usr/share/doc from packages (dpkg path-exclude).
        sys.exit("spf_suite.py: cannot read the suite (python3-spf installed, with its docs?): %s"
                 % e)
    out = []
    tests = 0
    for scenario in scenarios:
        out.append("SCENARIO " + token(" ".join(str(scenario.get("description", "")).split())))
        for name, records in (scenario.get("zonedata") or {}).items():
            out.extend(zone_lines(name, records))
        for test_id, t in scenario["tests"].items():
            results = t["result"] if isinstance(t["result"], list) else [t["result"]]
            line = ["TEST", token(test_id), token(t["host"]), token(t.get("mailfrom") or ""),
                    token(t.get("helo") or ""), ",".join(results)]
            if t.get("explanation") is not None:
                line.append(token(t["explanation"]))
            out.append(" ".join(line))
            tests += 1
    out.append("END %d" % tests)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
