//! Shared pieces of the tutorial programs: their configuration keys
//! ([`conf`]), the cache storage parts 6 and 8 choose from it
//! ([`cache_storage`]) and the demo origin they proxy to when no upstream is
//! configured ([`demo_origin`]).
//!
//! The programs themselves are in `src/bin/`:
//! `part-01-first-proxy` (forward everything to the upstreams, set `Host`),
//! `part-02-load-balancing` (round robin with health checks over the upstreams),
//! `part-03-filters` (API-key check, response header filter, access log),
//! `part-04-tls` (HTTP and HTTPS listeners, optional mTLS, TLS upstreams),
//! `part-07-rate-limiting` (429 with `Retry-After` per client IP),
//! `part-08-complete` (the tutorial's complete proxy) and
//! `demo-origin` (the demo origin, standalone).

pub mod allocator;
pub mod cache_storage;
pub mod conf;
pub mod demo_origin;
pub mod self_signed;

/// The memory allocator of every example program (a library's
/// `#[global_allocator]` applies to each binary that links it).
///
/// The allocator is the program's choice, not the framework's. A proxy
/// allocates and frees small objects on every request (header maps, buffers,
/// boxed futures); mimalloc does that in about half the instructions of
/// glibc's malloc (`bench/instructions.sh`: 38,700 → 35,100 per 1 KiB
/// request). Built with `no_thp`: with transparent huge pages its arenas
/// are backed by 2 MiB pages, which doubled the resident memory at start and
/// raised it to 2,097 bytes per idle keep-alive connection; without them it
/// holds 1,442 (glibc: 1,634). [`allocator::MiMalloc`] says why it is called
/// directly rather than through the `mimalloc` crate.
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;
