//! The one signal handler: SIGINT, SIGTERM and SIGHUP, each with its shell exit code (130, 143,
//! 129). A dropped terminal (SIGHUP) stops like SIGTERM: nothing started goes on without a
//! person watching it.

use crate::exit_code::{HUNG_UP, INTERRUPTED, TERMINATED};

/// Waits for SIGINT (Ctrl-C), SIGTERM or SIGHUP; returns the exit code for it.
pub(super) async fn until_signal() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            return tokio::select! {
                _ = interrupt.recv() => INTERRUPTED,
                _ = terminate.recv() => TERMINATED,
                _ = hangup.recv() => HUNG_UP,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    INTERRUPTED
}

/// For a live run: on a signal, end every process group the run started, wait for the journal
/// write in flight, say `hint` (how to resume), and exit with the signal's code. The run stays
/// resumable.
pub(super) fn stop_run_on_signal(journal: crate::journal::SharedJournal, hint: String) {
    tokio::spawn(async move {
        let code = until_signal().await;
        // Every step's and probe's process group goes first (SIGTERM, SIGKILL after the
        // grace): nothing the run started outlives it. The interrupted step stays unfinished in
        // the journal, so a resume asks before running it again.
        tokio::task::spawn_blocking(crate::process::end_all)
            .await
            .ok();
        let in_flight = journal.0.lock();
        // Its processes are ended and nothing more is written: a database lease is let go, so
        // the run can be resumed at once rather than after the lease.
        if let Ok(writer) = &in_flight {
            writer.release();
        }
        eprintln!("\ninterrupted: the journal is intact; {hint}");
        std::process::exit(i32::from(code));
    });
}
