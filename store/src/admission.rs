//! Who may connect: protected mode (Redis 7.0's rule, byte for byte).
//!
//! With `protected-mode yes` and no password, only clients whose address is
//! exactly 127.0.0.1 or ::1 are served, whatever the bind address; others get
//! [`DENIED`] and are disconnected. (Redis 7.0 compares the peer's address
//! text, so 127.0.0.2 is refused too.)

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Redis 7.0.15's protected-mode refusal, typos included.
pub const DENIED: &[u8] =
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no password \
    is set for the default user. In this mode connections are only accepted from the loopback \
    interface. If you want to connect from external computers to Redis you may adopt one of the \
    following solutions: 1) Just disable protected mode sending the command 'CONFIG SET \
    protected-mode no' from the loopback interface by connecting to Redis from the same host the \
    server is running, however MAKE SURE Redis is not publicly accessible from internet if you \
    do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just \
    disable the protected mode by editing the Redis configuration file, and setting the \
    protected mode option to 'no', and then restarting the server. 3) If you started the server \
    manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an \
    authentication password for the default user. NOTE: You only need to do one of the above \
    things in order for the server to start accepting connections from the outside.\r\n";

/// True when protected mode refuses a client connecting from `peer`.
pub fn protected_denied(protected_mode: bool, password_set: bool, peer: &SocketAddr) -> bool {
    protected_mode
        && !password_set
        && !matches!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST) | IpAddr::V6(Ipv6Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_loopback_addresses_pass() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!protected_denied(true, false, &a("127.0.0.1:5")));
        assert!(!protected_denied(true, false, &a("[::1]:5")));
        assert!(protected_denied(true, false, &a("127.0.0.2:5")));
        assert!(protected_denied(true, false, &a("10.0.0.1:5")));
        assert!(!protected_denied(true, true, &a("10.0.0.1:5")));
        assert!(!protected_denied(false, false, &a("10.0.0.1:5")));
        assert_eq!(DENIED.len(), 1067);
    }
}
