//! The tutorial programs' own configuration keys.
//!
//! They live in the same YAML file as the server's keys (`threads`,
//! `pid_file`, ...). The server ignores keys it does not know, and each
//! program reads its own with `ServerConf::user_conf::<ExampleConf>()`:
//!
//! ```yaml
//! threads: 2                          # the server's key
//! listen: 127.0.0.1:6188              # ours, default 0.0.0.0:6188
//! upstreams: [127.0.0.1:8000]         # ours, default []: start the demo origin
//! upstream_connect_timeout_ms: 1000   # ours, optional
//! upstream_read_timeout_ms: 5000      # ours, optional
//! api_key: secret123                  # ours, part 3, default secret123
//! rate_limit_per_sec: 10              # ours, part 7, default 10
//! rate_limit_burst: 20                # ours, part 7, default 20
//! tls_listen: 0.0.0.0:6443            # ours, part 4, default 0.0.0.0:6443
//! tls_cert: cert.pem                  # ours, part 4, default: self-signed at startup
//! tls_key: key.pem                    # ours, part 4 (with tls_cert)
//! tls_client_ca: clients-ca.pem       # ours, part 4, optional: require client certs
//! upstream_tls: false                 # ours, part 4: speak TLS to the upstreams
//! upstream_sni: origin.example        # ours, part 4: SNI and name to verify
//! upstream_ca: origin-ca.pem          # ours, part 4, optional: CA to verify with
//! upstream_alternative_cn: origin     # ours, part 4, optional: name accepted instead of the SNI
//! metrics_listen: 127.0.0.1:6192      # ours, part 5, default 127.0.0.1:6192: Prometheus /metrics
//! cache_size: 268435456               # ours, parts 6 and 8, default 256 MiB
//! cache_dir: /var/cache/proxy         # ours, parts 6 and 8, optional: cache on disk
//! cache_admission: tinylfu            # ours, parts 6 and 8, lru | tinylfu, default tinylfu
//! cache_sendfile: true                # ours, parts 6 and 8: large hits with sendfile(2), default: with cache_dir
//! ```

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use serde::Deserialize;

/// Default for [`ExampleConf::listen`].
pub const DEFAULT_LISTEN: &str = "0.0.0.0:6188";
/// Default for [`ExampleConf::tls_listen`].
pub const DEFAULT_TLS_LISTEN: &str = "0.0.0.0:6443";
/// Default for [`ExampleConf::metrics_listen`].
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:6192";
/// Default for [`ExampleConf::api_key`].
pub const DEFAULT_API_KEY: &str = "secret123";
/// The request header part 3 checks against [`ExampleConf::api_key`].
pub const API_KEY_HEADER: &str = "X-API-Key";
/// Default for [`ExampleConf::cache_size`]: 256 MiB.
pub const DEFAULT_CACHE_SIZE: usize = 256 * 1024 * 1024;
/// Default for [`ExampleConf::rate_limit_per_sec`].
pub const DEFAULT_RATE_LIMIT_PER_SEC: f64 = 10.0;
/// Default for [`ExampleConf::rate_limit_burst`].
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 20;

/// Which entries the cache keeps once its budget is full (the conf key
/// `cache_admission`, parts 6 and 8). Any other value is a conf error that
/// names the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheAdmission {
    /// `lru`: every new entry is stored; the least recently used ones are
    /// evicted to make room.
    Lru,
    /// `tinylfu` (the default): once the budget is full, a new entry is
    /// stored only if it was asked for more often than the entry LRU would
    /// evict for it, so a scan of one-hit keys cannot flush the popular
    /// ones. Counts requests in a frequency sketch of 8 bytes per
    /// [`crate::cache_storage::ADMISSION_ENTRY_BYTES`] of `cache_size`.
    #[default]
    Tinylfu,
}

