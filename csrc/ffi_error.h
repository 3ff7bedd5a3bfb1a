// The error convention of qnet's C++ shims: no C++ exception crosses into Rust. Each extern "C"
// entry point runs its body through qnet_ffi_guard, which returns 0 on success and 1 on an
// exception, with a malloc'd, NUL-terminated message in *error_out (freed by qnet_free_string).

#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

// Copies `len` bytes at `data` into a malloc'd, NUL-terminated buffer (NULL when out of memory).
inline char* qnet_malloc_copy(const char* data, size_t len) {
  char* out = static_cast<char*>(std::malloc(len + 1));
  if (out != nullptr) {
    if (len > 0) {
      std::memcpy(out, data, len);
    }
    out[len] = '\0';
  }
  return out;
}

template <class Body>
int qnet_ffi_guard(char** error_out, Body&& body) {
  std::string message;
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown C++ exception";
  }
  if (error_out != nullptr) {
    *error_out = qnet_malloc_copy(message.data(), message.size());
  }
  return 1;
}
