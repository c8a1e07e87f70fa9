//! Run-time choice of the kernel variant (scalar, AVX2, AVX-512, NEON) and of the thread
//! count.
//!
//! The variant is detected once, at first use, from the CPU the process runs on
//! (`is_x86_feature_detected!` / `is_aarch64_feature_detected!`), never from compile-time
//! `cfg` alone: a binary built on one machine must not execute instructions another lacks
//! (candle's SIGILL bugs #1818 and #2140 came from exactly that). `EDGENLU_KERNELS` forces a
//! variant for tests and benchmarks.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A family of kernel implementations. Every variant computes the same ops; they differ only
/// in the instructions used and so in floating-point rounding (bounds in `kernels/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Portable Rust; the reference every other variant is tested against.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (256-bit).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI (`vpdpbusd`), plus the AVX2 set.
    Avx512,
    /// AArch64 Advanced SIMD; uses the dot-product extension (`sdot`) where present.
    Neon,
}

impl Variant {
    /// Every variant, best last.
    pub const ALL: [Variant; 4] = [
        Variant::Scalar,
        Variant::Neon,
        Variant::Avx2,
        Variant::Avx512,
    ];

    /// The lowercase name `EDGENLU_KERNELS` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Scalar => "scalar",
            Variant::Avx2 => "avx2",
            Variant::Avx512 => "avx512",
            Variant::Neon => "neon",
        }
    }

    /// Parses a name as `EDGENLU_KERNELS` spells it (case-insensitive).
    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the CPU this process runs on can execute this variant.
    pub fn is_supported(self) -> bool {
        match self {
            Variant::Scalar => true,
            Variant::Avx2 => has_avx2(),
            Variant::Avx512 => has_avx512(),
            Variant::Neon => has_neon(),
        }
    }

    /// The variants this CPU can run, scalar first.
    pub fn supported() -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| v.is_supported())
            .collect()
    }

    /// The fastest variant this CPU can run.
    pub fn best() -> Variant {
        Variant::ALL
            .into_iter()
            .rev()
            .find(|v| v.is_supported())
            .unwrap_or(Variant::Scalar)
    }

    /// A short description of the instructions this variant uses here (for `bench` output).
    pub fn describe(self) -> String {
        match self {
            Variant::Neon if has_neon_dotprod() => "neon+dotprod".into(),
            Variant::Avx512 => "avx512f/bw/vl+vnni".into(),
            Variant::Avx2 => "avx2+fma+f16c".into(),
            v => v.name().into(),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
#[cfg(not(target_arch = "aarch64"))]
fn has_neon() -> bool {
    false
}

/// Whether the NEON variant can use `sdot` (ARMv8.2 dot product).
#[cfg(target_arch = "aarch64")]
pub(crate) fn has_neon_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}
#[cfg(not(target_arch = "aarch64"))]
pub(crate) fn has_neon_dotprod() -> bool {
    false
}

/// The variant `EDGENLU_KERNELS` asks for: `Ok(None)` when unset or empty, an error naming
/// the problem when the name is unknown or this CPU cannot run that variant.
pub fn variant_from_env() -> Result<Option<Variant>, String> {
    let Ok(name) = std::env::var("EDGENLU_KERNELS") else {
        return Ok(None);
    };
    if name.trim().is_empty() {
        return Ok(None);
    }
    let v = Variant::parse(&name).ok_or_else(|| {
        format!("EDGENLU_KERNELS={name:?} is not one of scalar, avx2, avx512, neon")
    })?;
    if !v.is_supported() {
        return Err(format!(
            "EDGENLU_KERNELS={name:?}: this CPU cannot run the {v} variant (supported: {})",
            Variant::supported()
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Some(v))
}

static ACTIVE: OnceLock<Variant> = OnceLock::new();

thread_local! {
    /// The variant [`with_variant`] set for this thread, if any.
    static OVERRIDE: Cell<Option<Variant>> = const { Cell::new(None) };
}

/// The variant every op in [`crate::ops`] uses: chosen once per process, `EDGENLU_KERNELS` if
/// set and runnable here, else [`Variant::best`] (inside [`with_variant`], the variant it
/// sets). A bad `EDGENLU_KERNELS` falls back to the best variant with a warning on stderr
/// rather than failing every kernel call; callers that must be strict (tests forcing a
/// variant, `edgenlu bench`) check [`variant_from_env`].
pub fn active_variant() -> Variant {
    if let Some(v) = OVERRIDE.with(Cell::get) {
        return v;
    }
    process_variant()
}

/// Runs `f` with every op called on this thread using `v` (tests and benchmarks compare
/// variants op by op this way); an error, without running `f`, if this CPU cannot run `v`.
/// Calls nest; the previous choice is restored when `f` returns or unwinds.
pub fn with_variant<R>(v: Variant, f: impl FnOnce() -> R) -> Result<R, crate::KernelError> {
    if !v.is_supported() {
        return Err(crate::KernelError::InvalidArgument(format!(
            "kernel variant {v} is not supported by this CPU"
        )));
    }
    struct Restore(Option<Variant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(v))));
    Ok(f())
}

/// Runs `f` compiled for `v`'s instruction set: the same Rust code, which the compiler
/// vectorizes for 256-bit (AVX2) or 512-bit (AVX-512) registers inside a `#[target_feature]`
/// function (NEON is baseline on AArch64, so there and for `Scalar` `f` runs as compiled).
/// `f` and what it calls must be inlined into it to be vectorized: mark helpers
/// `#[inline(always)]`. A variant this CPU lacks runs `f` as compiled, never its instructions.
#[inline(always)]
pub(crate) fn vectorized<R>(v: Variant, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match v {
            // SAFETY: the CPU has every feature the wrapper enables (checked just before).
            Variant::Avx512 if has_avx512() => return unsafe { on_avx512(f) },
            // SAFETY: as above.
            Variant::Avx2 if has_avx2() => return unsafe { on_avx2(f) },
            _ => {}
        }
    }
    let _ = v;
    f()
}

/// `vectorize!(variant, expr)`: [`vectorized`] with `expr` as the body of an
/// `#[inline(always)]` closure, so it is compiled inside the variant's `#[target_feature]`
/// function rather than called from it at the baseline instruction set.
macro_rules! vectorize {
    ($variant:expr, $body:expr $(,)?) => {
        $crate::dispatch::vectorized(
            $variant,
            #[inline(always)]
            || $body,
        )
    };
}
pub(crate) use vectorize;

fn process_variant() -> Variant {
    *ACTIVE.get_or_init(|| match variant_from_env() {
        Ok(Some(v)) => v,
        Ok(None) => Variant::best(),
        Err(e) => {
            let best = Variant::best();
            eprintln!("warning: {e}; using {best}");
            best
        }
    })
}

/// 0 means "not set": use [`default_threads`].
static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The number of threads large kernels may split over: `EDGENLU_THREADS` if set to a positive
/// number, else the cores available to this process.
pub fn default_threads() -> usize {
    std::env::var("EDGENLU_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The current cap on threads per kernel call (at least 1).
pub fn max_threads() -> usize {
    match MAX_THREADS.load(Ordering::Relaxed) {
        0 => default_threads().max(1),
        n => n,
    }
}

/// Caps the threads one kernel call may use (benchmarks compare 1 and 2); 0 restores the
/// default. Affects every later call in the process.
pub fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Ordering::Relaxed);
}
