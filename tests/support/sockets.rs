//! This process's own TCP sockets, read from `/proc/self/fd`, so a test can check the options
//! the server, the engine, the emulator and the simulated Twilio set on theirs (Linux).

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

use socket2::{SockRef, Type};

/// One connected TCP socket.
#[derive(Clone, Debug)]
pub struct TcpSocket {
    pub fd: RawFd,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub nodelay: bool,
}

/// Every connected TCP socket of this process (listeners and other kinds are skipped).
pub fn connected_tcp() -> Vec<TcpSocket> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd readable") {
        let Ok(entry) = entry else { continue };
        // A socket's fd links to `socket:[inode]`; one closed meanwhile no longer reads.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // SAFETY: the fd is only borrowed for the `getsockname`/`getpeername`/`getsockopt`
        // calls below and never closed here. Should another thread close it (and the number
        // be reused) meanwhile, the calls fail or describe the newer socket, whose addresses
        // are read in the same breath as its option.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&borrowed);
        if socket.r#type().ok() != Some(Type::STREAM) {
            continue;
        }
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else {
            continue; // a listener (no peer), or gone
        };
        let (Some(local), Some(peer)) = (local.as_socket(), peer.as_socket()) else {
            continue; // a Unix socket
        };
        let Ok(nodelay) = socket.tcp_nodelay() else {
            continue;
        };
        sockets.push(TcpSocket {
            fd,
            local,
            peer,
            nodelay,
        });
    }
    sockets
}

/// The connected sockets at either end of a server's `port`.
#[derive(Debug, Default)]
pub struct Ends {
    /// The server's side: connections it accepted.
    pub accepted: Vec<TcpSocket>,
    /// The clients' side: connections this process opened to it.
    pub opened: Vec<TcpSocket>,
}

impl Ends {
    pub fn of(port: u16, sockets: &[TcpSocket]) -> Ends {
        let mut ends = Ends::default();
        for socket in sockets {
            if socket.local.port() == port {
                ends.accepted.push(socket.clone());
            } else if socket.peer.port() == port {
                ends.opened.push(socket.clone());
            }
        }
        ends
    }
}

/// Asserts that at least `expected` sockets were found for `what` and that every one has
/// `TCP_NODELAY`; an empty list would prove nothing.
pub fn assert_nodelay(what: &str, sockets: &[TcpSocket], expected: usize) {
    assert!(
        sockets.len() >= expected,
        "{what}: expected at least {expected} connected sockets, found {sockets:#?}"
    );
    let nagled: Vec<&TcpSocket> = sockets.iter().filter(|s| !s.nodelay).collect();
    assert!(
        nagled.is_empty(),
        "{what}: TCP_NODELAY is off on {nagled:#?}"
    );
}
