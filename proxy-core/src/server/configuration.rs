//! Command-line options ([`Opt`]) and the YAML server configuration ([`ServerConf`]).
//!
//! The key names and defaults are Pingora 0.8's, so a configuration file
//! written for Pingora loads here unchanged:
//!
//! ```
//! use proxy_core::server::configuration::ServerConf;
//!
//! let conf = ServerConf::from_yaml("---\nversion: 1\nthreads: 4\n").unwrap();
//! assert_eq!(conf.threads, 4);
//! assert_eq!(conf.grace_period().as_secs(), 300);
//! ```
//!
//! The server keys sit at the top level of the document next to any keys of
//! the user's own (`listen`, `upstreams`...): [`ServerConf`] ignores the keys
//! it does not know and [`ServerConf::user_conf`] reads the same document into
//! the user's type.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorType, Result};

/// The kind of every error about the configuration: a file that cannot be
/// read, YAML that does not parse, a value of the wrong type or out of range.
pub const CONF_ERROR: ErrorType = ErrorType::new("ConfError");

/// Command-line options of a server program (Pingora's flags).
///
/// ```
/// use proxy_core::server::configuration::Opt;
///
/// let opt = Opt::parse_from_args(["my-proxy", "-t", "-c", "/etc/proxy.yaml"]);
/// assert!(opt.test);
/// assert_eq!(opt.conf.as_deref(), Some("/etc/proxy.yaml"));
/// ```
#[derive(Parser, Debug, Default, Clone, PartialEq, Eq)]
#[command(long_about = None)]
pub struct Opt {
    /// Take over the listening sockets of a running server (graceful upgrade):
    /// wait on `upgrade_sock` for the old process to hand them over on SIGQUIT.
    #[arg(short, long)]
    pub upgrade: bool,
    /// Run in the background as a daemon (sets `daemon` in the configuration).
    #[arg(short, long)]
    pub daemon: bool,
    /// Accepted and ignored: `cargo test` passes it to test binaries.
    #[arg(long, hide = true)]
    pub nocapture: bool,
    /// Check the configuration and exit: 0 if it loads and validates, 1 otherwise.
    #[arg(short, long)]
    pub test: bool,
    /// The path of the YAML configuration file.
    #[arg(short, long)]
    pub conf: Option<String>,
}

impl Opt {
    /// Parse the process's command line. On a bad flag, print clap's usage
    /// message and exit with code 2 (`--help` exits 0).
    pub fn parse_args() -> Self {
        Opt::parse()
    }

    /// Parse `args` (the first item is the program name). On a bad flag,
    /// print clap's usage message and exit with code 2; use
    /// [`clap::Parser::try_parse_from`] to get the error instead.
    pub fn parse_from_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Opt::parse_from(args)
    }
}

