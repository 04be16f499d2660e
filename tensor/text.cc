#include "tensor/text.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dive {

std::string Printable(absl::string_view s, size_t max_chars) {
  if (s.size() <= max_chars) return absl::CHexEscape(s);
  return absl::StrCat(absl::CHexEscape(s.substr(0, max_chars)), "...");
}

}  // namespace dive
