//! Probe-and-hold port registry: hands out free 127.0.0.1 ports, never the same one twice per process.
//!
//! Pingora's `add_tcp` takes an address string and cannot report the port it bound for `:0`
//! (pingora#988), so a test probes a free port first: bind `127.0.0.1:0`, note the port, release it,
//! and hand it to the server under test. Every port handed out (or bound elsewhere by the harness
//! and [`reserve`]d) is remembered, so two tests running in parallel never get the same one.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, Context};

/// How many probes [`free_port`] makes before giving up.
const MAX_PROBES: usize = 64;

/// Every port this process has handed out or reserved.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free port on 127.0.0.1 that no other caller in this process has been given.
///
/// Fails after 64 probes that all returned already-taken ports, or if binding fails.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..MAX_PROBES {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1:0 to probe a free port")?;
        let port = listener.local_addr().context("probe listener has no local address")?.port();
        drop(listener);
        if reserve(port) {
            return Ok(port);
        }
    }
    bail!("no unused port found in {MAX_PROBES} probes")
}

/// [`free_port`] as a `127.0.0.1:PORT` address.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// Records `port` (bound by some other harness server) as taken; `false` if it already was.
pub fn reserve(port: u16) -> bool {
    TAKEN.lock().unwrap_or_else(PoisonError::into_inner).insert(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(!reserve(ports[0]));
    }
}
