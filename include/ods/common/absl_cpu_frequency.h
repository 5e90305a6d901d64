#pragma once

namespace ods {

// Has abseil read the CPU's nominal frequency now, on the calling thread, rather than the first
// time a thread blocks on an absl::Mutex that other threads already wait for (Mutex::Block reads
// the waiter's priority then, and the frequency once per process). Call it once, before the
// process creates its first gRPC client channel (the CLI, ods_bench, test clients).
// Thread-safe; cheap after the first call.
//
// Why: that first read opens /sys/devices/system/cpu/cpu0/tsc_freq_khz, absent on most VMs,
// and leaves ENOENT in errno. gRPC 1.51 (Debian 12) reads connect()'s errno only after
// grpc_fd_create, which takes gRPC's mutexes; when the process's first such block happens there
// (several channels connecting at once), a connect in progress is reported as failed and the
// channel's calls fail UNAVAILABLE ("failed to connect to all addresses ... No such file or
// directory") until it reconnects ~1 s later.
void PrimeAbslCpuFrequency();

}  // namespace ods
