// File: tools/dashboard/assets.h
// -----------------------------------------------------------------------------
//
// The dashboard's page, script, style sheet and Chart.js, compiled into the
// binary (the genrule in tools/dashboard/BUILD writes assets.cc from the
// files), so a trainer serves them with nothing to find or fetch at run time.

#ifndef TOOLS_DASHBOARD_ASSETS_H_
#define TOOLS_DASHBOARD_ASSETS_H_

#include <cstddef>

namespace dive::tools::dashboard_assets {

extern const char kIndexHtml[];
extern const size_t kIndexHtmlSize;
extern const char kDashboardJs[];
extern const size_t kDashboardJsSize;
extern const char kDashboardCss[];
extern const size_t kDashboardCssSize;
extern const char kChartJs[];  // Chart.js 3.9.1 (MIT), Debian's libjs-chart.js
extern const size_t kChartJsSize;

}  // namespace dive::tools::dashboard_assets

#endif  // TOOLS_DASHBOARD_ASSETS_H_