/// The examples' keys; every key is optional (serde `default`), unknown keys
/// (the server's own) are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ExampleConf {
    /// Address the proxy listens on, `host:port`. Default [`DEFAULT_LISTEN`].
    pub listen: String,
    /// Upstream addresses, each `host:port`, used in round robin. When
    /// empty (the default) the program starts the demo origin in-process on
    /// `127.0.0.1:<free port>` and proxies to it.
    pub upstreams: Vec<String>,
    /// Upstream TCP connect timeout in milliseconds, applied to every peer's
    /// `options.connection_timeout`. Default: none (the framework's).
    pub upstream_connect_timeout_ms: Option<u64>,
    /// Upstream read timeout in milliseconds (how long to wait for each read
    /// of the upstream response), applied to every peer's
    /// `options.read_timeout`. Default: none (wait as long as the connection
    /// lives).
    pub upstream_read_timeout_ms: Option<u64>,
    /// The key part 3 expects in the `X-API-Key` header. Default
    /// [`DEFAULT_API_KEY`].
    pub api_key: String,
    /// Part 7: requests per second each client IP address may make once
    /// its burst is spent (a number above 0; fractions allowed: `0.5` is one
    /// request every 2 s). Default [`DEFAULT_RATE_LIMIT_PER_SEC`].
    pub rate_limit_per_sec: f64,
    /// Part 7: requests a client IP address may make at once, after a
    /// quiet spell (at least 1). Default [`DEFAULT_RATE_LIMIT_BURST`].
    pub rate_limit_burst: u32,
    /// Part 4: address of the HTTPS listener, `host:port`. Default
    /// [`DEFAULT_TLS_LISTEN`].
    pub tls_listen: String,
    /// Part 4: PEM certificate chain (leaf, then intermediates) of the
    /// HTTPS listener. Default: none, and part 4 makes a self-signed one for
    /// `localhost` at startup. Needs `tls_key`.
    pub tls_cert: Option<String>,
    /// Part 4: PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// Part 4: PEM CA certificates; when set, HTTPS clients must present a
    /// certificate signed by one of them (mTLS). Default: none.
    pub tls_client_ca: Option<String>,
    /// Part 4: also serve cleartext HTTP/2 with prior knowledge (h2c) on
    /// `listen` (`curl --http2-prior-knowledge`). Default `false`.
    pub h2c: bool,
    /// Part 4: connect to the upstreams over TLS. Default `false`.
    pub upstream_tls: bool,
    /// Part 4: the SNI sent to TLS upstreams, and the name their
    /// certificate must carry. Default empty (no SNI; set it, or turn off
    /// hostname checks with `upstream_verify_hostname: false`).
    pub upstream_sni: String,
    /// Part 4: PEM CA certificates to verify TLS upstreams with instead of
    /// the system store. Default: none (the system store).
    pub upstream_ca: Option<String>,
    /// Part 4: check that the upstream certificate names `upstream_sni`
    /// (or `upstream_alternative_cn`). Default `true`.
    pub upstream_verify_hostname: bool,
    /// Part 4: another name the upstream certificate may carry instead of
    /// `upstream_sni`. Default: none.
    pub upstream_alternative_cn: Option<String>,
    /// Part 5: address of the Prometheus `/metrics` service, `host:port`.
    /// Default [`DEFAULT_METRICS_LISTEN`] (loopback only: the counters name
    /// your services and backends).
    pub metrics_listen: String,
    /// Parts 6 and 8: the cache's budget in bytes (headers and bodies of
    /// the stored responses); past it, the least recently used entries are
    /// evicted, after `cache_admission` decided whether a new entry is
    /// kept at all. Default [`DEFAULT_CACHE_SIZE`] (256 MiB).
    pub cache_size: usize,
    /// Part 6: the lifetime in seconds given to responses that carry no
    /// freshness information of their own (no `Cache-Control` max-age or
    /// s-maxage, no `Expires`), like nginx's `proxy_cache_valid` or
    /// Varnish's `default_ttl`. Default 0: such responses are not stored
    /// (RFC 9111 alone).
    pub cache_default_ttl: u32,
    /// Part 6: the largest response body, in bytes, the cache stores;
    /// larger ones pass through uncached. Default 0: no limit but the
    /// cache's budget.
    pub cache_max_file_size: usize,
    /// Parts 6 and 8: a directory to keep the cache in, so it survives
    /// restarts and holds more than memory: the disk storage, bounded by
    /// `cache_size` bytes of entry files, with a memory tier of
    /// min(64 MiB, `cache_size` / 4) in front (see
    /// [`crate::cache_storage`]). Created if missing. Default: none, the
    /// cache is in memory only.
    pub cache_dir: Option<String>,
    /// Parts 6 and 8: the admission policy in front of the LRU eviction,
    /// for the memory and the disk storage alike: `lru` or `tinylfu`.
    /// Default [`CacheAdmission::Tinylfu`].
    pub cache_admission: CacheAdmission,
    /// Parts 6 and 8: send hits whose body the storage keeps in a file
    /// (128 KiB and more) with sendfile(2) on plain HTTP/1.x connections
    /// (`CacheOptionOverrides::sendfile`), as nginx's `sendfile on`.
    /// Unset: on with `cache_dir` (a disk hit would otherwise be read into
    /// memory and copied again), off for the memory storage, whose bodies
    /// are written from memory as Varnish writes its own; see
    /// [`ExampleConf::cache_sendfile`] and `docs/06-caching.md`.
    #[serde(rename = "cache_sendfile")]
    pub cache_sendfile_set: Option<bool>,
}

