// File: cheatsheet/sheet_main.h
// -----------------------------------------------------------------------------
//
// What every section's binary (`bazel run //cheatsheet:<section>`) does
// first: parse the flags and start logging to stderr.
//
// Example:
//
//   int main(int argc, char** argv) {
//     dive::cheatsheet::InitSheetMain(argc, argv);
//     ...
//   }

#ifndef CHEATSHEET_SHEET_MAIN_H_
#define CHEATSHEET_SHEET_MAIN_H_

namespace dive::cheatsheet {

// InitSheetMain()
//
// Parses the command line's flags, sends glog to stderr and starts it.
void InitSheetMain(int argc, char** argv);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_SHEET_MAIN_H_
