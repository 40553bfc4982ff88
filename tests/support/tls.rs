//! TLS helpers of the end-to-end tests: a throwaway PKI made with the
//! `openssl` command line, nginx serving HTTPS with it, and curl / `openssl
//! s_client` runs that report what the server presented.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{start_nginx_in, ChildGuard, WAIT};

/// Runs `openssl` with `args` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority in a temp dir, and the certificates it signs.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    name: String,
}

/// A certificate and key on disk.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    /// PEM chain: the leaf, then the CA.
    pub(crate) cert: PathBuf,
    /// PEM PKCS#8 key.
    pub(crate) key: PathBuf,
}

impl Pki {
    /// A new P-256 CA named `name` (`CN=<name>`), valid 2 days.
    pub(crate) fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir for the PKI");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        Pki {
            dir,
            name: name.to_owned(),
        }
    }

    /// The CA certificate (PEM).
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join(format!("{}.pem", self.name))
    }

    /// A leaf for `cn` with the given SANs (`DNS:localhost,IP:127.0.0.1`)
    /// and serial (hex), signed by this CA; the cert file holds leaf + CA.
    pub(crate) fn issue(&self, cn: &str, san: &str, serial_hex: &str) -> Issued {
        let d = self.dir.path();
        let base = format!("{cn}-{serial_hex}");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{base}.key"),
                "-out",
                &format!("{base}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        fs::write(
            d.join(format!("{base}.ext")),
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("write ext file");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{base}.csr"),
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-set_serial",
                &format!("0x{serial_hex}"),
                "-days",
                "2",
                "-sha256",
                "-extfile",
                &format!("{base}.ext"),
                "-out",
                &format!("{base}.leaf"),
            ],
        );
        let mut chain = fs::read(d.join(format!("{base}.leaf"))).expect("read leaf");
        chain.extend(fs::read(self.ca()).expect("read CA"));
        fs::write(d.join(format!("{base}.crt")), chain).expect("write chain");
        Issued {
            cert: d.join(format!("{base}.crt")),
            key: d.join(format!("{base}.key")),
        }
    }
}

/// Waits until `addr` accepts a TCP connection (up to `WAIT`).
pub(crate) fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `openssl s_client` saw of the server's certificate.
#[derive(Debug)]
pub(crate) struct Presented {
    /// The leaf's serial, upper-case hex (`openssl x509 -serial`).
    pub(crate) serial: String,
    /// The leaf's SHA-256 fingerprint, upper-case hex with colons.
    pub(crate) sha256: String,
    /// The negotiated protocol, e.g. `TLSv1.3`.
    pub(crate) protocol: String,
}

/// Handshakes with `addr` (SNI `sni`) using `openssl s_client` and reads
/// the leaf certificate the server sent.
pub(crate) fn presented_cert(addr: SocketAddr, sni: &str) -> Presented {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let protocol = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Protocol  : ")
                .or_else(|| l.split("New, ").nth(1))
        })
        .map(|p| p.split(',').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    let (Some(b), Some(e)) = (begin, end) else {
        panic!(
            "s_client to {addr} got no certificate:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pem = &text[b..e + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run openssl x509");
    use std::io::Write;
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write pem");
    let out = x509.wait_with_output().expect("openssl x509");
    let info = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        info.lines()
            .find_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.contains(prefix))
                    .map(|(_, v)| v.to_owned())
            })
            .unwrap_or_default()
    };
    Presented {
        serial: field("serial"),
        sha256: field("Fingerprint"),
        protocol,
    }
}

/// nginx serving HTTPS with a certificate and key, every response `200
/// "nginx over tls\n"` with `X-Served-By: nginx-tls`.
pub(crate) struct NginxTls {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    _process: ChildGuard,
}

impl NginxTls {
    /// Starts nginx on a free port of 127.0.0.1 with `issued` as its certificate.
    pub(crate) fn start(issued: &Issued) -> NginxTls {
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let (cert, key) = (issued.cert.display(), issued.key.display());
        let (addr, process) = start_nginx_in(dir.path(), "nginx (TLS)", |addr| {
            format!(
                r#"    access_log off;
    server {{
        listen {addr} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            add_header X-Served-By nginx-tls always;
            return 200 "nginx over tls\n";
        }}
    }}
"#
            )
        });
        NginxTls {
            _dir: dir,
            addr,
            _process: process,
        }
    }

    /// The address nginx listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}
