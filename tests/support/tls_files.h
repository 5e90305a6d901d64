#pragma once

#include <string>

namespace ods::testing {

// Certificates made at test time with the `openssl` command (EC P-256, valid 2 days): a CA, a
// server certificate for localhost and 127.0.0.1 (subjectAltName) and a client certificate,
// both signed by the CA, plus a second, unrelated CA and key. Paths are absolute PEM files.
struct TlsFiles {
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string other_ca_cert;  // self-signed, signs nothing here
  std::string other_key;      // matches other_ca_cert, not server_cert
};

// Writes the files into `dir` (which must exist). False, with the failing command and its
// output in `error`, if openssl fails.
bool MakeTlsFiles(const std::string& dir, TlsFiles& out, std::string& error);

// The contents of `path` ("" if unreadable).
std::string ReadFileText(const std::string& path);

// `text` into `path` (replaced).
void WriteFileText(const std::string& path, const std::string& text);

}  // namespace ods::testing
