//! # Part 5: running in production
//!
//! Part 2's load-balancing proxy, made ready to run unattended: it can
//! detach as a daemon, be upgraded to a new binary without dropping a
//! connection, stop gracefully, and report Prometheus metrics.
//!
//! ```sh
//! cargo build --release -p proxy-examples --bin part-05-production
//! B=target/release/part-05-production
//! $B -c examples/conf/part-05-production.yaml -d                 # daemon, pid file written
//! curl http://127.0.0.1:6188/ ; curl -s http://127.0.0.1:6192/metrics | head
//! $B -c examples/conf/part-05-production.yaml -d -u && kill -QUIT $(cat /tmp/load_balancer.pid)
//! kill -TERM $(cat /tmp/load_balancer.pid)                       # drain and exit
//! ```
//!
//! What each flag and signal does is the server's business, not this
//! program's (see `docs/05-production.md`):
//! - `-d` (or `daemon: true`): listening sockets are bound in the
//!   foreground, then the process forks, writes `pid_file`, and logs to
//!   `error_log`;
//! - `-u`: wait on `upgrade_sock` for the old process's listening sockets
//!   instead of binding them; the old process hands them over on SIGQUIT and
//!   drains. Until the hand-over the pid file still names the old process,
//!   so `$(cat pid_file)` right after `-d -u` is the process to signal;
//! - SIGTERM: stop accepting, finish in-flight requests (up to
//!   `grace_period_seconds`), exit; SIGINT: exit now;
//! - `-t`: check the conf file and exit.
//!
//! With no `upstreams` in the conf, two demo origins run inside the process,
//! as a background service so that they survive the daemon's fork.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use proxy_examples::conf;
use proxy_examples::demo_origin::DemoOrigins;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{http_proxy_service_with_name, ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::services::listening::Service;
use proxy_facade::upstreams::peer::HttpPeer;

/// The proxy: round robin over the healthy upstreams.
struct ProductionProxy {
    upstreams: Arc<LoadBalancer<RoundRobin>>,
    conf: conf::ExampleConf,
}

#[async_trait]
impl ProxyHttp for ProductionProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    /// A healthy upstream, or a 502 naming how many are down.
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self.upstreams.select(b"", 256).ok_or_else(|| {
            let known = self.upstreams.backends().get_backend().len();
            Error::explain(
                ErrorType::Custom("NoHealthyUpstream"),
                format!("no healthy upstream available: all {known} upstreams are down"),
            )
            .into_up()
        })?;
        Ok(conf::peer_for(backend.addr, &self.conf))
    }

    /// Nothing reached the upstream: let the framework try the next one.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut (),
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(true);
        e
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-05-production: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    server.bootstrap();

    // Upstreams from the conf, or demo origins bound now and served by a
    // background service (which starts after a daemon's fork).
    let addrs = if conf.upstreams.is_empty() {
        let origins = DemoOrigins::bind(2).or_err(ErrorType::InternalError, "demo origins")?;
        let addrs = origins.addrs();
        log::info!(
            "no upstreams configured: demo origins on {}",
            addrs.join(", ")
        );
        server.add_service(background_service("demo origins", origins));
        addrs
    } else {
        conf.upstreams.clone()
    };

    // The load balancer and its health checks, as in part 2.
    let mut upstreams = LoadBalancer::try_from_iter(&addrs)?;
    upstreams.set_health_check(TcpHealthCheck::new());
    upstreams.health_check_frequency = Some(Duration::from_secs(1));
    let health = background_service("health check", upstreams);
    let upstreams = health.task();

    // The proxy; its name labels its metrics.
    let listen = conf.listen.clone();
    let metrics_listen = conf.metrics_listen.clone();
    let proxy = ProductionProxy { upstreams, conf };
    let mut proxy = http_proxy_service_with_name(&server.configuration, proxy, "lb");
    proxy.add_tcp(&listen);

    // Prometheus metrics: the framework's and any of your own.
    let mut metrics = Service::prometheus_http_service();
    metrics.add_tcp(&metrics_listen);

    log::info!("proxy on http://{listen}/, metrics on http://{metrics_listen}/metrics");
    server.add_service(health);
    server.add_service(proxy);
    server.add_service(metrics);
    server.run_forever();
}
