//! # Part 4: TLS
//!
//! The part 1 proxy with an HTTPS listener next to the HTTP one: HTTP on
//! `listen` (default `0.0.0.0:6188`), HTTPS on `tls_listen` (default
//! `0.0.0.0:6443`, Mozilla's intermediate profile: TLS 1.2 and 1.3). The
//! certificate comes from `tls_cert` / `tls_key`; with none configured a
//! self-signed certificate for `localhost` is made at startup (the log says
//! so), so this works with nothing set up:
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-04-tls
//! curl -k https://127.0.0.1:6443/
//! ```
//!
//! Optional keys: `tls_client_ca` requires client certificates signed by
//! that CA (mTLS); `upstream_tls`, `upstream_sni`, `upstream_ca`,
//! `upstream_alternative_cn` and `upstream_verify_hostname` make the proxy speak verified TLS to its
//! upstreams. The `logging` phase writes each request's TLS facts (version,
//! cipher, SNI, client certificate) to the log.
//!
//! ```yaml
//! listen: 127.0.0.1:6188
//! tls_listen: 127.0.0.1:6443
//! tls_cert: /etc/proxy/cert.pem      # leaf then intermediates
//! tls_key: /etc/proxy/key.pem
//! upstreams: [127.0.0.1:8443]
//! upstream_tls: true
//! upstream_sni: origin.internal
//! upstream_ca: /etc/proxy/origin-ca.pem
//! ```
//!
//! A missing, unreadable or malformed certificate or key, or a key that does
//! not match, stops the program at startup with the file named. After
//! renewing the files, `kill -HUP <pid>` reloads them: new handshakes get the
//! new certificate, open connections keep theirs, and broken files are
//! refused (logged) with the old certificate kept.

use std::sync::Arc;

use async_trait::async_trait;
use proxy_examples::conf::{self, ExampleConf, RoundRobin};
use proxy_facade::http::{HeaderValue, RequestHeader};
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::server::ShutdownWatch;
use proxy_facade::services::background::{background_service, BackgroundService};
use proxy_facade::tls::{CertReloader, TlsSettings};
use proxy_facade::upstreams::peer::HttpPeer;

struct TlsProxy {
    upstreams: RoundRobin,
    conf: ExampleConf,
    /// The PEM bytes of `upstream_ca`, read once at startup.
    upstream_ca: Option<Arc<Vec<u8>>>,
}

struct Ctx {
    upstream: Option<HeaderValue>,
}

#[async_trait]
impl ProxyHttp for TlsProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx { upstream: None }
    }

    /// Round robin over the upstreams; over TLS when `upstream_tls`.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let upstream = self
            .upstreams
            .pick()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstreams configured"))?;
        ctx.upstream = Some(upstream.host.clone());
        if !self.conf.upstream_tls {
            return Ok(conf::peer_for(upstream.addr, &self.conf));
        }
        // TLS to the upstream, sending `upstream_sni` and verifying the
        // certificate against `upstream_ca` (or the system store)
        let mut peer = HttpPeer::new(upstream.addr, true, self.conf.upstream_sni.clone());
        peer.options.connection_timeout = self.conf.connect_timeout();
        peer.options.read_timeout = self.conf.read_timeout();
        peer.options.ca = self.upstream_ca.clone();
        peer.options.verify_hostname = self.conf.upstream_verify_hostname;
        peer.options.alternative_cn = self.conf.upstream_alternative_cn.clone();
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(host) = &ctx.upstream {
            upstream_request.insert_header("Host", host.clone())?;
        }
        Ok(())
    }

    /// One log line per request with its TLS facts, when it came over TLS.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut Ctx) {
        // build the line only when it will be written (RUST_LOG=warn skips it)
        if !log::log_enabled!(log::Level::Info) {
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let tls = match session.ssl_digest() {
            Some(d) => format!(
                "{} {} sni={} client_cert={}",
                d.version,
                d.cipher,
                d.sni.as_deref().unwrap_or("-"),
                d.peer_cert.as_ref().map_or("-".to_string(), |c| format!(
                    "{} serial={}",
                    c.subject, c.serial
                ))
            ),
            None => "plaintext".to_string(),
        };
        let upstream_tls = session.upstream_ssl_digest().map_or(String::new(), |d| {
            format!(" upstream={} resumed={}", d.version, d.session_reused)
        });
        let err = e.map_or(String::new(), |e| format!(" error: {e}"));
        log::info!(
            "{} {status} [{tls}{upstream_tls}]{err}",
            session.request_summary()
        );
    }
}

