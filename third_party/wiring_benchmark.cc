// Smoke test of @google_benchmark//:benchmark_main (provides main()).

#include "Eigen/Dense"
#include "benchmark/benchmark.h"

namespace {

void BM_EigenMatMul(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n);
  Eigen::MatrixXf b = Eigen::MatrixXf::Random(n, n);
  Eigen::MatrixXf c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * int64_t{n} * n * n);
}
BENCHMARK(BM_EigenMatMul)->Arg(64)->Arg(256);

}  // namespace