/// The server configuration, read from YAML.
///
/// Every key is optional and takes the default shown on its field (Pingora
/// 0.8's defaults, including the `/tmp/pingora.*` paths, so files and
/// scripts written for Pingora work unchanged). Keys this struct does not
/// know are ignored, so a file can carry the application's own keys; read
/// those with [`ServerConf::user_conf`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConf {
    /// The configuration format version. Default `0` (`1` from [`ServerConf::new`]).
    pub version: usize,
    /// Run in the background as a daemon (also set by `-d`). Default `false`.
    pub daemon: bool,
    /// Where to write the error log when daemonized. Default none (stderr).
    pub error_log: Option<String>,
    /// The pid file written when daemonized. Default `/tmp/pingora.pid`.
    pub pid_file: String,
    /// The Unix socket over which listening sockets are handed to a new
    /// process on graceful upgrade. Default `/tmp/pingora_upgrade.sock`.
    pub upgrade_sock: String,
    /// The user to switch to after daemonizing. Default none.
    pub user: Option<String>,
    /// The group to switch to after daemonizing. Default none.
    pub group: Option<String>,
    /// The working directory of the daemon. Default none: the directory it
    /// was started in (Pingora's default is `/`).
    pub working_directory: Option<PathBuf>,
    /// Worker threads of each service's runtime, unless the service sets its
    /// own. Default `1`; must be at least 1.
    pub threads: usize,
    /// Accept tasks run in parallel on each listening socket. Default `1`;
    /// must be at least 1.
    pub listener_tasks_per_fd: usize,
    /// `true`: each service runs one work-stealing multi-thread runtime;
    /// `false`: `threads` single-thread runtimes with connections spread
    /// across them. With `threads: 1` a service always runs one
    /// single-thread runtime (there is nothing to steal), so
    /// `tokio::task::block_in_place` is not available there. Default `true`.
    pub work_stealing: bool,
    /// PEM file of CA certificates trusted for upstream TLS. Default none
    /// (the TLS library's default trust store).
    pub ca_file: Option<String>,
    /// Size of the s2n TLS config cache (s2n only; parsed for parity). Default none (10).
    pub s2n_config_cache_size: Option<usize>,
    /// Seconds to let in-flight connections finish after SIGTERM before the
    /// runtimes are shut down. Default none, meaning 300 (see
    /// [`ServerConf::grace_period`]).
    pub grace_period_seconds: Option<u64>,
    /// Seconds each runtime gets to stop its remaining tasks at the very end
    /// of a graceful shutdown. Default none, meaning 5 (see
    /// [`ServerConf::graceful_shutdown_timeout`]).
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// Source IPv4 addresses for upstream connections, one picked per
    /// connection. Default empty (the kernel chooses).
    pub client_bind_to_ipv4: Vec<String>,
    /// Source IPv6 addresses for upstream connections. Default empty.
    pub client_bind_to_ipv6: Vec<String>,
    /// Idle upstream connections kept in each service's pool, across all
    /// peers. Default `128`.
    pub upstream_keepalive_pool_size: usize,
    /// Thread pools to which upstream connects are offloaded. Default none.
    pub upstream_connect_offload_threadpools: Option<usize>,
    /// Threads per connect offload pool. Default none.
    pub upstream_connect_offload_thread_per_pool: Option<usize>,
    /// Log upstream TLS keys to the file named by `SSLKEYLOGFILE`. Default `false`.
    pub upstream_debug_ssl_keylog: bool,
    /// The most times one request is retried by the proxy (a fail-safe
    /// against retry loops). Default `16`.
    pub max_retries: usize,
    /// Attempts, 1 second apart, to connect to or accept on `upgrade_sock`.
    /// Default none, meaning 5.
    pub upgrade_sock_connect_accept_max_retries: Option<usize>,
    /// Most threads in each runtime's blocking pool. Default none (tokio's
    /// 512); `0` is rejected by [`ServerConf::validate`].
    pub max_blocking_threads: Option<usize>,
    /// Seconds an idle blocking-pool thread is kept. Default none (tokio's 10).
    pub blocking_threads_ttl_seconds: Option<u64>,
    /// When daemonizing, the parent waits for the child's readiness signal.
    /// Default `false`.
    pub daemon_wait_for_ready: bool,
    /// Seconds the daemon parent waits for readiness. Default none, meaning 600.
    pub daemon_ready_timeout_seconds: Option<NonZeroU64>,
    /// Seconds the daemon child keeps trying to notify the parent. Default none, meaning 60.
    pub daemon_notify_timeout_seconds: Option<NonZeroU64>,

    /// The text of the YAML document this was read from, which
    /// [`ServerConf::user_conf`] reads again; none for a configuration built
    /// in code. Not a YAML key (never read from or written to YAML).
    #[serde(skip)]
    pub raw_yaml: Option<String>,
    /// The file the document came from, named in errors; none for a
    /// configuration not read from a file. Not a YAML key.
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            version: 0,
            daemon: false,
            error_log: None,
            pid_file: "/tmp/pingora.pid".to_string(),
            upgrade_sock: "/tmp/pingora_upgrade.sock".to_string(),
            user: None,
            group: None,
            working_directory: None,
            threads: 1,
            listener_tasks_per_fd: 1,
            work_stealing: true,
            ca_file: None,
            s2n_config_cache_size: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            client_bind_to_ipv4: vec![],
            client_bind_to_ipv6: vec![],
            upstream_keepalive_pool_size: 128,
            upstream_connect_offload_threadpools: None,
            upstream_connect_offload_thread_per_pool: None,
            upstream_debug_ssl_keylog: false,
            max_retries: 16,
            upgrade_sock_connect_accept_max_retries: None,
            max_blocking_threads: None,
            blocking_threads_ttl_seconds: None,
            daemon_wait_for_ready: false,
            daemon_ready_timeout_seconds: None,
            daemon_notify_timeout_seconds: None,
            raw_yaml: None,
            source_path: None,
        }
    }
}

