#pragma once

// Latencies in fixed buckets: the server's per-RPC handler times and the engine's per-table
// read times, rendered as Prometheus histograms.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace ods {

// Counts of durations in fixed buckets (upper bounds 25 us .. 10 s, then +Inf), their sum and
// count. Record is lock-free (relaxed atomics: a scrape may see a record's bucket before its sum,
// which a histogram tolerates). Thread-safe.
class LatencyHistogram {
 public:
  static constexpr std::array<uint64_t, 18> kUpperMicros = {
      25,     50,     100,     250,     500,     1'000,     2'500,     5'000,     10'000,
      25'000, 50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};

  void Record(std::chrono::steady_clock::duration d) {
    const auto micros = static_cast<uint64_t>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
    size_t b = 0;
    while (b < kUpperMicros.size() && micros > kUpperMicros[b]) ++b;
    buckets_[b].fetch_add(1, std::memory_order_relaxed);
    sum_micros_.fetch_add(micros, std::memory_order_relaxed);
  }

  // How many durations were recorded.
  uint64_t count() const {
    uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }

  // The upper bound (microseconds) of the bucket holding quantile `q` (0 < q <= 1) of what was
  // recorded: an upper estimate, exact to the bucket. 0 when nothing was recorded; the last
  // finite bound + 1 when the quantile is past it.
  uint64_t QuantileUpperMicros(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    const auto rank = static_cast<uint64_t>(q * static_cast<double>(n) + 0.999999);
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kUpperMicros.size(); ++b) {
      cumulative += buckets_[b].load(std::memory_order_relaxed);
      if (cumulative >= rank) return kUpperMicros[b];
    }
    return kUpperMicros.back() + 1;
  }

  // Appends the histogram's series `name{method="METHOD",le=...}`, `name_sum`, `name_count`
  // (no HELP/TYPE lines: the caller writes them once per name).
  void Render(std::string_view name, std::string_view method, std::string& out) const {
    RenderLabeled(name, "method=\"" + std::string(method) + "\"", out);
  }

  // As Render, with `labels` (e.g. `table="t"`) as the series' labels besides le.
  void RenderLabeled(std::string_view name, const std::string& labels_text,
                     std::string& out) const {
    const std::string method_labels = "{" + labels_text;
    uint64_t cumulative = 0;
    const std::string labels = method_labels + ",le=\"";
    for (size_t b = 0; b <= kUpperMicros.size(); ++b) {
      cumulative += buckets_[b].load(std::memory_order_relaxed);
      const std::string le =
          b < kUpperMicros.size() ? SecondsText(kUpperMicros[b]) : std::string("+Inf");
      out.append(name).append("_bucket").append(labels).append(le).append("\"} ");
      out.append(std::to_string(cumulative)).append("\n");
    }
    out.append(name).append("_sum").append(method_labels).append("} ");
    out.append(SecondsText(sum_micros_.load(std::memory_order_relaxed))).append("\n");
    out.append(name).append("_count").append(method_labels).append("} ");
    out.append(std::to_string(cumulative)).append("\n");
  }

 private:
  // Exact decimal seconds of a whole number of microseconds, e.g. 2500 -> "0.0025".
  static std::string SecondsText(uint64_t micros) {
    std::string frac = std::to_string(micros % 1'000'000);
    frac.insert(0, 6 - frac.size(), '0');
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    return std::to_string(micros / 1'000'000) + (frac.empty() ? "" : "." + frac);
  }

  std::array<std::atomic<uint64_t>, kUpperMicros.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_micros_{0};
};

// Records the time from its construction to its destruction into `histogram`.
class ScopedLatency {
 public:
  explicit ScopedLatency(LatencyHistogram& histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedLatency() { histogram_.Record(std::chrono::steady_clock::now() - start_); }
  ScopedLatency(const ScopedLatency&) = delete;
  ScopedLatency& operator=(const ScopedLatency&) = delete;

 private:
  LatencyHistogram& histogram_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace ods
