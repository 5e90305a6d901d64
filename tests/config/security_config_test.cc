// The `security:` section and `server.tls` of config.cc: API keys (digests, key files, roles,
// tables) and TLS files (read and checked at load), each error with FILE:LINE:COLUMN.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "ods/common/sha256.h"
#include "ods/config/config.h"
#include "support/odsd_process.h"
#include "support/test_util.h"
#include "support/tls_files.h"

namespace ods::config {
namespace {

using ::ods::testing::IsOk;
using ::ods::testing::StatusIs;
using ::ods::testing::TempDir;
using ::ods::testing::TlsFiles;
using ::ods::testing::WriteFileText;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Hex(const Sha256Digest& d) {
  std::string out;
  char buf[3];
  for (uint8_t b : d) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

std::string LoadError(std::string_view yaml) {
  Result<Config> r = LoadString(yaml, "test.yaml");
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  return r.ok() ? std::string() : r.status().message();
}

// --- API keys ----------------------------------------------------------------------------------

TEST(SecurityConfigTest, NoSecuritySectionMeansNoKeys) {
  Result<Config> r = LoadString("server: {shards: 2}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->security.api_keys.empty());
  EXPECT_FALSE(r->server.tls.has_value());
}

TEST(SecurityConfigTest, ApiKeysAreParsedInFileOrder) {
  TempDir dir;
  const std::string key_file = dir.path() + "/writer.key";
  WriteFileText(key_file, "writer-secret-0123456789\n");
  const std::string digest = Hex(Sha256("reader-secret-0123456789"));
  Result<Config> r = LoadString(
      "security:\n"
      "  api_keys:\n"
      "    svc-reader: {key_sha256: " +
          digest +
          ", role: read, tables: [user_profile, txn]}\n"
          "    svc.writer: {key_file: " +
          key_file +
          ", role: write}\n"
          "    ops: {key_sha256: " +
          Hex(Sha256("admin-secret-0123456789")) + ", role: admin}\n",
      "test.yaml");
  ASSERT_THAT(r, IsOk());
  const std::vector<ApiKeyConfig>& keys = r->security.api_keys;
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].name, "svc-reader");
  EXPECT_EQ(keys[0].role, Role::kRead);
  EXPECT_EQ(keys[0].key_sha256, Sha256("reader-secret-0123456789"));
  EXPECT_EQ(keys[0].tables, (std::vector<std::string>{"user_profile", "txn"}));
  EXPECT_EQ(keys[1].name, "svc.writer");
  EXPECT_EQ(keys[1].role, Role::kWrite);
  // The file's trailing newline is not part of the key.
  EXPECT_EQ(keys[1].key_sha256, Sha256("writer-secret-0123456789"));
  EXPECT_TRUE(keys[1].tables.empty());
  EXPECT_EQ(keys[2].role, Role::kAdmin);
}

TEST(SecurityConfigTest, UpperCaseDigestIsAccepted) {
  std::string digest = Hex(Sha256("reader-secret-0123456789"));
  for (char& c : digest) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Result<Config> r = LoadString(
      "security: {api_keys: {a: {key_sha256: " + digest + ", role: read}}}\n", "test.yaml");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->security.api_keys[0].key_sha256, Sha256("reader-secret-0123456789"));
}

TEST(SecurityConfigTest, BadDigestIsRejectedWithItsPosition) {
  const std::string e = LoadError(
      "security:\n"
      "  api_keys:\n"
      "    a: {key_sha256: abc123, role: read}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:21: security.api_keys.a.key_sha256: expected 64 hex"));
}

TEST(SecurityConfigTest, UnknownRoleIsRejectedWithItsPosition) {
  const std::string e = LoadError(
      "security:\n"
      "  api_keys:\n"
      "    a: {key_sha256: " +
      Hex(Sha256("k")) + ", role: root}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:93: security.api_keys.a.role: unknown value 'root'; "
                            "expected one of: read, write, admin"));
}