/// Reloads the certificate files on `SIGHUP`, until shutdown.
struct ReloadOnHangup(CertReloader);

#[async_trait]
impl BackgroundService for ReloadOnHangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot watch SIGHUP, certificate reload disabled: {e}");
                return;
            }
        };
        log::info!("SIGHUP reloads the certificate files");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangups.recv() => match self.0.reload() {
                    Ok(s) => log::info!("SIGHUP: certificate reloaded, serial {} sha256 {}", s.serial, s.sha256),
                    Err(e) => log::error!("SIGHUP: certificate not reloaded, the current one stays: {e}"),
                },
            }
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-04-tls: {e}");
        std::process::exit(1);
    }
}

/// The HTTPS listener's settings: the conf's certificate, or a fresh
/// self-signed one; client certificates required when `tls_client_ca` is set.
fn tls_settings(conf: &ExampleConf) -> Result<TlsSettings> {
    let mut tls = match (&conf.tls_cert, &conf.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = TlsSettings::intermediate(cert, key)?;
            log::info!("TLS certificate from {cert}");
            tls
        }
        (None, None) => {
            let cert = proxy_examples::self_signed::localhost()?;
            let s = cert.summary();
            log::info!(
                "no tls_cert/tls_key configured: generated a self-signed certificate for localhost (serial {}, sha256 {}); clients must skip verification (curl -k)",
                s.serial,
                s.sha256
            );
            TlsSettings::with_cert(Arc::new(cert))?
        }
        _ => {
            return Error::e_explain(
                ErrorType::InternalError,
                "tls_cert and tls_key go together: set both or neither",
            )
        }
    };
    if let Some(ca) = &conf.tls_client_ca {
        tls.require_client_cert(ca)?;
        log::info!("HTTPS clients must present a certificate signed by {ca}");
    }
    // HTTP/2 by ALPN (h2, then http/1.1): curl --http2 gets HTTP/2
    tls.enable_h2();
    Ok(tls)
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    // read the files before bootstrap so `-t` checks them too
    let tls = tls_settings(&conf)?;
    let upstream_ca = match &conf.upstream_ca {
        Some(path) => Some(Arc::new(
            std::fs::read(path).or_err_with(ErrorType::FileReadError, || {
                format!("cannot read upstream_ca {path}")
            })?,
        )),
        None => None,
    };
    let upstreams = conf
        .upstreams_or_demo_origin()
        .or_err(ErrorType::InternalError, "starting the demo origin")?;
    server.bootstrap();

    let (listen, tls_listen) = (conf.listen.clone(), conf.tls_listen.clone());
    let conf_has_files = conf.tls_cert.is_some();
    let h2c = conf.h2c;
    let proxy = TlsProxy {
        upstreams,
        conf,
        upstream_ca,
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    // h2c: a client opening with the HTTP/2 preface on `listen` gets HTTP/2
    if let Some(app) = service.app_logic_mut() {
        app.server_options.h2c = h2c;
    }
    service.add_tcp(&listen);
    // certificates from files can be reloaded; a generated one cannot
    let reload =
        conf_has_files.then(|| background_service("cert reload", ReloadOnHangup(tls.reloader())));
    service.add_tls_with_settings(&tls_listen, None, tls);
    log::info!("proxy listening on http://{listen}/ and https://{tls_listen}/");
    server.add_service(service);
    if let Some(reload) = reload {
        server.add_service(reload);
    }
    server.run_forever();
}
