#include "ods/common/sha256.h"

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but EVP allocates a
// provider context on every EVP_DigestInit (OpenSSL 3.0, even with a reused EVP_MD_CTX and a
// pre-fetched EVP_MD): measured on the dev VM for a 48-byte key, EVP 1 allocation and ~480 ns per
// call, SHA256_* none and ~280 ns. API keys are hashed on every call, so the old API it is.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "ods/common/check.h"

namespace ods {

Sha256Digest Sha256(std::string_view data) {
  static_assert(SHA256_DIGEST_LENGTH == std::tuple_size_v<Sha256Digest>);
  SHA256_CTX ctx;
  Sha256Digest out{};
  const bool ok = SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data.data(), data.size()) == 1 &&
                  SHA256_Final(out.data(), &ctx) == 1;
  ODS_CHECK(ok);
  return out;
}

}  // namespace ods
