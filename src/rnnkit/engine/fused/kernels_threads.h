// rnnkit fused kernels, part 4: threads. Included by kernels.cpp inside its anonymous namespace (the system
// headers are included at the top of kernels.cpp).
#pragma once

// Waits until done() holds: spins (a pause per look) for 10 µs, then yields the core at every look, so a
// thread that shares its core with the one it waits for (an oversubscribed machine) lets it run.
template <typename P>
void spin_until(P&& done) {
  std::chrono::steady_clock::time_point deadline;
  bool patient = true;
  for (int spins = 1; !done(); ++spins) {
    if (!patient) { std::this_thread::yield(); continue; }
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
    if (spins % 64 == 0) {  // the clock only for waits longer than a few hundred ns
      const auto now = std::chrono::steady_clock::now();
      if (spins == 64) deadline = now + std::chrono::microseconds(10);
      else patient = now < deadline;
    }
  }
}

// All threads of a unit-split forward meet here after every step. One atomic, no mutex, no condition
// variable: 0.13 µs median, 0.3 µs at the 99th percentile with two threads (measured). Every thread calls
// expect(n) with the team's size before its first wait.
struct SpinBarrier {
  std::atomic<int> count{1};  // written once, before the first wait: its cache line stays shared
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<int> generation{0};
  void expect(int n) { count.store(n, std::memory_order_relaxed); }
  void wait() {
    const int g = generation.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == count.load(std::memory_order_relaxed) - 1) {
      arrived.store(0, std::memory_order_relaxed);
      generation.store(g + 1, std::memory_order_release);
      return;
    }
    spin_until([&] { return generation.load(std::memory_order_acquire) != g; });
  }
};

struct NoSync {  // blocks of rows: each thread owns whole rows, nothing to wait for
  void wait() {}
};

// libgomp cannot start a team in a fork's child once the parent has run one (torch's ops do): it hangs. After
// a fork the kernels start threads of their own instead.
inline bool& forked() {
  static bool value = false;
  return value;
}
[[maybe_unused]] const bool fork_watch = pthread_atfork(nullptr, nullptr, [] { forked() = true; }) == 0;

// body(p, n) on each of a team of n threads (n = parts unless the OpenMP runtime gives fewer; the caller is
// p = 0), each with a one-thread BLAS. The team is torch's own OpenMP team (libgomp, reached through weak
// symbols): its threads exist already, and after every torch op they spin for a while waiting for the next
// one, so a thread of our own, started or woken next to them, shares a core with one of them. Measured at
// batch 1, 100 steps, H 256, through the layer (the input projection F.linear runs just before): helper
// threads of our own, kept between calls, 24 / 31 / 34 µs per step (RNN / GRU / LSTM); torch's team 5.8 /
// 11.5 / 15. Threads started for the call (14 µs each on an idle machine, a whole scheduler tick, 4 ms, with
// every core busy) are the fallback where torch's runtime is not libgomp, and after a fork.
template <typename F>
void run_team(int parts, F&& body) {
  auto each = [&body](int p, int n) {
    const int previous = blas_threads_local(1);
    body(p, n);
    blas_threads_local(previous);
  };
  using Each = decltype(each);
  if (parts > 1 && !forked() && GOMP_parallel && omp_get_thread_num && omp_get_num_threads) {
    GOMP_parallel([](void* e) { (*static_cast<Each*>(e))(omp_get_thread_num(), omp_get_num_threads()); }, &each,
                  unsigned(parts), 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int p = 1; p < parts; ++p) pool.emplace_back([&each, p, parts] { each(p, parts); });
  each(0, parts);
  for (auto& worker : pool) worker.join();
}

// Rows of different sequences never interact, so the batch is cut into `chunks` blocks of rows (starts[c] to
// starts[c+1], each sorted longest first with its own batch sizes bs[c]) that run the whole time loop on their
// own thread with a one-thread BLAS: no synchronisation per step. With one chunk the BLAS keeps `threads`
// threads (0: torch's setting), which wins at tiny batches.
template <typename F>
void run_chunks(int chunks, int threads, F&& body) {
  if (chunks <= 1) {
    int previous = threads > 0 ? blas_threads_local(threads) : -1;
    body(0);
    if (previous >= 0) blas_threads_local(previous);
    return;
  }
  run_team(chunks, [&body, chunks](int p, int n) {
    for (int c = p; c < chunks; c += n) body(c);
  });
}
