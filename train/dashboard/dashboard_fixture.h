// File: train/dashboard/dashboard_fixture.h
// -----------------------------------------------------------------------------
//
// What the dashboard's tests share (dashboard_test.cc: what it serves;
// dashboard_stress_test.cc: that no client can slow training, make it fail
// or grow its memory): a dashboard started on a free port with requests to
// it, observer calls as Train makes them, and the body of a response.
//
// Example:
//
//   using ::dive::train::testing::DashboardTest;
//
//   TEST_F(DashboardTest, ServesThePage) {
//     ASSERT_TRUE(Step(*dashboard_, 1).ok());
//     EXPECT_THAT(Body(Get("/api/metrics")), HasSubstr("\"steps\":[[1,"));
//   }

#ifndef TRAIN_DASHBOARD_DASHBOARD_FIXTURE_H_
#define TRAIN_DASHBOARD_DASHBOARD_FIXTURE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "train/dashboard/dashboard.h"

namespace dive::train::testing {

using Clock = std::chrono::steady_clock;

// The seconds since `start`.
double SecondsSince(Clock::time_point start);

// The body of an HTTP response.
std::string Body(const std::string& response);

// One training step's observer call, as Train makes it.
absl::Status Step(Dashboard& d, int64_t step, double loss = 0.5,
                  double accuracy = 0.5);

// A dashboard on a free port of 127.0.0.1 for a 2-epoch run of 2 classes
// ("t-shirt", "trouser") with a title that needs escaping.
class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The response to GET `target` with Host: `host` (the dashboard's own by
  // default) and `headers` ("Name: value\r\n" each).
  std::string Get(const std::string& target, const std::string& host,
                  const std::string& headers = "");
  std::string Get(const std::string& target) { return Get(target, host_); }

  // Two steps of a 2-class run and one epoch.
  void FeedOneEpoch();

  std::unique_ptr<Dashboard> dashboard_;
  std::string host_;
};

}  // namespace dive::train::testing

#endif  // TRAIN_DASHBOARD_DASHBOARD_FIXTURE_H_
