//! systemd's readiness notification (`sd_notify(3)`), without libsystemd: one datagram to
//! `$NOTIFY_SOCKET` when that is set, nothing otherwise.
//!
//! A zero-downtime upgrade starts the new process beside the old one (`gateway run --upgrade`);
//! with `Type=notify` and `NotifyAccess=all` its `MAINPID=` tells systemd which process the
//! service is now, so the old one's exit does not end the service (README#zero-downtime-upgrade).

use std::os::unix::net::UnixDatagram;

/// Tells systemd that this process serves and is the service's main process from now on.
/// Called once the listening sockets are in hand (bound, or taken over). A failure is logged:
/// the gateway runs the same without systemd.
pub fn ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let message = format!("MAINPID={}\nREADY=1\n", std::process::id());
    if let Err(e) = send(&socket, &message) {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
}

/// Sends `message` to the notification socket named `socket`: a path, or with a leading `@` a
/// Linux abstract socket name.
fn send(socket: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let datagram = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            datagram.send_to_addr(message.as_bytes(), &addr)?;
        }
        _ => {
            datagram.send_to(message.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notification_names_this_process_as_main_and_ready() {
        let dir = std::env::temp_dir().join(format!("gateway-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).unwrap();
        let message = format!("MAINPID={}\nREADY=1\n", std::process::id());

        send(path.as_os_str(), &message).unwrap();

        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], message.as_bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
