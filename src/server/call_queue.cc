#include "call_queue.h"

#include <algorithm>
#include <utility>

namespace ods::server {

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

void CallQueue::Run() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) static_cast<CallTag*>(tag)->Proceed(ok);
}

void CallQueue::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stop_ || !work_.empty(); });
    if (work_.empty()) return;  // stopping, nothing left
    std::function<void()> work = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    work();
    lock.lock();
  }
}

}  // namespace ods::server
