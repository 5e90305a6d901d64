#include "call_queue.h"

#include <grpc/support/time.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace ods::server {
namespace {

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// On a queue thread (CallQueue::Run): when its current busy period began, i.e. when it last
// found the queue empty and then got work. Other threads: never busy.
thread_local int64_t busy_since_micros = INT64_MAX;

}  // namespace

void CallQueue::Start() {
  for (size_t i = 0; i < std::max<size_t>(options_.threads, 1); ++i) {
    threads_.emplace_back([this] { Run(); });
  }
  for (size_t i = 0; i < options_.blocking_workers; ++i) workers_.emplace_back([this] { Work(); });
}

void CallQueue::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();  // they run what is left first
  cq_->Shutdown();
  if (threads_.empty()) Run();  // never started: frees the calls still listening
  for (std::thread& thread : threads_) thread.join();
}

bool CallQueue::RunBlocking(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (work_.size() >= options_.max_blocking_queued) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    work_.push_back(std::move(work));
  }
  work_cv_.notify_one();
  return true;
}

size_t CallQueue::blocking_queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return work_.size();
}

Status CallQueue::QueueFullError() const {
  return ResourceExhaustedError(
      std::to_string(options_.max_blocking_queued) + " calls already wait for the server's " +
      std::to_string(options_.blocking_workers) + " blocking workers (the limit); retry later");
}

bool CallQueue::Spill(std::function<void()> work) {
  if (options_.spill_after_micros <= 0 || busy_since_micros == INT64_MAX ||
      SteadyMicros() - busy_since_micros < options_.spill_after_micros) {
    return false;
  }
  if (spilled_pending_.fetch_add(1, std::memory_order_relaxed) >= options_.max_spilled) {
    spilled_pending_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Only to a worker that is idle now: behind a backfill the lookup would wait far longer.
    if (stop_ || idle_workers_ == 0 || !work_.empty()) {
      spilled_pending_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    work_.push_back([this, work = std::move(work)] {
      work();
      spilled_pending_.fetch_sub(1, std::memory_order_relaxed);
    });
  }
  spilled_.fetch_add(1, std::memory_order_relaxed);
  work_cv_.notify_one();
  return true;
}

void CallQueue::Run() {
  void* tag = nullptr;
  bool ok = false;
  // A first look that does not wait tells an empty queue (the busy period ended) from work that
  // was already there (it goes on).
  const gpr_timespec now = gpr_inf_past(GPR_CLOCK_MONOTONIC);
  while (true) {
    switch (cq_->AsyncNext(&tag, &ok, now)) {
      case grpc::CompletionQueue::SHUTDOWN:
        return;
      case grpc::CompletionQueue::TIMEOUT:
        busy_since_micros = INT64_MAX;
        if (!cq_->Next(&tag, &ok)) return;
        busy_since_micros = SteadyMicros();
        break;
      case grpc::CompletionQueue::GOT_EVENT:
        if (busy_since_micros == INT64_MAX) busy_since_micros = SteadyMicros();
        break;
    }
    static_cast<CallTag*>(tag)->Proceed(ok);
  }
}

void CallQueue::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    ++idle_workers_;
    work_cv_.wait(lock, [this] { return stop_ || !work_.empty(); });
    --idle_workers_;
    if (work_.empty()) return;  // stopping, nothing left
    std::function<void()> work = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    work();
    lock.lock();
  }
}

}  // namespace ods::server