TEST(SecurityConfigTest, KeyWithoutSecretOrRoleIsRejectedAtItsName) {
  const std::vector<std::string> lines = [] {
    std::vector<std::string> out;
    std::string e = LoadError("security:\n  api_keys:\n    a: {tables: [t]}\n");
    size_t start = 0;
    for (size_t nl; (nl = e.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(e.substr(start, nl - start));
    }
    out.push_back(e.substr(start));
    return out;
  }();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], StartsWith("test.yaml:3:5: security.api_keys.a: missing 'key_sha256' or "
                                   "'key_file'"));
  EXPECT_THAT(lines[1], StartsWith("test.yaml:3:5: security.api_keys.a: missing 'role'"));
}

TEST(SecurityConfigTest, BothDigestAndFileIsRejected) {
  TempDir dir;
  WriteFileText(dir.path() + "/k", "0123456789abcdef0123");
  const std::string e = LoadError("security: {api_keys: {a: {key_sha256: " + Hex(Sha256("k")) +
                                  ", key_file: " + dir.path() + "/k, role: read}}}\n");
  EXPECT_THAT(e, HasSubstr("security.api_keys.a: give one of 'key_sha256' and 'key_file'"));
}

TEST(SecurityConfigTest, AdminKeyLimitedToTablesIsRejected) {
  const std::string e = LoadError(
      "security:\n"
      "  api_keys:\n"
      "    ops: {key_sha256: " +
      Hex(Sha256("k")) + ", role: admin, tables: [t]}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:110: security.api_keys.ops.tables: not allowed for role "
                            "admin"));
}

TEST(SecurityConfigTest, EmptyTablesListIsRejected) {
  const std::string e = LoadError("security: {api_keys: {a: {key_sha256: " + Hex(Sha256("k")) +
                                  ", role: read, tables: []}}}\n");
  EXPECT_THAT(e, HasSubstr("security.api_keys.a.tables: expected a non-empty list"));
}

TEST(SecurityConfigTest, TheSameKeyTwiceIsRejectedAtTheSecond) {
  const std::string digest = Hex(Sha256("shared-secret-0123456789"));
  const std::string e = LoadError(
      "security:\n"
      "  api_keys:\n"
      "    a: {key_sha256: " +
      digest +
      ", role: read}\n"
      "    b: {key_sha256: " +
      digest + ", role: write}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:4:5: security.api_keys.b: the same key as 'a'"));
}

TEST(SecurityConfigTest, BadKeyNameIsRejected) {
  const std::string e = LoadError(
      "security: {api_keys: {'svc a': {key_sha256: " + Hex(Sha256("k")) + ", role: read}}}\n");
  EXPECT_THAT(e, HasSubstr("bad API key name 'svc a'"));
}

TEST(SecurityConfigTest, UnreadableKeyFileIsRejectedNamingTheFile) {
  const std::string e = LoadError(
      "security:\n"
      "  api_keys:\n"
      "    a: {key_file: /nonexistent/ods.key, role: read}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:3:19: security.api_keys.a.key_file: cannot read key file "
                            "'/nonexistent/ods.key'"));
}

TEST(SecurityConfigTest, ShortKeyInKeyFileIsRejectedWithoutShowingIt) {
  TempDir dir;
  WriteFileText(dir.path() + "/short.key", "tiny-secret\n");
  const std::string e = LoadError("security: {api_keys: {a: {key_file: " + dir.path() +
                                  "/short.key, role: read}}}\n");
  EXPECT_THAT(e, HasSubstr("has 11 bytes; expected at least 16"));
  EXPECT_THAT(e, Not(HasSubstr("tiny-secret")));
}

TEST(SecurityConfigTest, UnknownKeyInApiKeyIsRejected) {
  const std::string e = LoadError("security: {api_keys: {a: {key: plain, role: read}}}\n");
  EXPECT_THAT(e, HasSubstr("unknown key 'key' in security.api_keys.a; expected one of: "
                           "key_sha256, key_file, role, tables"));
}

// --- TLS ---------------------------------------------------------------------------------------

class TlsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(MakeTlsFiles(dir_.path(), files_, error)) << error;
  }
  TempDir dir_;
  TlsFiles files_;
};

