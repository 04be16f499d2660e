// File: tensor/text.h
// -----------------------------------------------------------------------------
//
// `Printable(s)`: a string from outside (a checkpoint's metadata, a flag, a
// file name) made safe to print in a message or a log line. Control
// characters (ESC among them: "\e]0;title\a" retitles a terminal, "\e[2J"
// clears it), quotes, backslashes and bytes outside ASCII are written as C
// escapes, and a long string is cut to `max_chars` with "..." after it, so
// that nothing read from a file can steer the terminal it is printed on.
// Every message that echoes such a string goes through it:
//
//   absl::StrCat("unknown model '", Printable(name), "'")
//   // unknown model 'x\033]0;PWNED\007'

#ifndef TENSOR_TEXT_H_
#define TENSOR_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace dive {

std::string Printable(absl::string_view s, size_t max_chars = 256);

}  // namespace dive

#endif  // TENSOR_TEXT_H_