impl Default for ExampleConf {
    fn default() -> Self {
        ExampleConf {
            listen: DEFAULT_LISTEN.to_owned(),
            upstreams: Vec::new(),
            upstream_connect_timeout_ms: None,
            upstream_read_timeout_ms: None,
            api_key: DEFAULT_API_KEY.to_owned(),
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            tls_listen: DEFAULT_TLS_LISTEN.to_owned(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            h2c: false,
            upstream_tls: false,
            upstream_sni: String::new(),
            upstream_ca: None,
            upstream_verify_hostname: true,
            upstream_alternative_cn: None,
            metrics_listen: DEFAULT_METRICS_LISTEN.to_owned(),
            cache_size: DEFAULT_CACHE_SIZE,
            cache_default_ttl: 0,
            cache_max_file_size: 0,
            cache_dir: None,
            cache_admission: CacheAdmission::Tinylfu,
            cache_sendfile_set: None,
        }
    }
}

impl ExampleConf {
    /// Whether large hits go out with sendfile(2): `cache_sendfile` when
    /// set, else on exactly when the cache is on disk (`cache_dir`). On the
    /// 1 MiB bench case with `MemCache`, writing hits from memory cost
    /// 30–40 % more CPU than sendfile(2) from its memfd, and less than half
    /// the p99 (`docs/benchmarks.md`, "Cache hits").
    pub fn cache_sendfile(&self) -> bool {
        self.cache_sendfile_set.unwrap_or(self.cache_dir.is_some())
    }

    /// Parses the example keys out of a whole YAML conf file's text.
    ///
    /// # Errors
    /// serde_yaml's error (it names the line and the key) when the text is
    /// not YAML or one of our keys has the wrong type.
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(ExampleConf::default());
        }
        serde_yaml::from_str(text)
    }

    /// [`ExampleConf::upstream_connect_timeout_ms`] as a `Duration`.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.upstream_connect_timeout_ms.map(Duration::from_millis)
    }

    /// [`ExampleConf::upstream_read_timeout_ms`] as a `Duration`.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.upstream_read_timeout_ms.map(Duration::from_millis)
    }

    /// The upstreams to use: [`ExampleConf::upstreams`], or, when that is
    /// empty, the address of a demo origin started now on `127.0.0.1:0`
    /// (see [`crate::demo_origin::spawn_background`]).
    ///
    /// # Errors
    /// The I/O error of starting the demo origin.
    pub fn upstreams_or_demo_origin(&self) -> io::Result<RoundRobin> {
        if !self.upstreams.is_empty() {
            return RoundRobin::new(self.upstreams.clone());
        }
        let addr = crate::demo_origin::spawn_background("127.0.0.1:0")?;
        log::info!("no upstreams configured: started the demo origin on http://{addr}/");
        RoundRobin::new(vec![addr.to_string()])
    }
}

