#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app/config.hpp"
#include "base/random.hpp"

namespace postern::app {
namespace {

std::string write(const std::string& text) {
  auto p =
      std::filesystem::temp_directory_path() / ("postern-cfg-" + base::system_random().token(6));
  std::ofstream(p) << text;
  return p.string();
}

TEST(Config, RenderedDefaultsLoadBack) {
  Config c;
  c.data_dir = "/var/lib/postern";
  c.smtp_listen = {"127.0.0.1:2525", "[::1]:2525"};
  auto path = write(render_config(c));
  auto loaded = load_config(path);
  ASSERT_TRUE(loaded) << loaded.error().describe();
  EXPECT_EQ(loaded->smtp_listen, c.smtp_listen);
  EXPECT_EQ(loaded->smtp_max_message_bytes, c.smtp_max_message_bytes);
  std::filesystem::remove(path);
}

struct Bad {
  const char* text;
  ConfigErrc code;
  const char* needle;
};

TEST(Config, ErrorsNameFileLineAndProblem) {
  const Bad cases[] = {
      {"[server]\ndata_dir = \"/x\"\nbogus = 1\n", ConfigErrc::unknown_key,
       ":3:9: unknown key 'server.bogus'"},
      {"[nope]\nx = 1\n", ConfigErrc::unknown_key, "unknown key 'nope.x'"},
      {"[server]\ndata_dir = 5\n", ConfigErrc::bad_type, ":2:12: server.data_dir must be a string"},
      {"[server]\ndata_dir = \"/x\"\n[smtp]\nmax_recipients = 0\n", ConfigErrc::bad_value,
       "smtp.max_recipients must be between 1 and 10000"},
      {"[server]\ndata_dir = \"/x\"\n[smtp]\nlisten = [1]\n", ConfigErrc::bad_type,
       "smtp.listen must hold strings"},
      {"[server]\ndata_dir = \"/x\"\n[log]\nlevel = \"loud\"\n", ConfigErrc::bad_value,
       "log.level"},
      {"[server]\ndata_dir = \"/x\"\n[tls]\ncertificate = \"/c\"\n", ConfigErrc::bad_value,
       "must be set together"},
      {"[server]\ndata_dir = \"/x\"\n[imap]\ntls_listen = [\"127.0.0.1:993\"]\n",
       ConfigErrc::bad_value, "need tls.certificate"},
      {"[server]\ndata_dir = \"/x\"\n[imap]\nidle_timeout_seconds = 60\n", ConfigErrc::bad_value,
       "imap.idle_timeout_seconds must be between 1800"},
      {"[server]\nhostname = \"h\"\n", ConfigErrc::missing, "server.data_dir is required"},
      {"[server\n", ConfigErrc::parse, ":1:"},
  };
  for (const auto& b : cases) {
    auto path = write(b.text);
    auto r = load_config(path);
    ASSERT_FALSE(r) << b.text;
    EXPECT_EQ(r.error().code(), b.code) << b.text;
    EXPECT_NE(r.error().detail().find(b.needle), std::string::npos)
        << b.text << " -> " << r.error().detail();
    EXPECT_EQ(r.error().detail().rfind(path, 0), 0u) << r.error().detail();
    std::filesystem::remove(path);
  }
}

TEST(Config, ReferenceListsEveryKey) {
  auto ref = config_reference();
  for (const char* k : {"server.hostname", "smtp.max_connections_per_ip", "crypto.argon2_mem_kib",
                        "delivery.max_batch", "tls.key"})
    EXPECT_NE(ref.find(k), std::string::npos) << k;
}

}  // namespace
}  // namespace postern::app
