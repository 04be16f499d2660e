// File: tensor/testing/logged_warnings.h
// -----------------------------------------------------------------------------
//
// `LoggedWarnings` collects the glog warnings logged while it lives: for
// tests that check that something warns once, or not at all.
//
// Example:
//
//   LoggedWarnings warnings;
//   RunTheFallback();
//   EXPECT_THAT(warnings.lines, ElementsAre(StartsWith("AMX self-check")));
//   EXPECT_THAT(warnings.With("--resize"), IsEmpty());

#ifndef TENSOR_TESTING_LOGGED_WARNINGS_H_
#define TENSOR_TESTING_LOGGED_WARNINGS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "glog/logging.h"

namespace dive {

class LoggedWarnings : public google::LogSink {
 public:
  LoggedWarnings() { google::AddLogSink(this); }
  ~LoggedWarnings() override { google::RemoveLogSink(this); }
  LoggedWarnings(const LoggedWarnings&) = delete;
  LoggedWarnings& operator=(const LoggedWarnings&) = delete;

  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* /*base_filename*/, int /*line*/,
            const google::LogMessageTime& /*time*/, const char* message,
            size_t length) override {
    if (severity == google::GLOG_WARNING) lines.emplace_back(message, length);
  }

  // The lines that contain `text`.
  std::vector<std::string> With(const std::string& text) const {
    std::vector<std::string> found;
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) found.push_back(line);
    }
    return found;
  }

  // The warnings' messages, in the order they were logged.
  std::vector<std::string> lines;
};

}  // namespace dive

#endif  // TENSOR_TESTING_LOGGED_WARNINGS_H_
