#pragma once

// Invariant checks. A failed check is a bug, never an error a request can cause: it prints the
// condition and location to stderr and aborts. ODS_CHECK is on in every build; ODS_DCHECK only
// when NDEBUG is not defined.

namespace ods::internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}  // namespace ods::internal

#define ODS_CHECK(cond)                                              \
  do {                                                               \
    if (!(cond)) ::ods::internal::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (false)

#ifdef NDEBUG
#define ODS_DCHECK(cond) \
  do {                   \
  } while (false && (cond))
#else
#define ODS_DCHECK(cond) ODS_CHECK(cond)
#endif