TEST_F(TlsConfigTest, TlsFilesAreReadAtLoad) {
  Result<Config> r =
      LoadString("server:\n  tls: {cert: " + files_.server_cert + ", key: " + files_.server_key +
                     ", client_ca: " + files_.ca_cert + ", require_client_cert: true}\n",
                 "test.yaml");
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->server.tls.has_value());
  const TlsConfig& tls = *r->server.tls;
  EXPECT_EQ(tls.cert_path, files_.server_cert);
  EXPECT_THAT(tls.cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(tls.key_pem, HasSubstr("PRIVATE KEY"));
  EXPECT_THAT(tls.client_ca_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_TRUE(tls.require_client_cert);
}

TEST_F(TlsConfigTest, MissingCertFileIsRejectedNamingIt) {
  const std::string e = LoadError(
      "server:\n  tls: {cert: /nonexistent/server.pem, key: " + files_.server_key + "}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:15: server.tls.cert: cannot read certificate file "
                            "'/nonexistent/server.pem'"));
}

TEST_F(TlsConfigTest, FileThatIsNoCertificateIsRejectedNamingIt) {
  const std::string junk = dir_.path() + "/junk.pem";
  WriteFileText(junk, "not a certificate\n");
  const std::string e =
      LoadError("server:\n  tls: {cert: " + junk + ", key: " + files_.server_key + "}\n");
  EXPECT_THAT(
      e, StartsWith("test.yaml:2:15: server.tls.cert: '" + junk + "' holds no PEM certificate"));
}

TEST_F(TlsConfigTest, KeyFileThatIsNoKeyIsRejectedNamingIt) {
  const std::string e = LoadError("server:\n  tls: {cert: " + files_.server_cert +
                                  ", key: " + files_.server_cert + "}\n");
  EXPECT_THAT(e, HasSubstr("server.tls.key: '" + files_.server_cert +
                           "' holds no readable PEM private key"));
}

TEST_F(TlsConfigTest, KeyOfAnotherCertificateIsRejected) {
  const std::string e = LoadError("server:\n  tls: {cert: " + files_.server_cert +
                                  ", key: " + files_.other_key + "}\n");
  EXPECT_THAT(e, HasSubstr("server.tls.key: '" + files_.other_key +
                           "' does not match the certificate's public key"));
}

TEST_F(TlsConfigTest, RequiringClientCertsNeedsAClientCa) {
  const std::string e = LoadError("server:\n  tls: {cert: " + files_.server_cert +
                                  ", key: " + files_.server_key + ", require_client_cert: true}\n");
  EXPECT_THAT(e, HasSubstr("server.tls.require_client_cert: needs server.tls.client_ca"));
}

TEST_F(TlsConfigTest, TlsWithoutKeyIsRejectedAtTls) {
  const std::string e = LoadError("server:\n  tls: {cert: " + files_.server_cert + "}\n");
  EXPECT_THAT(e, StartsWith("test.yaml:2:3: server.tls: missing 'key'"));
}

TEST_F(TlsConfigTest, BadRequireClientCertIsRejected) {
  const std::string e =
      LoadError("server:\n  tls: {cert: " + files_.server_cert + ", key: " + files_.server_key +
                ", client_ca: " + files_.ca_cert + ", require_client_cert: maybe}\n");
  EXPECT_THAT(e, HasSubstr("server.tls.require_client_cert: unknown value 'maybe'; expected one "
                           "of: true, false"));
}

TEST(SecurityConfigTest, ShippedConfigBindsToLoopbackOnlyWithNoKeysAndNoTls) {
  Result<Config> r = LoadString(EmbeddedDefaultYaml(), "<embedded>");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->server.grpc_listen, StartsWith("127.0.0.1:"));
  EXPECT_THAT(r->server.admin_listen, StartsWith("127.0.0.1:"));
  EXPECT_TRUE(r->security.api_keys.empty());
  EXPECT_FALSE(r->server.tls.has_value());
}

TEST(SecurityConfigTest, EverySecurityKeyIsDocumented) {
  const std::string doc =
      ::ods::testing::ReadFileText(::ods::testing::SourceDir() + "/docs/configuration.md");
  ASSERT_FALSE(doc.empty());
  for (const char* key : {"server.tls.cert", "server.tls.key", "server.tls.client_ca",
                          "server.tls.require_client_cert", "security.api_keys.NAME",
                          "security.api_keys.NAME.key_sha256", "security.api_keys.NAME.key_file",
                          "security.api_keys.NAME.role", "security.api_keys.NAME.tables"}) {
    EXPECT_THAT(doc, HasSubstr("| `" + std::string(key) + "` |")) << key;
  }
}

}  // namespace
}  // namespace ods::config
