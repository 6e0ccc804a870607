//! The server under test. Only loopback addresses are accepted: a load test
//! run here must never send traffic anywhere else, so a non-loopback URL is
//! refused when the flags are parsed, before any socket exists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value (`127.0.0.1:8080`).
    pub authority: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("only http:// URLs are supported (no TLS), got {0:?}")]
    Scheme(String),
    #[error("{0:?} is not host:port")]
    Authority(String),
    #[error(
        "{0:?} is not a loopback address; loadgen only targets this machine (127.0.0.0/8, ::1, localhost)"
    )]
    NotLoopback(String),
    #[error("the URL must not have a path, got {0:?}")]
    Path(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(raw: &str) -> Result<Target, TargetError> {
        let rest = raw
            .strip_prefix("http://")
            .ok_or_else(|| TargetError::Scheme(raw.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(TargetError::Path(path.to_string()));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| TargetError::Authority(authority.to_string()))?;
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse::<IpAddr>()
                .map_err(|_| TargetError::NotLoopback(host.to_string()))?
        };
        if !ip.is_loopback() {
            return Err(TargetError::NotLoopback(host.to_string()));
        }
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            authority: authority.to_string(),
        })
    }
}

/// `host:port` or `[v6]:port`; the port defaults to 80.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, port.parse().ok()?)),
        Some(_) => None,
        None if !authority.is_empty() => Some((authority, 80)),
        None => None,
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted() {
        let target: Target = "http://127.0.0.1:18383".parse().unwrap();
        assert_eq!(target.addr, "127.0.0.1:18383".parse().unwrap());
        assert_eq!(target.authority, "127.0.0.1:18383");
        assert!("http://localhost:8080/".parse::<Target>().is_ok());
        assert!("http://[::1]:8080".parse::<Target>().is_ok());
        assert!("http://127.9.9.9:1".parse::<Target>().is_ok());
    }

    #[test]
    fn anything_off_this_machine_is_refused() {
        for url in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2:80",
            "http://example.com:80",
            "http://8.8.8.8",
        ] {
            assert!(
                matches!(url.parse::<Target>(), Err(TargetError::NotLoopback(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn tls_and_paths_are_refused() {
        assert!(matches!(
            "https://127.0.0.1:8080".parse::<Target>(),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            "http://127.0.0.1:8080/api".parse::<Target>(),
            Err(TargetError::Path(_))
        ));
    }
}
