//! `Consistent` (Ketama) against nginx itself: an nginx balancing with
//! `hash $arg_k consistent` over five servers (one of weight 2) and our
//! load balancer over the same five must send every key to the same server.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy_facade::lb::discovery::Static;
use proxy_facade::lb::selection::Consistent;
use proxy_facade::lb::{Backend, Backends, LoadBalancer};
use support::*;

/// nginx killed (by its PID) and reaped on drop.
struct NginxHash {
    child: Child,
    front: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for NginxHash {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with one server block per backend answering its own port, and a
/// front server balancing over them with `hash $arg_k consistent`.
fn start_nginx(backends: &[(SocketAddr, usize)]) -> NginxHash {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut servers = String::new();
    let mut blocks = String::new();
    for (addr, weight) in backends {
        servers.push_str(&format!("        server {addr} weight={weight};\n"));
        blocks.push_str(&format!(
            "    server {{ listen {addr}; location / {{ return 200 \"{}\"; }} }}\n",
            addr.port()
        ));
    }
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    keepalive_requests 100000;
    upstream pool {{
        hash $arg_k consistent;
{servers}    }}
{blocks}    server {{ listen {front}; location / {{ proxy_pass http://pool; }} }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    fs::write(&conf_path, conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {NGINX} (apt-get install nginx-light): {e}"));
    let nginx = NginxHash {
        child,
        front,
        _dir: dir,
    };
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(front).is_err() {
        let log = fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "nginx did not start; error.log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
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
