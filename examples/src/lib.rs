//! Shared pieces of the tutorial programs: their configuration keys
//! ([`conf`]) and the demo origin they proxy to when no upstream is
//! configured ([`demo_origin`]).
//!
//! The programs themselves are in `src/bin/`:
//! `part-01-first-proxy` (forward everything to the upstreams, set `Host`),
//! `part-03-filters` (API-key check, response header filter, access log),
//! `part-07-rate-limiting` (429 with `Retry-After` per client IP) and
//! `demo-origin` (the demo origin, standalone).

pub mod conf;
pub mod demo_origin;