/// Default of `grace_period_seconds`: 300 seconds.
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 300;
/// Default of `graceful_shutdown_timeout_seconds`: 5 seconds.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: u64 = 5;

impl ServerConf {
    /// The default configuration with `version: 1`. Always `Some`; the
    /// `Option` is Pingora's signature, kept so ported code compiles.
    pub fn new() -> Option<Self> {
        Some(ServerConf {
            version: 1,
            ..Default::default()
        })
    }

    /// [`ServerConf::new`] with the command-line flags merged in (see
    /// [`ServerConf::merge_with_opt`]). Always `Some`.
    pub fn new_with_opt_override(opt: &Opt) -> Option<Self> {
        let mut conf = Self::new()?;
        conf.merge_with_opt(opt);
        Some(conf)
    }

    /// Read, parse and validate the YAML file at `path`.
    ///
    /// # Errors
    /// [`CONF_ERROR`] naming the file when it cannot be read, and naming the
    /// file, line, column and key when it does not parse
    /// (`/etc/p.yaml: line 3 column 10: threads: invalid type: string "two", expected usize`)
    /// or fails [`ServerConf::validate`].
    pub fn load_from_yaml<P: AsRef<Path>>(path: P) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::explain(
                CONF_ERROR,
                format!(
                    "{}: cannot read the configuration file: {e}",
                    path.display()
                ),
            )
        })?;
        Self::parse(text, Some(path.to_path_buf()))
    }

    /// Load the file named by `opt.conf` (see [`ServerConf::load_from_yaml`])
    /// and merge the command-line flags into it.
    ///
    /// # Errors
    /// As [`ServerConf::load_from_yaml`]; also when `opt.conf` is `None`.
    pub fn load_yaml_with_opt_override(opt: &Opt) -> Result<Self> {
        let Some(path) = opt.conf.as_deref() else {
            return Error::e_explain(CONF_ERROR, "no configuration file given (-c <path>)");
        };
        let mut conf = Self::load_from_yaml(path)?;
        conf.merge_with_opt(opt);
        Ok(conf)
    }

    /// Parse and validate a YAML document.
    ///
    /// # Errors
    /// [`CONF_ERROR`] naming the line, column and key at fault, or the key
    /// [`ServerConf::validate`] rejects.
    pub fn from_yaml(conf_str: &str) -> Result<Self> {
        Self::parse(conf_str.to_string(), None)
    }

    fn parse(text: String, source_path: Option<PathBuf>) -> Result<Self> {
        let mut conf: ServerConf =
            serde_yaml::from_str(&text).map_err(|e| yaml_error(source_path.as_deref(), &e))?;
        conf.raw_yaml = Some(text);
        conf.source_path = source_path;
        conf.validate()
    }

    /// This configuration as YAML (the server keys only, not the user's).
    pub fn to_yaml(&self) -> String {
        // Every field is a scalar, a string, a path or a list of strings:
        // serde_yaml cannot fail on such a struct, so the fallback is never used.
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// Read the same YAML document into the application's own type `T`, so
    /// one file holds both the server keys and the application's (`listen`,
    /// `upstreams`...). `T` should ignore the server keys (the default for a
    /// serde struct without `deny_unknown_fields`).
    ///
    /// A configuration not read from YAML (e.g. [`ServerConf::new`]) reads as
    /// an empty mapping, so `T`'s defaults apply.
    ///
    /// ```
    /// use proxy_core::server::configuration::ServerConf;
    /// #[derive(serde::Deserialize)]
    /// struct Mine { listen: String }
    ///
    /// let conf = ServerConf::from_yaml("threads: 2\nlisten: 0.0.0.0:6188\n").unwrap();
    /// let mine: Mine = conf.user_conf().unwrap();
    /// assert_eq!(mine.listen, "0.0.0.0:6188");
    /// ```
    ///
    /// # Errors
    /// [`CONF_ERROR`] naming the file, line, column and key, as for the server keys.
    pub fn user_conf<T: DeserializeOwned>(&self) -> Result<T> {
        let text = self.raw_yaml.as_deref().unwrap_or("{}");
        // an empty file is an empty mapping, not a missing document
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_yaml::from_str(text).map_err(|e| yaml_error(self.source_path.as_deref(), &e))
    }

    /// The text of the YAML document this configuration was read from, if any.
    pub fn raw_yaml(&self) -> Option<&str> {
        self.raw_yaml.as_deref()
    }

    /// The file this configuration was read from, if any.
    pub fn source_path(&self) -> Option<&Path> {
        self.source_path.as_deref()
    }

    /// Reject values that cannot work: `threads: 0`,
    /// `listener_tasks_per_fd: 0`, `max_blocking_threads: 0`,
    /// `upstream_connect_offload_threadpools` or
    /// `upstream_connect_offload_thread_per_pool` set to 0, or only one of them set.
    ///
    /// # Errors
    /// [`CONF_ERROR`] naming the file (when known) and the key.
    pub fn validate(self) -> Result<Self> {
        let zero = |key: &str| -> Result<Self> {
            Error::e_explain(
                CONF_ERROR,
                format!("{}{key}: must be at least 1, got 0", self.file_prefix()),
            )
        };
        if self.threads == 0 {
            return zero("threads");
        }
        if self.listener_tasks_per_fd == 0 {
            return zero("listener_tasks_per_fd");
        }
        if self.max_blocking_threads == Some(0) {
            return zero("max_blocking_threads");
        }
        if self.upstream_connect_offload_threadpools == Some(0) {
            return zero("upstream_connect_offload_threadpools");
        }
        if self.upstream_connect_offload_thread_per_pool == Some(0) {
            return zero("upstream_connect_offload_thread_per_pool");
        }
        if self.upstream_connect_offload_threadpools.is_some()
            != self.upstream_connect_offload_thread_per_pool.is_some()
        {
            return Error::e_explain(
                CONF_ERROR,
                format!(
                    "{}upstream_connect_offload_threadpools and \
                     upstream_connect_offload_thread_per_pool must be set together",
                    self.file_prefix()
                ),
            );
        }
        Ok(self)
    }

    /// Merge the command-line flags into the configuration: only `-d` (daemon)
    /// is merged, as in Pingora.
    pub fn merge_with_opt(&mut self, opt: &Opt) {
        if opt.daemon {
            self.daemon = true;
        }
    }

    /// The grace period after SIGTERM (`grace_period_seconds`, default 300 s).
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(
            self.grace_period_seconds
                .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS),
        )
    }

    /// The final runtime shutdown timeout (`graceful_shutdown_timeout_seconds`, default 5 s).
    pub fn graceful_shutdown_timeout(&self) -> Duration {
        Duration::from_secs(
            self.graceful_shutdown_timeout_seconds
                .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS),
        )
    }

    fn file_prefix(&self) -> String {
        self.source_path
            .as_ref()
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default()
    }
}

