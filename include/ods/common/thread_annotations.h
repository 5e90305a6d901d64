#pragma once

// Clang thread-safety annotations (checked with -Wthread-safety under clang; no-ops under gcc).
// Lock rules live in declarations so the compiler, not a reviewer, checks them.

#if defined(__clang__)
#define ODS_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define ODS_THREAD_ANNOTATION_(x)
#endif

#define ODS_GUARDED_BY(x) ODS_THREAD_ANNOTATION_(guarded_by(x))
#define ODS_PT_GUARDED_BY(x) ODS_THREAD_ANNOTATION_(pt_guarded_by(x))
#define ODS_REQUIRES(...) ODS_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define ODS_REQUIRES_SHARED(...) ODS_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#define ODS_EXCLUDES(...) ODS_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#define ODS_CAPABILITY(x) ODS_THREAD_ANNOTATION_(capability(x))
#define ODS_SCOPED_CAPABILITY ODS_THREAD_ANNOTATION_(scoped_lockable)
#define ODS_ACQUIRE(...) ODS_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ODS_ACQUIRE_SHARED(...) ODS_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define ODS_RELEASE(...) ODS_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define ODS_RELEASE_SHARED(...) ODS_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