/// One upstream of a [`RoundRobin`]: resolved once, when the conf is read
/// (as nginx resolves the servers of an `upstream` block), so picking it
/// costs no parsing or DNS per request.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As configured: `host:port`.
    pub name: String,
    /// `name` resolved (its first address).
    pub addr: SocketAddr,
    /// `name` as a `Host` header value, made once: a clone is a reference
    /// count.
    pub host: HeaderValue,
}

impl Upstream {
    /// Resolve `name` (`host:port`).
    ///
    /// # Errors
    /// `InvalidInput` when `name` is not a valid header value or resolves
    /// to no address; the resolver's error when it fails. Each names the
    /// upstream.
    pub fn resolve(name: String) -> io::Result<Self> {
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upstream {name:?}: {what}"),
            )
        };
        let addr = name
            .to_socket_addrs()
            .map_err(|e| io::Error::new(e.kind(), format!("upstream {name:?}: {e}")))?
            .next()
            .ok_or_else(|| invalid("resolves to no address"))?;
        let host = HeaderValue::from_str(&name).map_err(|_| invalid("not a valid Host value"))?;
        Ok(Upstream { name, addr, host })
    }
}

/// A fixed list of upstreams handed out in turn (a stand-in until the
/// tutorial introduces the load balancer). Shared across threads: the turn
/// is an atomic counter.
#[derive(Debug)]
pub struct RoundRobin {
    upstreams: Vec<Upstream>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// A round robin over `addrs` (each `host:port`, resolved now),
    /// starting at the first.
    ///
    /// # Errors
    /// As [`Upstream::resolve`], for the first address that fails.
    pub fn new(addrs: Vec<String>) -> io::Result<Self> {
        Ok(RoundRobin {
            upstreams: addrs
                .into_iter()
                .map(Upstream::resolve)
                .collect::<io::Result<_>>()?,
            next: AtomicUsize::new(0),
        })
    }

    /// The next upstream, or `None` when the list is empty.
    pub fn pick(&self) -> Option<&Upstream> {
        if self.upstreams.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        self.upstreams.get(i)
    }

    /// All upstreams, in order.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }
}

/// Reads the examples' keys from the conf file the server was started with
/// (`-c`), or the defaults when it was started without one.
///
/// # Errors
/// The error of `ServerConf::user_conf` (it names the file, the line and
/// the key) when the file's example keys have the wrong type.
pub fn load(server: &proxy_facade::prelude::Server) -> proxy_facade::prelude::Result<ExampleConf> {
    let has_conf_file = server
        .options
        .as_ref()
        .is_some_and(|opt| opt.conf.is_some());
    if has_conf_file {
        server.configuration.user_conf::<ExampleConf>()
    } else {
        Ok(ExampleConf::default())
    }
}

