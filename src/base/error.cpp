#include "base/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace postern {

std::string Error::describe() const {
  std::string s = code_.message();
  if (!detail_.empty()) s += ": " + detail_;
  return s;
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
  std::fprintf(stderr, "postern: fatal: value() of a failed Result at %s:%u: %s\n", loc.file_name(),
               static_cast<unsigned>(loc.line()), e.describe().c_str());
  std::abort();
}

}  // namespace postern
