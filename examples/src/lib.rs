//! Shared pieces of the tutorial programs: their configuration keys
//! ([`conf`]) and the demo origin they proxy to when no upstream is
//! configured ([`demo_origin`]).
//!
//! The programs themselves are in `src/bin/`:
//! `part-01-first-proxy` (forward everything to the upstreams, set `Host`),
//! `part-02-load-balancing` (round robin with health checks over the upstreams),
//! `part-03-filters` (API-key check, response header filter, access log) and
//! `demo-origin` (the demo origin, standalone).

pub mod conf;
pub mod demo_origin;
