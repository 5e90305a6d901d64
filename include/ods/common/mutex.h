#pragma once

#include <mutex>

#include "ods/common/thread_annotations.h"

namespace ods {

// An exclusive mutex carrying thread-safety annotations. Thread-safe.
class ODS_CAPABILITY("mutex") Mutex {
 public:
  void Lock() ODS_ACQUIRE() { mu_.lock(); }
  void Unlock() ODS_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for the scope.
class ODS_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ODS_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() ODS_RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace ods
