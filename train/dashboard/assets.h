// File: train/dashboard/assets.h
// -----------------------------------------------------------------------------
//
// The dashboard's page, script, style sheet and Chart.js, compiled into the
// binary (the genrule in train/dashboard/BUILD writes assets.cc from the
// files), so a trainer serves them with nothing to find or fetch at run time.

#ifndef TRAIN_DASHBOARD_ASSETS_H_
#define TRAIN_DASHBOARD_ASSETS_H_

#include <cstddef>

namespace dive::train::dashboard_assets {

extern const char kIndexHtml[];
extern const size_t kIndexHtmlSize;
extern const char kDashboardJs[];
extern const size_t kDashboardJsSize;
extern const char kDashboardCss[];
extern const size_t kDashboardCssSize;
extern const char kChartJs[];  // Chart.js 3.9.1 (MIT), Debian's libjs-chart.js
extern const size_t kChartJsSize;

}  // namespace dive::train::dashboard_assets

#endif  // TRAIN_DASHBOARD_ASSETS_H_
