//! `qnet`: parse the command line, run it, turn any error into one message and an exit code.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Past a file-size limit (`ulimit -f`, which batch systems set) the kernel sends SIGXFSZ,
    // whose default action kills the process without a word. Ignored, the write fails with
    // EFBIG instead, and the error names the file.
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread is started, runs
    // no handler code and touches no memory of this program.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = qnet::cli::Cli::parse();
    // A panic (libtorch reports some failures, such as an allocation it cannot make, as one
    // through tch) ends as one error line, like any other error: no backtrace.
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| cli.run()));
    let message = match outcome {
        Ok(Ok(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Output piped into `head` and the like: stop quietly, as ripgrep does.
        Ok(Err(err)) if qnet::cli::is_broken_pipe(&err) => return ExitCode::SUCCESS,
        Ok(Err(err)) => format!("{err:#}"),
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            format!("qnet failed unexpectedly (inside libtorch or qnet): {text}")
        }
    };
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::FAILURE
}
