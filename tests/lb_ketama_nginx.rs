//! `Consistent` (Ketama) against nginx itself: an nginx balancing with
//! `hash $arg_k consistent` over five servers (one of weight 2) and our
//! load balancer over the same five must send every key to the same server.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use proxy_facade::lb::discovery::Static;
use proxy_facade::lb::selection::Consistent;
use proxy_facade::lb::{Backend, Backends, LoadBalancer};
use support::*;

/// nginx and the address of its front server.
struct NginxHash {
    _process: ChildGuard,
    front: SocketAddr,
    _dir: tempfile::TempDir,
}

/// nginx with one server block per backend answering its own port, and a
/// front server balancing over them with `hash $arg_k consistent`.
fn start_nginx(backends: &[(SocketAddr, usize)]) -> NginxHash {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = String::new();
    let mut blocks = String::new();
    for (addr, weight) in backends {
        servers.push_str(&format!("        server {addr} weight={weight};\n"));
        blocks.push_str(&format!(
            "    server {{ listen {addr}; location / {{ return 200 \"{}\"; }} }}\n",
            addr.port()
        ));
    }
    let (front, process) = start_nginx_in(dir.path(), "nginx (hash)", |front| {
        format!(
            r#"    access_log off;
    keepalive_requests 100000;
    upstream pool {{
        hash $arg_k consistent;
{servers}    }}
{blocks}    server {{ listen {front}; location / {{ proxy_pass http://pool; }} }}
"#
        )
    });
    NginxHash {
        _process: process,
        front,
        _dir: dir,
    }
}

#[test]
fn consistent_hashing_sends_every_key_where_nginx_does() {
    let ports: BTreeSet<u16> = (0..5).map(|_| free_port()).collect();
    let backends: Vec<(SocketAddr, usize)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                SocketAddr::from(([127, 0, 0, 1], *p)),
                if i == 2 { 2 } else { 1 },
            )
        })
        .collect();
    let nginx = start_nginx(&backends);

    let set: BTreeSet<Backend> = backends
        .iter()
        .map(|(a, w)| Backend::from_addr(*a, *w))
        .collect();
    let lb = LoadBalancer::<Consistent>::from_backends(Backends::new(Static::new(set)));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(lb.update())
        .unwrap();

    let mut client = RawClient::connect(nginx.front);
    let mut per_port = std::collections::HashMap::new();
    let keys = 2000;
    for i in 0..keys {
        let key = format!("user-{i}");
        client.write(format!("GET /?k={key} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let r = client.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.head);
        let nginx_port: u16 = String::from_utf8(r.body).unwrap().parse().unwrap();
        let ours = lb.select(key.as_bytes(), 1).unwrap().addr.port();
        assert_eq!(
            ours, nginx_port,
            "key {key}: nginx chose port {nginx_port}, we chose {ours}"
        );
        *per_port.entry(ours).or_insert(0usize) += 1;
    }
    // every server got keys, the weight-2 one about twice as many
    assert_eq!(per_port.len(), 5, "{per_port:?}");
}
