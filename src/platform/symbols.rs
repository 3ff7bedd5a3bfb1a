//! Functions looked up by name in the libraries already loaded into the process (libtorch
//! and what it brought: its CUDA runtime, its BLAS), so that nothing here links against
//! them and a build of libtorch without one simply has none to offer.

use std::ffi::{c_char, c_void, CStr};

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The already loaded function `name`, if a loaded library has it.
pub fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_DEFAULT (null) searches the libraries already loaded; `name` is
    // NUL-terminated.
    let function = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
    (!function.is_null()).then_some(function)
}
