#include "tls_files.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "odsd_process.h"

namespace ods::testing {
namespace {

const char* const kOpenssl = "/usr/bin/openssl";

bool Run(const std::vector<std::string>& argv, std::string& error) {
  const CommandResult r = RunCommand(argv);
  if (r.exit_code == 0) return true;
  error.clear();
  for (const std::string& a : argv) error += a + " ";
  error += "exited " + std::to_string(r.exit_code) + ": " + r.err;
  return false;
}

// A key and a certificate signing request for `cn`.
bool MakeRequest(const std::string& key, const std::string& csr, const std::string& cn,
                 std::string& error) {
  return Run({kOpenssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn},
             error);
}

bool SelfSigned(const std::string& key, const std::string& cert, const std::string& cn,
                std::string& error) {
  return Run({kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn},
             error);
}

bool Sign(const std::string& dir, const std::string& csr, const std::string& ext,
          const std::string& serial, const std::string& cert, std::string& error) {
  return Run({kOpenssl, "x509", "-req", "-in", csr, "-CA", dir + "/ca.pem", "-CAkey",
              dir + "/ca.key", "-set_serial", serial, "-days", "2", "-out", cert, "-extfile", ext},
             error);
}

}  // namespace

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFileText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool MakeTlsFiles(const std::string& dir, TlsFiles& out, std::string& error) {
  WriteFileText(dir + "/server.ext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n");
  WriteFileText(dir + "/client.ext", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  out.ca_cert = dir + "/ca.pem";
  out.server_cert = dir + "/server.pem";
  out.server_key = dir + "/server.key";
  out.client_cert = dir + "/client.pem";
  out.client_key = dir + "/client.key";
  out.other_ca_cert = dir + "/other-ca.pem";
  out.other_key = dir + "/other-ca.key";
  return SelfSigned(dir + "/ca.key", out.ca_cert, "ods-test-ca", error) &&
         MakeRequest(out.server_key, dir + "/server.csr", "localhost", error) &&
         Sign(dir, dir + "/server.csr", dir + "/server.ext", "2", out.server_cert, error) &&
         MakeRequest(out.client_key, dir + "/client.csr", "ods-test-client", error) &&
         Sign(dir, dir + "/client.csr", dir + "/client.ext", "3", out.client_cert, error) &&
         SelfSigned(out.other_key, out.other_ca_cert, "ods-other-ca", error);
}

}  // namespace ods::testing
