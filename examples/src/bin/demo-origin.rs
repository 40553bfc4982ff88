//! The demo origin, standalone: `demo-origin --listen 127.0.0.1:8000`.
//!
//! Routes: `/` (text page naming what reached it), `/json`, `/bytes/N`,
//! `/status/N`, `/echo`; see `proxy_examples::demo_origin`.

use clap::Parser;

/// Command line of the demo origin.
#[derive(Parser, Debug)]
#[command(about = "A small HTTP origin (hyper) to try the proxy against")]
struct Args {
    /// Address to listen on, host:port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-origin: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => log::info!("demo origin listening on http://{addr}/"),
        Err(e) => log::warn!("demo origin listening (address unknown: {e})"),
    }
    if let Err(e) = proxy_examples::demo_origin::serve(listener).await {
        eprintln!("demo-origin: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
