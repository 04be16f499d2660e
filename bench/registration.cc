#include "bench/registration.h"

#include <algorithm>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "benchmark/benchmark.h"
#include "tensor/tensor.h"

namespace dive::bench {

int Cores() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

void Register(const std::string& name,
              std::function<void(benchmark::State&)> fn) {
  auto* b = benchmark::RegisterBenchmark(
      name.c_str(), [fn = std::move(fn)](benchmark::State& state) {
        SetNumThreads(static_cast<int>(state.range(0)));
        fn(state);
        SetNumThreads(0);
      });
  b->ArgName("threads")->Arg(1);
  if (Cores() > 1) b->Arg(Cores());
  b->UseRealTime();
}

}  // namespace dive::bench
