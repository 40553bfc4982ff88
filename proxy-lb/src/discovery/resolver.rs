//! Name resolution for [`super::Dns`]: the system resolver, or a hosts file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use proxy_core::{Error, ErrorType, OrErr, Result};

/// The error type of a name that did not resolve.
const RESOLVE_ERROR: ErrorType = ErrorType::Custom("ResolveError");

/// Turns a host name into addresses.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// The addresses of `host`, in the resolver's order, without duplicates.
    ///
    /// # Errors
    /// `Custom("ResolveError")` naming the host when it does not resolve or
    /// resolves to nothing; `FileReadError` when a hosts file cannot be read.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS
/// as `/etc/resolv.conf` and `nsswitch.conf` say), run on tokio's blocking
/// pool so it never stalls the runtime. glibc re-reads `/etc/hosts` on
/// every lookup and `/etc/resolv.conf` when it changes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .or_err_with(RESOLVE_ERROR, || format!("resolving '{host}'"))?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for a in addrs {
            if !ips.contains(&a.ip()) {
                ips.push(a.ip());
            }
        }
        if ips.is_empty() {
            return Error::e_explain(RESOLVE_ERROR, format!("'{host}' resolved to nothing"));
        }
        Ok(ips)
    }
}

/// A hosts file (`/etc/hosts` format: `address name [aliases...]`, `#`
/// comments) read afresh on every lookup, so rewriting the file (by hand,
/// by consul-template, by a deploy script) changes the answer. Names match
/// without regard to ASCII case; a name on several lines has all their
/// addresses, in file order.
#[derive(Debug, Clone)]
pub struct HostsFile {
    path: PathBuf,
}

impl HostsFile {
    /// A resolver reading `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        HostsFile {
            path: path.as_ref().to_path_buf(),
        }
    }

    /// The addresses of `host` in hosts-file `text`.
    fn lookup(text: &str, host: &str) -> Vec<IpAddr> {
        let mut ips = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            if fields.any(|name| name.eq_ignore_ascii_case(host)) && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }
}

#[async_trait]
impl Resolve for HostsFile {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>> {
        let path = self.path.clone();
        let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
            .await
            .or_err(ErrorType::InternalError, "hosts file reader task")?
            .or_err_with(ErrorType::FileReadError, || {
                format!("reading hosts file {}", self.path.display())
            })?;
        let ips = Self::lookup(&text, host);
        if ips.is_empty() {
            return Error::e_explain(
                RESOLVE_ERROR,
                format!("'{host}' is not in hosts file {}", self.path.display()),
            );
        }
        Ok(ips)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_are_parsed_like_etc_hosts() {
        let text = "# comment\n127.0.0.1 localhost\n10.0.0.1  api.internal api # first\n\
                    10.0.0.2\tAPI.internal\n::1 api.internal\nnot-an-ip api.internal\n10.0.0.1 api.internal\n";
        let ips = HostsFile::lookup(text, "api.internal");
        let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(ips, want);
        assert_eq!(HostsFile::lookup(text, "api").len(), 1);
        assert!(HostsFile::lookup(text, "comment").is_empty());
        assert!(HostsFile::lookup(text, "first").is_empty());
    }

    #[tokio::test]
    async fn file_is_read_on_every_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "10.0.0.1 svc\n").unwrap();
        let r = HostsFile::new(&path);
        assert_eq!(
            r.resolve("svc").await.unwrap(),
            ["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        std::fs::write(&path, "10.0.0.2 svc\n").unwrap();
        assert_eq!(
            r.resolve("svc").await.unwrap(),
            ["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        let e = r.resolve("other").await.unwrap_err();
        assert!(e.to_string().contains("'other'"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = r.resolve("svc").await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::FileReadError);
    }

    #[tokio::test]
    async fn system_resolver_answers_for_localhost_and_literals() {
        let ips = SystemResolver.resolve("localhost").await.unwrap();
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        let ips = SystemResolver.resolve("10.1.2.3").await.unwrap();
        assert_eq!(ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert!(SystemResolver
            .resolve("no-such-host.invalid")
            .await
            .is_err());
    }
}
