// The postern command line. Each subcommand is a function in app/; exit codes are listed in
// docs/operations.md.
#include <CLI/CLI.hpp>

#include <iostream>

#include "app/app.hpp"

int main(int argc, char** argv) {
  using namespace postern::app;
  CLI::App cli{"postern: a mail server with zero-access storage"};
  cli.set_version_flag("--version", std::string("postern ") + POSTERN_VERSION);
  cli.require_subcommand(1);

  QuickstartOptions qs;
  auto* quick = cli.add_subcommand(
      "quickstart", "Create a config, certificate, store and first account, and print them");
  quick->add_option("--domain", qs.domain, "Mail domain, e.g. example.org")->required();
  quick->add_option("--data", qs.data_dir, "Data directory to create")->required();
  quick->add_option("--hostname", qs.hostname, "Server host name (default mail.<domain>)");
  quick->add_option("--user", qs.user, "Local part of the first account")->capture_default_str();
  quick->add_option("--smtp", qs.smtp_listen, "SMTP listen address(es) (default 127.0.0.1:2525)");
  quick->add_option("--imap", qs.imap_listen,
                    "IMAP (STARTTLS) listen address(es) (default 127.0.0.1:1143)");
  quick->add_option("--imaps", qs.imaps_listen,
                    "IMAP (implicit TLS) listen address(es) (default 127.0.0.1:1993)");
  quick->add_option("--submission", qs.submission_listen,
                    "Submission (STARTTLS) listen address(es) (default 127.0.0.1:1587)");
  quick->add_option("--submissions", qs.submissions_listen,
                    "Submission (implicit TLS) listen address(es) (default 127.0.0.1:1465)");
  quick->add_flag("--json", qs.json, "Print what was created as one JSON object");
  quick->add_option("--argon2-mem-kib", qs.argon2_mem_kib, "Argon2id memory (KiB)");
  quick->add_option("--argon2-ops", qs.argon2_ops, "Argon2id passes");

  std::string config;
  auto* serve_cmd = cli.add_subcommand("serve", "Run the server");
  serve_cmd->add_option("--config", config, "Config file")->required();

  auto* user = cli.add_subcommand("user", "Manage accounts (passwords are read from stdin)");
  user->require_subcommand(1);
  user->add_option("--config", config, "Config file")->required();
  std::string address, target;
  bool with_recovery = false;
  auto* user_add_cmd = user->add_subcommand("add", "Create an account; stdin: password");
  user_add_cmd->add_option("address", address)->required();
  auto* user_passwd_cmd = user->add_subcommand(
      "passwd", "Change a password; stdin: current password (or recovery key), new password");
  user_passwd_cmd->add_option("address", address)->required();
  user_passwd_cmd->add_flag("--recovery", with_recovery, "First line is the recovery key");
  auto* user_list_cmd = user->add_subcommand("list", "List accounts with usage and quota");
  int64_t quota_bytes = 0;
  auto* user_quota_cmd = user->add_subcommand("quota", "Set an account's storage quota");
  user_quota_cmd->add_option("address", address)->required();
  user_quota_cmd->add_option("bytes", quota_bytes, "Limit in bytes; 0 removes it")
      ->required()
      ->check(CLI::NonNegativeNumber);
  auto* user_delete_cmd =
      user->add_subcommand("delete", "Delete an account and destroy its keys (irreversible)");
  user_delete_cmd->add_option("address", address)->required();

  auto* domain = cli.add_subcommand("domain", "Manage local domains");
  domain->require_subcommand(1);
  domain->add_option("--config", config, "Config file")->required();
  std::string domain_name;
  auto* domain_add_cmd = domain->add_subcommand("add", "Add a local domain");
  domain_add_cmd->add_option("domain", domain_name)->required();

  auto* alias = cli.add_subcommand("alias", "Manage aliases");
  alias->require_subcommand(1);
  alias->add_option("--config", config, "Config file")->required();
  auto* alias_add_cmd = alias->add_subcommand("add", "Deliver mail for ALIAS to ACCOUNT");
  alias_add_cmd->add_option("alias", address)->required();
  alias_add_cmd->add_option("account", target)->required();

  auto* mail = cli.add_subcommand("mail", "Read an account's mail (stdin: its password)");
  mail->require_subcommand(1);
  mail->add_option("--config", config, "Config file")->required();
  std::optional<uint32_t> uid;
  std::string mailbox = "INBOX";
  auto* mail_list_cmd =
      mail->add_subcommand("list", "List a mailbox (INBOX), or print message --uid");
  mail_list_cmd->add_option("address", address)->required();
  mail_list_cmd->add_option("--uid", uid, "Print this message in full");
  mail_list_cmd->add_option("--mailbox", mailbox, "Mailbox to read (default INBOX)");

  auto* queue_cmd = cli.add_subcommand("queue", "The outbound queue");
  queue_cmd->require_subcommand(1);
  queue_cmd->add_option("--config", config, "Config file")->required();
  std::string queue_id;
  std::vector<CLI::App*> queue_actions;
  queue_actions.push_back(queue_cmd->add_subcommand("list", "Every queued message"));
  for (const auto& [verb, help] : std::vector<std::pair<const char*, const char*>>{
           {"show", "A message's recipients, attempts and last replies"},
           {"retry", "Try the message's pending recipients now"},
           {"delete", "Remove the message without a bounce"},
           {"hold", "Keep the message queued without trying it"},
           {"release", "Undo hold"}}) {
    auto* sub = queue_cmd->add_subcommand(verb, help);
    sub->add_option("id", queue_id, "Queue id")->required();
    queue_actions.push_back(sub);
  }
  auto* dkim = cli.add_subcommand("dkim", "DKIM signing keys and their DNS records");
  dkim->require_subcommand(1);
  dkim->add_option("--config", config, "Config file")->required();
  std::string dkim_domain;
  auto* dkim_show_cmd = dkim->add_subcommand("show", "Print the TXT records to publish");
  dkim_show_cmd->add_option("domain", dkim_domain, "One domain (default: all)");
  auto* dkim_rotate_cmd =
      dkim->add_subcommand("rotate", "Make a new Ed25519 and RSA key under new selectors");
  dkim_rotate_cmd->add_option("domain", dkim_domain)->required();

  DnsQueryOptions dq;
  auto* reports_cmd = cli.add_subcommand("reports", "Reports about mail authentication");
  reports_cmd->require_subcommand(1);
  auto* dmarc_cmd = reports_cmd->add_subcommand("dmarc", "DMARC aggregate reports (RFC 7489)");
  dmarc_cmd->require_subcommand(1);
  dmarc_cmd->add_option("--config", config, "Config file")->required();
  bool reports_all = false;
  auto* dmarc_send_cmd = dmarc_cmd->add_subcommand("send", "Send the reports of finished days now");
  dmarc_send_cmd->add_flag("--all", reports_all, "Include today's events");
  std::string reports_mailbox = "INBOX";
  auto* dmarc_show_cmd = dmarc_cmd->add_subcommand(
      "show", "Print the reports received by an account (stdin: its password)");
  dmarc_show_cmd->add_option("address", address)->required();
  dmarc_show_cmd->add_option("--mailbox", reports_mailbox, "Mailbox to read (default INBOX)");
  std::string dkim_keys;
  std::vector<std::string> dkim_messages;
  auto* verify_dkim_cmd = cli.add_subcommand(
      "verify-dkim", "Verify the DKIM signatures of message files against known key records");
  verify_dkim_cmd->add_option("--keys", dkim_keys, "File of NAME<TAB>RECORD lines")->required();
  verify_dkim_cmd->add_option("messages", dkim_messages, "Message files")->required();
  auto* dns_cmd = cli.add_subcommand("dns", "Look a name up with postern's validating resolver");
  dns_cmd->add_option("name", dq.name)->required();
  dns_cmd->add_option("type", dq.type, "A, AAAA, MX, TXT, TLSA, PTR, CNAME")->required();
  dns_cmd->add_option("--trust-anchor", dq.trust_anchor, "DS/DNSKEY records of the trust anchor");
  dns_cmd->add_option("--forward", dq.forwarders, "Forward to IP@port instead of recursing");
  dns_cmd->add_option("--option", dq.options, "unbound option name:value");
  dns_cmd->add_option("--unbound-config", dq.unbound_config, "unbound.conf to read first");
  dns_cmd->add_option("--resolve-zone", dq.unblock_zones,
                      "Special-use zone (RFC 6761) to resolve normally, e.g. test.");

  auto* check_cmd = cli.add_subcommand("check", "Check the store's consistency");
  check_cmd->add_option("--config", config, "Config file")->required();

  cli.add_subcommand("config-reference", "Print the configuration reference (Markdown)");
  // "postern mail list --config F ..." as well as "postern mail --config F list ...".
  for (auto* group : {user, domain, alias, mail})
    for (auto* sub : group->get_subcommands({})) sub->fallthrough();

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports usage errors by exception; --help and --version also arrive here (exit 0).
    int rc = cli.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }

  auto* sub = cli.get_subcommands().front();
  const std::string name = sub->get_name();
  if (name == "quickstart") return quickstart(qs, std::cout, std::cerr);
  if (name == "serve") return serve(config, std::cerr);
  if (name == "config-reference") {
    std::cout << config_reference();
    return exit_ok;
  }
  if (name == "check") return check(config, std::cout, std::cerr);
  if (name == "user") {
    if (*user_add_cmd) return user_add(config, address, std::cin, std::cout, std::cerr);
    if (*user_passwd_cmd)
      return user_passwd(config, address, std::cin, with_recovery, std::cout, std::cerr);
    if (*user_list_cmd) return user_list(config, std::cout, std::cerr);
    if (*user_quota_cmd) return user_quota(config, address, quota_bytes, std::cout, std::cerr);
    if (*user_delete_cmd) return user_delete(config, address, std::cout, std::cerr);
  }
  if (name == "domain" && *domain_add_cmd)
    return domain_add(config, domain_name, std::cout, std::cerr);
  if (name == "alias" && *alias_add_cmd)
    return alias_add(config, address, target, std::cout, std::cerr);
  if (name == "dns") return dns_query(dq, std::cout, std::cerr);
  if (name == "reports" && *dmarc_send_cmd)
    return dmarc_reports_send(config, reports_all, std::cout, std::cerr);
  if (name == "reports" && *dmarc_show_cmd)
    return dmarc_reports_show(config, address, reports_mailbox, std::cin, std::cout, std::cerr);
  if (name == "verify-dkim") return verify_dkim(dkim_keys, dkim_messages, std::cout, std::cerr);
  if (name == "queue")
    for (auto* a : queue_actions)
      if (*a) return queue_command(config, a->get_name(), queue_id, std::cout, std::cerr);
  if (name == "dkim" && *dkim_show_cmd) return dkim_show(config, dkim_domain, std::cout, std::cerr);
  if (name == "dkim" && *dkim_rotate_cmd)
    return dkim_rotate(config, dkim_domain, std::cout, std::cerr);
  if (name == "mail" && *mail_list_cmd)
    return mail_list(config, address, mailbox, std::cin, uid, std::cout, std::cerr);
  std::cerr << cli.help();
  return exit_usage;
}