/// Builds the peer for `addr` (plain HTTP/1.1) with the conf's upstream
/// timeouts applied to `options.connection_timeout` and
/// `options.read_timeout`.
pub fn peer_for(
    addr: SocketAddr,
    conf: &ExampleConf,
) -> Box<proxy_facade::upstreams::peer::HttpPeer> {
    let mut peer = proxy_facade::upstreams::peer::HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = conf.connect_timeout();
    peer.options.read_timeout = conf.read_timeout();
    Box::new(peer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let conf = ExampleConf::from_yaml("").unwrap();
        assert_eq!(conf, ExampleConf::default());
        assert_eq!(conf.listen, "0.0.0.0:6188");
        assert_eq!(conf.api_key, "secret123");
        assert_eq!(conf.rate_limit_per_sec, 10.0);
        assert_eq!(conf.rate_limit_burst, 20);
        assert!(conf.upstreams.is_empty());
        assert_eq!(conf.connect_timeout(), None);
        assert_eq!(conf.read_timeout(), None);
    }

    #[test]
    fn our_keys_are_read_and_server_keys_ignored() {
        let conf = ExampleConf::from_yaml(
            "---\nversion: 1\nthreads: 2\nlisten: 127.0.0.1:9000\nupstreams: [\"127.0.0.1:8000\", \"127.0.0.1:8001\"]\nupstream_connect_timeout_ms: 250\nupstream_read_timeout_ms: 500\napi_key: k\nrate_limit_per_sec: 0.5\nrate_limit_burst: 3\n",
        )
        .unwrap();
        assert_eq!(conf.listen, "127.0.0.1:9000");
        assert_eq!(conf.upstreams, ["127.0.0.1:8000", "127.0.0.1:8001"]);
        assert_eq!(conf.connect_timeout(), Some(Duration::from_millis(250)));
        assert_eq!(conf.read_timeout(), Some(Duration::from_millis(500)));
        assert_eq!(conf.api_key, "k");
        assert_eq!(conf.rate_limit_per_sec, 0.5);
        assert_eq!(conf.rate_limit_burst, 3);
    }

    #[test]
    fn an_integer_rate_reads_as_a_number() {
        let conf = ExampleConf::from_yaml("rate_limit_per_sec: 25\n").unwrap();
        assert_eq!(conf.rate_limit_per_sec, 25.0);
    }

    #[test]
    fn wrong_type_error_names_the_key_and_line() {
        let err = ExampleConf::from_yaml("threads: 1\nlisten: x\nupstreams: 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("upstreams"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn cache_admission_reads_lru_and_tinylfu_and_defaults_to_tinylfu() {
        assert_eq!(
            ExampleConf::default().cache_admission,
            CacheAdmission::Tinylfu
        );
        for (text, want) in [
            ("cache_admission: lru\n", CacheAdmission::Lru),
            ("cache_admission: tinylfu\n", CacheAdmission::Tinylfu),
        ] {
            assert_eq!(ExampleConf::from_yaml(text).unwrap().cache_admission, want);
        }
    }

    #[test]
    fn cache_sendfile_defaults_to_on_with_cache_dir_and_off_in_memory() {
        let sendfile = |text: &str| ExampleConf::from_yaml(text).unwrap().cache_sendfile();
        assert!(!sendfile("threads: 1\n"));
        assert!(sendfile("cache_dir: /tmp/c\n"));
        assert!(sendfile("cache_sendfile: true\n"));
        assert!(!sendfile("cache_dir: /tmp/c\ncache_sendfile: false\n"));
    }

    #[test]
    fn unknown_cache_admission_error_names_the_key_and_the_choices() {
        let err = ExampleConf::from_yaml("threads: 1\ncache_admission: lfu\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cache_admission"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("tinylfu"), "{msg}");
    }

    #[test]
    fn round_robin_cycles_through_all_addresses() {
        let rr = RoundRobin::new(vec!["10.0.0.1:1".into(), "10.0.0.2:2".into()]).unwrap();
        let picks: Vec<_> = (0..5).map(|_| rr.pick().unwrap().name.clone()).collect();
        assert_eq!(
            picks,
            [
                "10.0.0.1:1",
                "10.0.0.2:2",
                "10.0.0.1:1",
                "10.0.0.2:2",
                "10.0.0.1:1"
            ]
        );
        let first = rr.pick().unwrap();
        assert_eq!(first.addr, "10.0.0.2:2".parse::<SocketAddr>().unwrap());
        assert_eq!(first.host, "10.0.0.2:2");
    }

    #[test]
    fn round_robin_over_nothing_picks_nothing() {
        assert!(RoundRobin::new(Vec::new()).unwrap().pick().is_none());
    }

    #[test]
    fn an_upstream_that_does_not_resolve_is_an_error_at_start() {
        // (no names that need a resolver: tests run without DNS)
        for bad in ["no-port", "10.0.0.1:99999"] {
            let e = RoundRobin::new(vec![bad.into()]).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn configured_upstreams_are_used_without_a_demo_origin() {
        let conf = ExampleConf {
            upstreams: vec!["10.0.0.1:80".into()],
            ..ExampleConf::default()
        };
        let rr = conf.upstreams_or_demo_origin().unwrap();
        assert_eq!(rr.upstreams()[0].name, "10.0.0.1:80");
    }

    #[test]
    fn no_upstreams_starts_the_demo_origin() {
        let rr = ExampleConf::default().upstreams_or_demo_origin().unwrap();
        let up = rr.pick().unwrap();
        assert!(up.name.starts_with("127.0.0.1:"), "{}", up.name);
        std::net::TcpStream::connect(up.addr).unwrap();
    }
}
