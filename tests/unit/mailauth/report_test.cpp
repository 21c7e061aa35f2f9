// DMARC aggregate reports: events survive their serialisation, aggregation counts them into
// rows, the XML validates against RFC 7489's schema (xmllint, the schema Debian ships in
// libmail-dmarc-perl), and received reports are parsed into the right counts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/gzip.hpp"
#include "base/random.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

DmarcEvent event(const std::string& ip, DmarcPolicy disposition, bool dkim, bool spf) {
  DmarcEvent e;
  e.time = 1796200000;
  e.policy_domain = "example.test";
  e.header_from = "example.test";
  e.envelope_from = "bounce.example.test";
  e.source_ip = ip;
  e.policy =
      parse_dmarc("v=DMARC1; p=reject; sp=quarantine; pct=50; rua=mailto:agg@example.test").value();
  e.disposition = disposition;
  e.dkim_aligned = dkim;
  e.spf_aligned = spf;
  if (dkim) e.dkim.push_back({"example.test", "s1", "pass"});
  e.spf_domain = "bounce.example.test";
  e.spf_result = spf ? "pass" : "fail";
  return e;
}

std::string read(const std::filesystem::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p, std::ios::binary).rdbuf();
  return ss.str();
}

// xmllint against RFC 7489 Appendix C. The schema as published does not compile with its
// targetNamespace (its type references then point at no namespace), and reports are sent
// without a namespace in practice, so it is used without one.
bool validates(const std::string& xml) {
  auto dir =
      std::filesystem::temp_directory_path() / ("postern-dmarc-" + base::system_random().token(6));
  std::filesystem::create_directories(dir);
  std::string schema = read("/usr/share/perl5/auto/share/dist/Mail-DMARC/rua-schema.xsd");
  EXPECT_FALSE(schema.empty()) << "libmail-dmarc-perl is not installed";
  const std::string ns = "targetNamespace=\"http://dmarc.org/dmarc-xml/0.1\"";
  auto at = schema.find(ns);
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos) schema.erase(at, ns.size());
  std::ofstream(dir / "rua.xsd") << schema;
  std::ofstream(dir / "report.xml") << xml;
  std::string cmd = "xmllint --noout --schema " + (dir / "rua.xsd").string() + " " +
                    (dir / "report.xml").string();
  int rc = std::system(cmd.c_str());
  std::filesystem::remove_all(dir);
  return WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

TEST(DmarcEvent, SerialisationRoundTrips) {
  DmarcEvent e = event("2001:db8::1", DmarcPolicy::quarantine, true, false);
  e.overrides = {"sampled_out"};
  auto back = DmarcEvent::parse(e.serialize());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->serialize(), e.serialize());
  EXPECT_EQ(back->policy.percent, 50);
  EXPECT_EQ(back->policy.subdomain_policy, DmarcPolicy::quarantine);
  ASSERT_EQ(back->dkim.size(), 1u);
  EXPECT_EQ(back->dkim[0].selector, "s1");
  EXPECT_FALSE(DmarcEvent::parse("E1\tgarbage"));
  // Separators inside values cannot break the format.
  e.header_from = "a\tb;c,d";
  EXPECT_EQ(DmarcEvent::parse(e.serialize())->header_from, "a_b_c_d");
}

TEST(DmarcReport, AggregatesValidatesAndParsesBack) {
  std::vector<DmarcEvent> events = {event("192.0.2.1", DmarcPolicy::none, true, true),
                                    event("192.0.2.1", DmarcPolicy::none, true, true),
                                    event("192.0.2.1", DmarcPolicy::none, true, true),
                                    event("198.51.100.7", DmarcPolicy::reject, false, false),
                                    event("2001:db8::25", DmarcPolicy::quarantine, false, false)};
  DmarcEvent other = event("192.0.2.1", DmarcPolicy::none, true, true);
  other.policy_domain = other.header_from = "other.test";
  events.push_back(other);
  auto reports = aggregate_dmarc_events(events, "mx.postern.test", "postmaster@postern.test",
                                        1796169600, 1796255999);
  ASSERT_EQ(reports.size(), 2u);
  const DmarcReport& r = reports[0];
  EXPECT_EQ(r.policy_domain, "example.test");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].count, 3u);
  EXPECT_EQ(r.rows[1].count, 1u);
  std::string xml = format_dmarc_report(r);
  EXPECT_TRUE(validates(xml)) << xml;
  EXPECT_NE(xml.find("<source_ip>2001:db8:0:0:0:0:0:25</source_ip>"), std::string::npos);
  auto back = parse_dmarc_report(xml);
  ASSERT_TRUE(back) << back.error().detail();
  EXPECT_EQ(back->policy_domain, "example.test");
  EXPECT_EQ(back->policy.policy, DmarcPolicy::reject);
  EXPECT_EQ(back->policy.percent, 50);
  ASSERT_EQ(back->rows.size(), 3u);
  EXPECT_EQ(back->rows[0].count, 3u);
  EXPECT_EQ(back->rows[1].event.disposition, DmarcPolicy::reject);
  EXPECT_EQ(back->rows[2].event.disposition, DmarcPolicy::quarantine);
  // A report that would not validate is caught: the schema test is not vacuous.
  std::string broken = xml;
  broken.replace(broken.find("<disposition>none"), 17, "<disposition>maybe");
  EXPECT_FALSE(validates(broken));
}

