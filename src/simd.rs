//! Loops compiled twice, for AVX2 and for the baseline x86_64 target (SSE2), the AVX2 build
//! run where the CPU has it: the host kernel's narrow products and its Adam step then work
//! eight floats at a time instead of four. Both builds do the same IEEE operations in the same
//! order (Rust never fuses a multiply and an add on its own), so they give the same bits.

/// Whether this CPU runs the AVX2 builds of [`vectorized!`] functions.
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Defines `fn $name(avx2: bool, args)`, whose body is compiled twice, for AVX2 and for
/// the baseline target, and runs the AVX2 one where `avx2` (pass [`avx2()`]).
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        fn $name(avx2: bool, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: callers pass `avx2` true only where the CPU reported AVX2
                // ([`crate::simd::avx2`]).
                return unsafe { with_avx2($($arg),*) };
            }
            let _ = avx2;
            body($($arg),*)
        }
    };
}
pub(crate) use vectorized;
