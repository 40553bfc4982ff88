//! # Part 2: load balancing
//!
//! Part 1's proxy spread over several upstreams by a `LoadBalancer`: round
//! robin, with a TCP health check every second that takes a dead upstream
//! out of the rotation (and puts it back when it answers again). Every
//! response carries an `X-Backend` header naming the upstream that served
//! it, so the rotation shows with curl:
//!
//! ```sh
//! cargo run --release -p proxy-examples --bin part-02-load-balancing
//! for i in 1 2 3 4; do curl -si http://127.0.0.1:6188/ | grep -i x-backend; done
//! ```
//!
//! With no `upstreams` configured it starts two demo origins inside the
//! process and adds a third upstream that is deliberately down (a port
//! that is bound but never listens, so connecting to it is refused): the
//! log shows the health check marking it unhealthy within a second, and
//! requests alternate between the two live ones.
//!
//! With a conf file (the server's keys and ours side by side):
//!
//! ```yaml
//! threads: 2
//! listen: 127.0.0.1:6188
//! upstreams: [127.0.0.1:8000, 127.0.0.1:8001, 127.0.0.1:8002]
//! upstream_connect_timeout_ms: 1000
//! ```
//!
//! A request that finds its upstream refusing connections (before the
//! health check noticed) is retried on the next one, so clients see no
//! error; when every upstream is down the proxy answers `502` and logs
//! `no healthy upstream`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use proxy_examples::conf::{self, ExampleConf};
use proxy_facade::http::ResponseHeader;
use proxy_facade::lb::Backend;
use proxy_facade::prelude::*;
use proxy_facade::proxy::{ProxyHttp, Session};
use proxy_facade::server::configuration::Opt;
use proxy_facade::upstreams::peer::HttpPeer;

/// The header every response gets, naming the upstream that served it.
const BACKEND_HEADER: &str = "X-Backend";

/// The proxy: the load balancer (shared with the health-check service,
/// which updates it in the background) and our conf keys.
struct LbProxy {
    upstreams: Arc<LoadBalancer<RoundRobin>>,
    conf: ExampleConf,
}

/// Per-request state: the upstream `upstream_peer` picked.
struct Ctx {
    backend: Option<Backend>,
}

#[async_trait]
impl ProxyHttp for LbProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx { backend: None }
    }

    /// Ask the load balancer for a healthy upstream. Round robin ignores the
    /// key, so it is empty. When none is healthy the request ends with a
    /// 502: the error is an upstream one, which the framework answers with
    /// 502 and logs with this context.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(backend) = self.upstreams.select(b"", 256) else {
            let known = self.upstreams.backends().get_backend().len();
            return Err(Error::explain(
                ErrorType::Custom("NoHealthyUpstream"),
                format!("no healthy upstream available: all {known} upstreams are down"),
            )
            .into_up());
        };
        let mut peer = HttpPeer::new(&backend, false, String::new());
        peer.options.connection_timeout = self.conf.connect_timeout();
        peer.options.read_timeout = self.conf.read_timeout();
        ctx.backend = Some(backend);
        Ok(Box::new(peer))
    }

    /// Connecting failed, so nothing reached the upstream: try again, and
    /// `upstream_peer` picks the next one (up to `max_retries` times).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        _ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        log::warn!("connecting to {peer} failed, trying another upstream: {e}");
        e.set_retry(true);
        e
    }

    /// Name the upstream that served this response.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(backend) = &ctx.backend {
            upstream_response.insert_header(BACKEND_HEADER, backend.addr.to_string())?;
        }
        Ok(())
    }
}

/// The conf's `upstreams`, or two demo origins and a dead address.
fn upstream_addrs(conf: &ExampleConf) -> Result<Vec<String>> {
    if !conf.upstreams.is_empty() {
        return Ok(conf.upstreams.clone());
    }
    let mut addrs = proxy_examples::demo_origin::spawn_several(2)
        .or_err(ErrorType::InternalError, "starting the demo origins")?;
    let dead =
        reserve_dead_address().or_err(ErrorType::InternalError, "reserving a dead address")?;
    log::info!(
        "no upstreams configured: demo origins on {} and {}, and {dead}, deliberately down",
        addrs[0],
        addrs[1]
    );
    addrs.push(dead.to_string());
    Ok(addrs)
}

/// An address on 127.0.0.1 where nothing will ever listen while this
/// process runs: the port is bound by a socket that never listens (and is
/// kept open for the life of the process), so connecting is refused and no
/// other program can take the port.
fn reserve_dead_address() -> std::io::Result<SocketAddr> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("bound socket has no inet address"))?;
    // keep the port reserved until the process exits
    std::mem::forget(socket);
    Ok(addr)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("part-02-load-balancing: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut server = Server::new(Some(Opt::parse_args()))?;
    let conf = conf::load(&server)?;
    let addrs = upstream_addrs(&conf)?;
    server.bootstrap();

    // 1. The load balancer: round robin over the upstreams, with a TCP
    //    health check every second (a backend that refuses or does not
    //    accept within 1 s is out until it accepts again).
    let mut upstreams = LoadBalancer::try_from_iter(&addrs)?;
    upstreams.set_health_check(TcpHealthCheck::new());
    upstreams.health_check_frequency = Some(Duration::from_secs(1));

    // 2. Run it as a background service: its checks run on the server's
    //    background runtime and stop with the server. `task()` is the
    //    shared handle the proxy selects from.
    let background = background_service("health_check", upstreams);
    let upstreams = background.task();
    log::info!("load balancing over {}", addrs.join(", "));

    // 3. The proxy service, as in part 1.
    let listen = conf.listen.clone();
    let mut service = http_proxy_service(&server.configuration, LbProxy { upstreams, conf });
    service.add_tcp(&listen);
    log::info!("proxy listening on http://{listen}/");

    server.add_service(background);
    server.add_service(service);
    server.run_forever();
}
