//! `server.upgrade_socket`: the Unix socket on which a new process (`gateway run --upgrade`)
//! waits for the running one's listening sockets, which SIGQUIT makes it send.

use std::path::{Path, PathBuf};

/// Longest socket path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The checked path: absolute (both processes must agree on it whatever their working
/// directories), short enough for a socket address, in a directory that exists, and not an
/// existing file other than a socket (the new process replaces what is there).
pub(super) fn socket(path: Option<&Path>) -> Result<Option<PathBuf>, String> {
    let Some(path) = path else { return Ok(None) };
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("\"{shown}\" is not an absolute path, as in \"/run/gateway/upgrade.sock\""));
    }
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!("\"{shown}\" is longer than a Unix socket path may be ({MAX_SOCKET_PATH} bytes)"));
    }
    if path.file_name().is_none() {
        return Err(format!("\"{shown}\" names a directory, not a socket file"));
    }
    match path.parent() {
        Some(dir) if dir.is_dir() => {}
        _ => return Err(format!("\"{shown}\": its directory does not exist")),
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            Err(format!("\"{shown}\" exists and is not a socket; name a path of its own"))
        }
        _ => Ok(Some(path.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_short_path_in_an_existing_directory_is_accepted() {
        let dir = std::env::temp_dir();
        let path = dir.join("gateway-upgrade-check.sock");
        assert_eq!(socket(Some(&path)), Ok(Some(path.clone())));
        assert_eq!(socket(None), Ok(None));
    }

    #[test]
    fn relative_long_dangling_or_occupied_paths_are_refused() {
        assert!(socket(Some(Path::new("upgrade.sock"))).unwrap_err().contains("absolute"));
        let long = format!("/tmp/{}.sock", "x".repeat(120));
        assert!(socket(Some(Path::new(&long))).unwrap_err().contains("longer"));
        let dangling = Path::new("/nonexistent-gateway-dir/upgrade.sock");
        assert!(socket(Some(dangling)).unwrap_err().contains("directory"));
        assert!(socket(Some(Path::new("/"))).unwrap_err().contains("directory"));
        // An existing regular file is not overwritten by the new process's socket.
        let file = std::env::current_exe().unwrap();
        assert!(socket(Some(&file)).unwrap_err().contains("not a socket"));
    }
}
