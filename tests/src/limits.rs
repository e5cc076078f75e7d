//! Process limits a load test needs: open file descriptors, raised towards the hard limit.
//!
//! An in-process gateway holding N client sockets costs about 4N descriptors in this one
//! process (the client end, the gateway's downstream end, and both ends of its internal hop),
//! and many shells start with a soft limit of 1024.

use anyhow::{ensure, Context};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Makes sure this process may open at least `needed` file descriptors, raising the soft limit
/// up to the hard one if necessary; fails (naming both limits) when the hard limit is too low.
pub fn ensure_open_files(needed: u64) -> anyhow::Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("cannot read RLIMIT_NOFILE")?;
    if soft >= needed {
        return Ok(());
    }
    ensure!(hard >= needed, "this test needs {needed} open files; the hard limit is {hard} (raise it with ulimit -Hn)");
    setrlimit(Resource::RLIMIT_NOFILE, needed.max(soft), hard).context("cannot raise RLIMIT_NOFILE")
}