TEST(DmarcReport, ReceivedReportsParseIntoTheRightCounts) {
  std::string xml =
      read(std::string(POSTERN_SOURCE_DIR) + "/tests/vectors/dmarc/received-report.xml");
  ASSERT_FALSE(xml.empty());
  auto r = parse_dmarc_report(xml);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_EQ(r->org_name, "bigmail.test");
  EXPECT_EQ(r->report_id, "1234567890123456789");
  EXPECT_EQ(r->begin, 1796169600);
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(r->rows[0].count, 17u);
  EXPECT_TRUE(r->rows[0].event.dkim_aligned);
  EXPECT_EQ(r->rows[0].event.dkim[0].selector, "s20261201e");
  EXPECT_EQ(r->rows[1].count, 3u);
  EXPECT_EQ(r->rows[1].event.source_ip, "2001:db8::25");
  EXPECT_EQ(r->rows[1].event.disposition, DmarcPolicy::reject);
  EXPECT_EQ(r->rows[1].event.spf_domain, "spoofer.test");
  // The same with a namespace, as some senders write it, and gzip'd as they are sent.
  std::string with_ns = xml;
  with_ns.replace(with_ns.find("<feedback>"), 10,
                  "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">");
  auto ns = parse_dmarc_report(base::gunzip(base::gzip(with_ns), 1 << 20).value());
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->rows[0].count, 17u);
}

TEST(DmarcReport, HostileReportsAreRefused) {
  EXPECT_FALSE(parse_dmarc_report("<feedback>"));
  EXPECT_FALSE(parse_dmarc_report("<other/>"));
  EXPECT_FALSE(
      parse_dmarc_report("<?xml version=\"1.0\"?><!DOCTYPE feedback [<!ENTITY a \"aaaaaaaa\">]>"
                         "<feedback><report_metadata/><policy_published/></feedback>"));
  EXPECT_FALSE(
      parse_dmarc_report("<feedback><report_metadata><date_range><begin>x</begin>"
                         "</date_range></report_metadata><policy_published/></feedback>"));
  // A gzip bomb stops at the bound.
  std::string zeros(std::size_t{4} << 20, '\0');
  EXPECT_FALSE(base::gunzip(base::gzip(zeros), std::size_t{1} << 20));
  EXPECT_FALSE(base::gunzip("not gzip at all", 1 << 20));
}

TEST(DmarcReport, ExternalDestinationsNeedAuthorisation) {
  EXPECT_EQ(report_authorization_name("example.test", "mail.example.test"), "");
  EXPECT_EQ(report_authorization_name("Example.TEST", "reports.other.test"),
            "example.test._report._dmarc.reports.other.test");
}

TEST(DmarcReport, EventFromAVerdict) {
  InboundRequest req;
  req.ip = "192.0.2.1";
  req.now = 1796200000;
  InboundVerdict v;
  v.action = InboundVerdict::Action::junk;
  v.spf.result = SpfResult::fail;
  v.spf_domain = "example.test";
  v.dmarc.result = DmarcResult::fail;
  v.dmarc.record = parse_dmarc("v=DMARC1; p=quarantine; rua=mailto:a@example.test").value();
  v.dmarc.policy_domain = v.dmarc.from_domain = "example.test";
  v.dmarc.applied = DmarcPolicy::quarantine;
  auto e = dmarc_event(req, v);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->disposition, DmarcPolicy::quarantine);
  EXPECT_EQ(e->spf_result, "fail");
  // A waived policy (trusted forwarder) is reported as an override.
  v.action = InboundVerdict::Action::deliver;
  e = dmarc_event(req, v);
  ASSERT_EQ(e->overrides.size(), 1u);
  EXPECT_EQ(e->overrides[0], "trusted_forwarder");
  // No DMARC record: nothing to report.
  v.dmarc.record.reset();
  EXPECT_FALSE(dmarc_event(req, v));
}

}  // namespace
}  // namespace postern::mailauth
