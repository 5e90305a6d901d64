#pragma once

#include <string>
#include <string_view>

// Private to ods_config: checks of PEM files named by server.tls (OpenSSL libcrypto), so a bad
// certificate or key stops odsd at config load, naming the file, instead of failing inside gRPC.
// Each returns "" when the check passes, else what is wrong (no key material in the text).
// Thread-safe.
namespace ods::config::internal {

// `pem` holds at least one X.509 certificate, and nothing that fails to parse as one.
std::string CheckCertificates(std::string_view pem);

// `pem` holds a private key (any type OpenSSL reads: RSA, EC, Ed25519; unencrypted).
std::string CheckPrivateKey(std::string_view pem);

// The private key in `key_pem` belongs to the first certificate in `cert_pem`. Both already
// passed their own checks.
std::string CheckKeyMatchesCertificate(std::string_view cert_pem, std::string_view key_pem);

}  // namespace ods::config::internal
