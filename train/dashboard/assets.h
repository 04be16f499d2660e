// File: train/dashboard/assets.h
// -----------------------------------------------------------------------------
//
// The dashboard's page, script, style sheet and Chart.js, compiled into the
// binary (the genrule in train/dashboard/BUILD writes assets.cc from the
// files), so a trainer serves them with nothing to find or fetch at run time.
// Each is there twice: as it is, and gzipped once at build time (`gzip -9n`)
// for the clients that take gzip, so that no request costs a compression.

#ifndef TRAIN_DASHBOARD_ASSETS_H_
#define TRAIN_DASHBOARD_ASSETS_H_

#include <cstddef>

namespace dive::train::dashboard_assets {

struct Asset {
  const char* data;
  size_t size;
  const unsigned char* gzip;  // the same bytes, gzipped
  size_t gzip_size;
};

extern const Asset kIndexHtml;
extern const Asset kDashboardJs;
extern const Asset kDashboardCss;
extern const Asset kChartJs;  // Chart.js 3.9.1 (MIT), Debian's libjs-chart.js

}  // namespace dive::train::dashboard_assets

#endif  // TRAIN_DASHBOARD_ASSETS_H_
