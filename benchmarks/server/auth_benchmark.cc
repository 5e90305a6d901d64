// Cost of the API-key check each ods.v1 call makes when security.api_keys is set (src/server/
// auth.h): SHA-256 of the presented key plus a hash-map lookup, for a key of `key_bytes`.

#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "auth.h"
#include "ods/common/sha256.h"
#include "ods/config/config.h"

namespace ods::server {
namespace {

void BM_Auth_AuthorizeKey(benchmark::State& state) {
  const std::string secret(static_cast<size_t>(state.range(0)), 'k');
  config::SecurityConfig security;
  for (int i = 0; i < 16; ++i) {
    config::ApiKeyConfig k;
    k.name = "key" + std::to_string(i);
    k.key_sha256 = Sha256(i == 7 ? secret : secret + std::to_string(i));
    k.role = config::Role::kWrite;
    security.api_keys.push_back(k);
  }
  const std::unique_ptr<Authenticator> auth = Authenticator::Create(security);
  for (auto _ : state) {
    const ApiKey* key = nullptr;
    Status s = auth->AuthorizeKey(secret, false, Method::kStoreGet, key);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(key);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_AuthorizeKey)->ArgNames({"key_bytes"})->Arg(32)->Arg(64);

}  // namespace
}  // namespace ods::server
