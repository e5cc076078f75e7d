//! `TempDir`: a fresh directory under the system temp dir, removed with everything in it on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};

/// How many names [`TempDir::new`] tries before giving up.
const MAX_NAME_ATTEMPTS: u32 = 16;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A directory owned by one test; removed (best effort) when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `gateway-tests-LABEL-PID-N` in the system temp dir.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let base = std::env::temp_dir();
        for _ in 0..MAX_NAME_ATTEMPTS {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let path = base.join(format!("gateway-tests-{label}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        bail!("no free temp dir name for {label} after {MAX_NAME_ATTEMPTS} attempts")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is not worth failing a test over.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
