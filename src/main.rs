//! The `lakefold` command.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    let cli = match lakefold::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(lakefold::cli::EXIT_USAGE),
            };
        }
    };
    ExitCode::from(lakefold::cli::main(cli))
}

/// glibc grows and trims each heap with 128 KiB of slack by default, so the decode threads' heaps
/// shrink after every batch and fault the same pages in again on the next one (half of the kernel's time
/// in `run --once`). 8 MiB of slack keeps them: 30 % fewer page faults and ~10 % less time on the
/// 200k-event benchmark, for ~20 MiB more peak memory (benches/README.md). Setting it also fixes
/// glibc's mmap threshold at 128 KiB, as `GLIBC_TUNABLES=glibc.malloc.top_pad=...` does: measured with it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    const TOP_PAD: libc::c_int = 8 << 20;
    // SAFETY: `mallopt` only sets an allocator parameter; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
