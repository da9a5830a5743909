//! glibc malloc settings for a long-running process that builds large batches and frees them: without
//! them, glibc raises its mmap threshold after the first large free (up to 32 MiB), so later arrow buffers
//! and fold tables come from the heap arenas, and freed memory stays in the process. A fixed 1 MiB keeps
//! per-batch buffers (under 1 MiB at 8,192 rows) on the heap, where they are reused without page faults,
//! and maps everything larger. Measured (`benches/README.md`): initial load of 1M rows peak RSS
//! 481 → 350 MiB; upsert of 10k rows into 1M 2.15 s/143 MiB (256 KiB threshold: page faults) → 1.97 s/183 MiB.
//! A top pad of 8 MiB (slack kept when a heap grows or is trimmed; default 128 KiB) keeps the decode
//! threads' heaps from shrinking after every batch and faulting the same pages in again on the next:
//! 200k events, page faults 120k → 80k, system time 0.37 → 0.25 s; peak RSS +25 MiB.

/// Allocations from this size are mapped (and unmapped when freed) instead of carved from an arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
/// Free memory above this much at an arena's top goes back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 1024 * 1024;

/// Slack kept at an arena's top when it grows or is trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: libc::c_int = 8 * 1024 * 1024;

/// Applies the settings (once, before any thread starts); environment variables
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`) still win.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str, param, value| {
            if std::env::var_os(name).is_none() {
                // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        };
        set(
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        );
        set(
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        );
        set("MALLOC_TOP_PAD_", libc::M_TOP_PAD, TOP_PAD);
    }
}
