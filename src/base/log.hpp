// Structured log events: a stable event id plus key=value fields, one line each, so tests and
// operators can grep for "smtp.deliver.ok". Never pass message content, subjects, passwords or
// key material as a field: the zero-access promise covers the logs too.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace postern::base::log {

enum class Level { debug, info, warn, error };

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  template <class N>
  requires std::is_arithmetic_v<N> Field(std::string_view k, N v)
      : key(k), value(std::to_string(v)) {}
  std::string_view key;
  std::string value;
};

// Sends events to stderr, or to `file` when not empty. Safe to call once at start-up.
void init(Level min_level, const std::string& file);
void event(Level level, std::string_view id, std::initializer_list<Field> fields = {});

inline void info(std::string_view id, std::initializer_list<Field> f = {}) {
  event(Level::info, id, f);
}
inline void warn(std::string_view id, std::initializer_list<Field> f = {}) {
  event(Level::warn, id, f);
}
inline void error(std::string_view id, std::initializer_list<Field> f = {}) {
  event(Level::error, id, f);
}
inline void debug(std::string_view id, std::initializer_list<Field> f = {}) {
  event(Level::debug, id, f);
}

}  // namespace postern::base::log
