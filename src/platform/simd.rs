//! Loops compiled twice, for AVX2 and for the baseline x86_64 target (SSE2), the AVX2 build
//! run where the CPU has it: the host kernel's narrow products and its Adam step then work
//! eight floats at a time instead of four. Both builds do the same IEEE operations in the same
//! order (Rust never fuses a multiply and an add on its own), so they give the same bits.

/// Proof that this CPU runs AVX2 instructions. Only [`Avx2::detect`] makes one (the field is
/// private to this module), so the AVX2 build of a [`vectorized!`] function can only be
/// reached on a CPU that reported AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx2 {
    _detected: (),
}

impl Avx2 {
    /// The proof, where this CPU reports AVX2; `None` elsewhere.
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self { _detected: () });
        }
        None
    }
}

/// Defines `fn $name(avx2: Option<Avx2>, args)`, whose body is compiled twice, for AVX2 and
/// for the baseline target; it runs the AVX2 build when handed the proof ([`Avx2::detect`])
/// and the baseline one when handed `None`.
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        fn $name(
            avx2: Option<$crate::platform::simd::Avx2>,
            $($arg: $ty),*
        ) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if avx2.is_some() {
                // SAFETY: an `Avx2` exists only where `Avx2::detect` found that this CPU
                // runs AVX2, which is all `with_avx2` requires.
                return unsafe { with_avx2($($arg),*) };
            }
            let _ = avx2;
            body($($arg),*)
        }
    };
}
pub(crate) use vectorized;
