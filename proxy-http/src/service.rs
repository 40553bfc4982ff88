//! Building a listening service around a [`ProxyHttp`].

use std::sync::Arc;

use proxy_core::server::configuration::ServerConf;
use proxy_core::services::listening::Service;

use crate::proxy::HttpProxy;
use crate::proxy_trait::ProxyHttp;

/// The name [`http_proxy_service`] gives its service.
pub const DEFAULT_SERVICE_NAME: &str = "Proxy HTTP Service";

/// The proxy application alone, for a service built by hand.
pub fn http_proxy<SV>(conf: &Arc<ServerConf>, inner: SV) -> HttpProxy<SV> {
    HttpProxy::new(inner, conf.clone())
}

/// A listening service that proxies with `inner`; add listeners with
/// `add_tcp`/`add_uds`, then hand it to `Server::add_service`.
pub fn http_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    http_proxy_service_with_name(conf, inner, DEFAULT_SERVICE_NAME)
}

/// [`http_proxy_service`] with a service name of your own (it names the
/// service's threads and log lines, and is the `service` label of its metrics).
pub fn http_proxy_service_with_name<SV>(
    conf: &Arc<ServerConf>,
    inner: SV,
    name: &str,
) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let proxy = HttpProxy::with_metrics_service(inner, conf.clone(), name);
    Service::new(name.to_string(), proxy)
}
