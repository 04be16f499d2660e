#include "train/dashboard/dashboard_fixture.h"

#include <limits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "train/dashboard/test_client.h"
#include "train/observer.h"

namespace dive::train::testing {

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

absl::Status Step(Dashboard& d, int64_t step, double loss, double accuracy) {
  TrainState state;
  state.position.global_step = step;
  state.position.step = step;
  return d.OnStep(state, StepInfo{1000, 32, loss, accuracy, 0.1f});
}

void DashboardTest::SetUp() {
  absl::StatusOr<std::unique_ptr<Dashboard>> d =
      Dashboard::Start({.port = 0,
                        .title = "LeNet \"test\"\n",
                        .epochs = 2,
                        .class_names = {"t-shirt", "trouser"}},
                       /*profiler=*/nullptr);
  ASSERT_TRUE(d.ok()) << d.status();
  dashboard_ = *std::move(d);
  host_ = absl::StrCat("127.0.0.1:", dashboard_->port());
}

std::string DashboardTest::Get(const std::string& target,
                               const std::string& host,
                               const std::string& headers) {
  return Exchange(dashboard_->port(),
                  absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host,
                               "\r\n", headers, "Connection: close\r\n\r\n"));
}

void DashboardTest::FeedOneEpoch() {
  TrainState state;
  for (int64_t step = 1; step <= 2; ++step) {
    state.position.global_step = step;
    state.position.step = step;
    const double loss =
        step == 2 ? std::numeric_limits<double>::quiet_NaN() : 0.75;
    ASSERT_TRUE(
        dashboard_->OnStep(state, StepInfo{2, 32, loss, 0.5, 0.1f}).ok());
  }
  EpochMetrics m;
  m.epoch = 1;
  m.loss = 0.625;
  m.train_acc = 0.5;
  m.test_acc = 0.25;
  m.seconds = 1.5;
  m.examples_per_sec = 42.5;
  m.confusion = {{3, 1}, {2, 0}};
  ASSERT_TRUE(dashboard_->OnEpoch(state, m).ok());
}

}  // namespace dive::train::testing