/// A configuration error naming the file (when known), the line and column,
/// and the key path serde_yaml reports (`threads`, `upstreams[1].addr`).
fn yaml_error(path: Option<&Path>, e: &serde_yaml::Error) -> Box<Error> {
    let mut msg = e.to_string();
    let mut place = String::new();
    if let Some(loc) = e.location() {
        // serde_yaml puts " at line L column C" after the message (or, for
        // YAML syntax errors, before a ", while parsing..." note); move it to the front
        let at = format!(" at line {} column {}", loc.line(), loc.column());
        msg = msg.replacen(&at, "", 1);
        place = format!("line {} column {}: ", loc.line(), loc.column());
    }
    let file = path
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default();
    Error::explain(CONF_ERROR, format!("{file}{place}{msg}"))
}

/// Load the configuration a command-line program asked for: the `-c` file
/// merged with the flags, or the defaults when there is none.
///
/// # Errors
/// As [`ServerConf::load_from_yaml`].
pub(crate) fn conf_for_opt(opt: &Opt) -> Result<ServerConf> {
    if opt.conf.is_some() {
        ServerConf::load_yaml_with_opt_override(opt)
    } else {
        let mut conf = ServerConf {
            version: 1,
            ..Default::default()
        };
        conf.merge_with_opt(opt);
        Ok(conf)
    }
}

