#include "config/pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

namespace ods::config::internal {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr ReadOnlyBio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// A passphrase callback that refuses: an encrypted key is reported, never prompted for.
int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

std::string CheckCertificates(std::string_view pem) {
  BioPtr bio = ReadOnlyBio(pem);
  int count = 0;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (cert == nullptr) break;
    ++count;
  }
  const unsigned long err = ERR_peek_last_error();
  ERR_clear_error();
  // Running out of PEM blocks ends the loop with "no start line"; anything else is a bad block.
  const bool clean_end =
      err == 0 || (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE);
  if (count == 0) return "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)";
  if (!clean_end) return "holds a certificate that does not parse";
  return "";
}

std::string CheckPrivateKey(std::string_view pem) {
  BioPtr bio = ReadOnlyBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return "holds no readable PEM private key (expected an unencrypted -----BEGIN PRIVATE "
           "KEY----- block)";
  }
  return "";
}

std::string CheckKeyMatchesCertificate(std::string_view cert_pem, std::string_view key_pem) {
  BioPtr cert_bio = ReadOnlyBio(cert_pem);
  BioPtr key_bio = ReadOnlyBio(key_pem);
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassphrase, nullptr));
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  const bool match =
      cert != nullptr && key != nullptr && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return match ? "" : "does not match the certificate's public key";
}

}  // namespace ods::config::internal
