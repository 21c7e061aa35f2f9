// Internal to server/: Asio helpers. Only .cpp files of this module include it.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>

#include <functional>
#include <memory>
#include <optional>

#include "base/error.hpp"

namespace postern::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
inline constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

// Suspends the calling coroutine until `start` calls its callback (from any thread), then
// resumes it on its own executor with the value. Deliberately not a coroutine itself: GCC 12
// mishandles lambda arguments of nested coroutine frames (a double free under ASan).
template <class T, class Start>
auto await_callback(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      [](auto handler, Start start) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start([h](T value) {
          auto ex = asio::get_associated_executor(*h);
          asio::dispatch(ex, [h, v = std::move(value)]() mutable { std::move (*h)(std::move(v)); });
        });
      },
      asio::use_awaitable, std::move(start));
}

// Runs `fn` on the blocking pool and resumes the caller with its result. T is a Result: an
// exception (bad_alloc from a huge message, say) becomes its error instead of escaping the
// pool thread and ending the process.
template <class T, class Fn>
auto run_blocking(asio::thread_pool& pool, Fn fn) {
  auto* p = &pool;
  return await_callback<T>([p, fn = std::move(fn)](auto cb) mutable {
    asio::post(*p, [fn = std::move(fn), cb = std::move(cb)]() mutable {
      std::optional<T> result;
      try {
        result.emplace(fn());
      } catch (const std::exception& e) {
        result.emplace(Error(std::make_error_code(std::errc::not_enough_memory), e.what()));
      }
      cb(std::move(*result));
    });
  });
}

}  // namespace postern::server