/// The text to print for a configuration error: the message without the
/// error kind's prefix.
pub(crate) fn describe_conf_error(e: &Error) -> String {
    match e.context() {
        Some(c) if e.etype() == &CONF_ERROR => c.to_string(),
        _ => e.to_string().trim().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("proxy-core-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        path
    }

    const ALL_KEYS: &str = r#"---
version: 1
daemon: true
error_log: /var/log/proxy/error.log
pid_file: /run/proxy.pid
upgrade_sock: /run/proxy_upgrade.sock
user: nobody
group: nogroup
working_directory: /srv
threads: 8
listener_tasks_per_fd: 2
work_stealing: false
ca_file: /etc/ssl/ca.pem
s2n_config_cache_size: 20
grace_period_seconds: 60
graceful_shutdown_timeout_seconds: 3
client_bind_to_ipv4: ["10.0.0.1", "10.0.0.2"]
client_bind_to_ipv6: ["::1"]
upstream_keepalive_pool_size: 256
upstream_connect_offload_threadpools: 2
upstream_connect_offload_thread_per_pool: 4
upstream_debug_ssl_keylog: true
max_retries: 3
upgrade_sock_connect_accept_max_retries: 7
max_blocking_threads: 64
blocking_threads_ttl_seconds: 30
daemon_wait_for_ready: true
daemon_ready_timeout_seconds: 100
daemon_notify_timeout_seconds: 10
"#;

    #[test]
    fn yaml_with_every_key_parses_into_each_field() {
        let c = ServerConf::from_yaml(ALL_KEYS).unwrap();
        assert_eq!(c.version, 1);
        assert!(c.daemon);
        assert_eq!(c.error_log.as_deref(), Some("/var/log/proxy/error.log"));
        assert_eq!(c.pid_file, "/run/proxy.pid");
        assert_eq!(c.upgrade_sock, "/run/proxy_upgrade.sock");
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.group.as_deref(), Some("nogroup"));
        assert_eq!(c.working_directory, Some(PathBuf::from("/srv")));
        assert_eq!(c.threads, 8);
        assert_eq!(c.listener_tasks_per_fd, 2);
        assert!(!c.work_stealing);
        assert_eq!(c.ca_file.as_deref(), Some("/etc/ssl/ca.pem"));
        assert_eq!(c.s2n_config_cache_size, Some(20));
        assert_eq!(c.grace_period(), Duration::from_secs(60));
        assert_eq!(c.graceful_shutdown_timeout(), Duration::from_secs(3));
        assert_eq!(c.client_bind_to_ipv4, vec!["10.0.0.1", "10.0.0.2"]);
        assert_eq!(c.client_bind_to_ipv6, vec!["::1"]);
        assert_eq!(c.upstream_keepalive_pool_size, 256);
        assert_eq!(c.upstream_connect_offload_threadpools, Some(2));
        assert_eq!(c.upstream_connect_offload_thread_per_pool, Some(4));
        assert!(c.upstream_debug_ssl_keylog);
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.upgrade_sock_connect_accept_max_retries, Some(7));
        assert_eq!(c.max_blocking_threads, Some(64));
        assert_eq!(c.blocking_threads_ttl_seconds, Some(30));
        assert!(c.daemon_wait_for_ready);
        assert_eq!(c.daemon_ready_timeout_seconds, NonZeroU64::new(100));
        assert_eq!(c.daemon_notify_timeout_seconds, NonZeroU64::new(10));
    }

    #[test]
    fn missing_keys_take_pingora_defaults() {
        let c = ServerConf::from_yaml("---\nversion: 1\n").unwrap();
        assert_eq!(c.threads, 1);
        assert_eq!(c.listener_tasks_per_fd, 1);
        assert!(c.work_stealing);
        assert!(!c.daemon);
        assert_eq!(c.pid_file, "/tmp/pingora.pid");
        assert_eq!(c.upgrade_sock, "/tmp/pingora_upgrade.sock");
        assert_eq!(c.grace_period(), Duration::from_secs(300));
        assert_eq!(c.graceful_shutdown_timeout(), Duration::from_secs(5));
        assert_eq!(c.upstream_keepalive_pool_size, 128);
        assert_eq!(c.max_retries, 16);
        assert!(c.client_bind_to_ipv4.is_empty());
        assert_eq!(ServerConf::default().version, 0);
        assert_eq!(ServerConf::new().unwrap().version, 1);
    }

    #[test]
    fn empty_document_is_the_default_configuration() {
        let c = ServerConf::from_yaml("").unwrap();
        assert_eq!(c.threads, 1);
        let user: std::collections::BTreeMap<String, String> = c.user_conf().unwrap();
        assert!(user.is_empty());
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct UserConf {
        listen: String,
        #[serde(default)]
        upstreams: Vec<String>,
    }

    #[test]
    fn unknown_keys_are_ignored_and_readable_through_user_conf() {
        let c = ServerConf::from_yaml(
            "threads: 2\nlisten: 0.0.0.0:6188\nupstreams:\n  - 1.1.1.1:443\n  - 1.0.0.1:443\n",
        )
        .unwrap();
        assert_eq!(c.threads, 2);
        let user: UserConf = c.user_conf().unwrap();
        assert_eq!(
            user,
            UserConf {
                listen: "0.0.0.0:6188".into(),
                upstreams: vec!["1.1.1.1:443".into(), "1.0.0.1:443".into()],
            }
        );
        // the user's keys are not written back out by to_yaml
        assert!(!c.to_yaml().contains("0.0.0.0:6188"));
    }

    #[test]
    fn type_error_names_file_line_column_and_top_level_key() {
        let path = temp_file("bad_threads.yaml", "---\nversion: 1\nthreads: two\n");
        let e = ServerConf::load_from_yaml(&path).unwrap_err();
        let msg = describe_conf_error(&e);
        assert_eq!(
            msg,
            format!(
                "{}: line 3 column 10: threads: invalid type: string \"two\", expected usize",
                path.display()
            )
        );
        assert_eq!(e.etype(), &CONF_ERROR);
    }

    #[test]
    fn user_conf_type_error_names_file_line_and_nested_key() {
        let path = temp_file(
            "bad_user.yaml",
            "threads: 1\nlisten: 0.0.0.0:80\nupstreams:\n  - a\n  - [b]\n",
        );
        let c = ServerConf::load_from_yaml(&path).unwrap();
        let e = c.user_conf::<UserConf>().unwrap_err();
        let msg = describe_conf_error(&e);
        assert!(
            msg.starts_with(&format!("{}: line 5 column 5: ", path.display())),
            "{msg}"
        );
        assert!(
            msg.contains("upstreams[1]: invalid type: sequence"),
            "{msg}"
        );
    }

    #[test]
    fn user_conf_missing_field_is_reported() {
        let c = ServerConf::from_yaml("threads: 1\n").unwrap();
        let e = c.user_conf::<UserConf>().unwrap_err();
        assert!(describe_conf_error(&e).contains("missing field `listen`"));
    }

    #[test]
    fn yaml_syntax_error_names_the_line() {
        let e = ServerConf::from_yaml("threads: 1\nbad: [1, 2\n").unwrap_err();
        let msg = describe_conf_error(&e);
        assert!(msg.starts_with("line 3 column 1: "), "{msg}");
        assert!(msg.contains("flow sequence"), "{msg}");
        assert!(
            !msg.contains("at line 3 column 1"),
            "location given twice: {msg}"
        );
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let e = ServerConf::load_from_yaml("/nonexistent/dir/proxy.yaml").unwrap_err();
        let msg = describe_conf_error(&e);
        assert!(
            msg.starts_with("/nonexistent/dir/proxy.yaml: cannot read"),
            "{msg}"
        );
    }

    #[test]
    fn validate_rejects_zero_threads_naming_the_key_and_file() {
        let path = temp_file("zero_threads.yaml", "threads: 0\n");
        let e = ServerConf::load_from_yaml(&path).unwrap_err();
        assert_eq!(
            describe_conf_error(&e),
            format!("{}: threads: must be at least 1, got 0", path.display())
        );
        for (yaml, key) in [
            ("listener_tasks_per_fd: 0", "listener_tasks_per_fd"),
            ("max_blocking_threads: 0", "max_blocking_threads"),
            (
                "upstream_connect_offload_threadpools: 2",
                "upstream_connect_offload_threadpools and",
            ),
        ] {
            let e = ServerConf::from_yaml(yaml).unwrap_err();
            assert!(describe_conf_error(&e).starts_with(key), "{yaml}: {e}");
        }
    }

    #[test]
    fn to_yaml_round_trips() {
        let c = ServerConf::from_yaml(ALL_KEYS).unwrap();
        let back = ServerConf::from_yaml(&c.to_yaml()).unwrap();
        assert_eq!(back.threads, c.threads);
        assert_eq!(back.grace_period_seconds, Some(60));
        assert_eq!(
            back.daemon_ready_timeout_seconds,
            c.daemon_ready_timeout_seconds
        );
        assert!(c.to_yaml().contains("grace_period_seconds: 60"));
    }

    #[test]
    fn opt_parses_short_and_long_flags() {
        let o = Opt::parse_from_args(["p", "-u", "-d", "-t", "-c", "a.yaml"]);
        assert_eq!(
            o,
            Opt {
                upgrade: true,
                daemon: true,
                nocapture: false,
                test: true,
                conf: Some("a.yaml".into()),
            }
        );
        let o = Opt::parse_from_args([
            "p",
            "--upgrade",
            "--daemon",
            "--nocapture",
            "--test",
            "--conf=b.yaml",
        ]);
        assert!(o.upgrade && o.daemon && o.nocapture && o.test);
        assert_eq!(o.conf.as_deref(), Some("b.yaml"));
        assert_eq!(Opt::parse_from_args(["p"]), Opt::default());
        assert!(Opt::try_parse_from(["p", "--bogus"]).is_err());
    }

    #[test]
    fn only_daemon_is_merged_from_opt() {
        let path = temp_file("merge.yaml", "threads: 3\n");
        let opt = Opt {
            daemon: true,
            conf: Some(path.display().to_string()),
            ..Default::default()
        };
        let c = ServerConf::load_yaml_with_opt_override(&opt).unwrap();
        assert!(c.daemon);
        assert_eq!(c.threads, 3);
        assert!(ServerConf::load_yaml_with_opt_override(&Opt::default()).is_err());
    }

    #[test]
    fn conf_for_opt_uses_defaults_without_a_file_and_reports_a_bad_file() {
        let c = conf_for_opt(&Opt::default()).unwrap();
        assert_eq!(c.version, 1);
        let path = temp_file("cli_bad.yaml", "version: 1\ngrace_period_seconds: soon\n");
        let opt = Opt {
            test: true,
            conf: Some(path.display().to_string()),
            ..Default::default()
        };
        let msg = describe_conf_error(&conf_for_opt(&opt).unwrap_err());
        assert!(
            msg.starts_with(&format!(
                "{}: line 2 column 23: grace_period_seconds:",
                path.display()
            )),
            "{msg}"
        );
    }
}
