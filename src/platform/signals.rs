//! SIGINT and SIGTERM: the stop flag of a command that trains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Exit code after an interrupt (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

/// What SIGINT and SIGTERM do. Until a loop listens ([`StopFlag::listen`]), a signal ends the
/// process at once with [`INTERRUPTED`]: nothing is being trained then, and a signal must never
/// be swallowed while qnet waits (on a slow file system, say). While a loop listens, the first
/// signal raises the flag (the loop checkpoints and stops) and a second ends the process.
#[derive(Debug, Clone)]
pub struct StopFlag {
    raised: Arc<AtomicBool>,
    deaf: Arc<AtomicBool>,
}

impl StopFlag {
    /// Installs the handlers of SIGINT and SIGTERM for this process.
    pub fn install() -> Result<Self> {
        let stop = Self::unwired();
        for signal in [SIGINT, SIGTERM] {
            // Handlers run in the order they were registered: the two exits look at the flags
            // before the signal raises `raised`.
            flag::register_conditional_shutdown(signal, INTERRUPTED, Arc::clone(&stop.deaf))
                .context("installing the Ctrl-C handler")?;
            flag::register_conditional_shutdown(signal, INTERRUPTED, Arc::clone(&stop.raised))
                .context("installing the Ctrl-C handler")?;
            flag::register(signal, Arc::clone(&stop.raised))
                .context("installing the Ctrl-C handler")?;
        }
        Ok(stop)
    }

    /// A flag no signal raises yet.
    fn unwired() -> Self {
        Self {
            raised: Arc::new(AtomicBool::new(false)),
            deaf: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A stop was requested.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Signals raise the flag, rather than end the process, until the guard is dropped.
    pub fn listen(&self) -> Listening<'_> {
        self.deaf.store(false, Ordering::Relaxed);
        Listening(self)
    }
}

/// While it lives, a loop is looking at its [`StopFlag`].
#[derive(Debug)]
pub struct Listening<'a>(&'a StopFlag);

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.0.deaf.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_heard_only_while_it_listens() {
        let stop = StopFlag::unwired();
        assert!(stop.deaf.load(Ordering::Relaxed));
        {
            let _listening = stop.listen();
            assert!(!stop.deaf.load(Ordering::Relaxed));
            stop.raised.store(true, Ordering::Relaxed);
        }
        assert!(stop.deaf.load(Ordering::Relaxed) && stop.is_raised());
    }
}
