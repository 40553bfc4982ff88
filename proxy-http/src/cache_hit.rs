//! Serving an entry from the cache: the stored header (with `Age`, a 304
//! for a matching conditional request, ranges) and its body, through
//! `response_filter` and `response_body_filter`, or with sendfile(2) when
//! the storage keeps the body in a file and the overrides allow it.

use std::time::SystemTime;

use crate::range::RangeType;
use bytes::Bytes;
use http::header::HeaderName;
use http::Method;
use proxy_cache::filters;
use proxy_core::error::{Error, ErrorType, Result};
use proxy_core::http::{FieldLines, ResponseHeader};

use crate::proxy::HttpProxy;
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Serve the entry in `session.cache` (a hit, a revalidated or a stale
    /// one): the stored header with `Age`, a 304 for a matching conditional
    /// request, ranges, then the body, through `response_filter` and
    /// `response_body_filter`.
    pub(crate) async fn serve_from_cache(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> Result<()> {
        let Some(meta) = session.cache.cache_meta().cloned() else {
            return Error::e_explain(ErrorType::InternalError, "cache: nothing to serve");
        };
        let now = SystemTime::now();
        let mut resp = meta.response_header_copy();
        filters::set_age_header(&mut resp, &meta, now)?;
        let (body_len, can_seek) = match session.cache.hit_handler() {
            Some(h) => (h.body_len(), h.can_seek()),
            None => (None, false),
        };
        if let Some(len) = body_len {
            resp.remove_header_named(&http::header::TRANSFER_ENCODING);
            // usually stored already, with this value
            let stored = single_value(&resp, &http::header::CONTENT_LENGTH)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            if stored != Some(len) {
                resp.insert_header(http::header::CONTENT_LENGTH, len)?;
            }
        }
        self.add_cache_status(session, &mut resp);
        let not_modified = match self.inner.cache_not_modified_filter(session, &resp, ctx) {
            Ok(b) => b,
            Err(e) => {
                log::debug!("cache_not_modified_filter failed, serving in full: {e}");
                false
            }
        };
        let ranges = if not_modified {
            resp = filters::to_not_modified(&resp);
            RangeType::None
        } else if can_seek && body_len.is_some() {
            if single_value(&resp, &http::header::ACCEPT_RANGES).is_none_or(|v| v != b"bytes") {
                resp.insert_header(http::header::ACCEPT_RANGES, "bytes")?;
            }
            self.inner.range_header_filter(session, &mut resp, ctx)
        } else {
            RangeType::None
        };
        self.inner.response_filter(session, &mut resp, ctx).await?;
        let head_only = not_modified
            || matches!(ranges, RangeType::Invalid)
            || *session.req_header().method() == Method::HEAD
            || body_len == Some(0);
        session
            .downstream_session
            .write_response_header(Box::new(resp))
            .await
            .map_err(|e| e.into_down())?;
        if head_only {
            session
                .downstream_session
                .finish_body()
                .await
                .map_err(|e| e.into_down())?;
        } else {
            match ranges {
                RangeType::Single(r) => {
                    self.seek_hit(session, r.start, r.end)?;
                    self.send_hit_body(session, ctx, true).await?;
                }
                RangeType::Multi(multi) => {
                    for (i, r) in multi.ranges.iter().enumerate() {
                        let part = multi.part_header(i, body_len.unwrap_or(0));
                        self.send_piece(session, ctx, part, false).await?;
                        self.seek_hit(session, r.start, r.end)?;
                        self.send_hit_body(session, ctx, false).await?;
                    }
                    let close = multi.closing_delimiter();
                    self.send_piece(session, ctx, close, true).await?;
                }
                RangeType::None | RangeType::Invalid => {
                    if !self.send_hit_file(session).await? {
                        self.send_hit_body(session, ctx, true).await?;
                    }
                }
            }
        }
        if let Err(e) = session.cache.finish_hit_handler().await {
            log::debug!("cache hit finish: {e}");
        }
        Ok(())
    }

    /// With [`CacheOptionOverrides::sendfile`](proxy_cache::CacheOptionOverrides::sendfile),
    /// send the rest of the hit's body from the file the storage keeps it
    /// in, with sendfile(2), and end the response, when the client
    /// connection can take it (HTTP/1.x on a plain socket, Content-Length
    /// framing). Returns whether it did; `response_body_filter` is not
    /// called for such a body.
    async fn send_hit_file(&self, session: &mut Session) -> Result<bool> {
        if !session.cache.overrides().is_some_and(|o| o.sendfile)
            || !session.downstream_session.can_write_body_file()
        {
            return Ok(false);
        }
        let Some(f) = session.cache.hit_handler().and_then(|h| h.body_file()) else {
            return Ok(false);
        };
        let down = &mut session.downstream_session;
        down.write_response_body_file(&f.file, f.offset, f.len)
            .await
            .map_err(|e| e.into_down())?;
        down.finish_body().await.map_err(|e| e.into_down())?;
        Ok(true)
    }

    fn seek_hit(&self, session: &mut Session, start: usize, end: usize) -> Result<()> {
        match session.cache.hit_handler() {
            Some(h) => h.seek(start, Some(end)),
            None => Error::e_explain(ErrorType::InternalError, "cache: no hit handler to seek"),
        }
    }

    /// Stream the hit handler's body downstream; `last`: this ends the
    /// response.
    async fn send_hit_body(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        last: bool,
    ) -> Result<()> {
        loop {
            let piece = match session.cache.hit_handler() {
                Some(h) => h.read_body().await.map_err(|e| {
                    // a storage failure mid-body: the response cannot be completed
                    let mut e = e;
                    e.as_in();
                    e
                })?,
                None => None,
            };
            let end = piece.is_none();
            if end {
                if last {
                    self.send_piece(session, ctx, Bytes::new(), true).await?;
                }
                return Ok(());
            }
            if let Some(p) = piece {
                self.send_piece(session, ctx, p, false).await?;
            }
        }
    }

    async fn send_piece(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        piece: Bytes,
        end: bool,
    ) -> Result<()> {
        let mut body = (!piece.is_empty()).then_some(piece);
        let delay = self
            .inner
            .response_body_filter(session, &mut body, end, ctx)?;
        session
            .write_response_body(body, end)
            .await
            .map_err(|e| e.into_down())?;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        Ok(())
    }
}

/// The value of `name` in `resp` when it has exactly one.
fn single_value<'a>(resp: &'a ResponseHeader, name: &'a HeaderName) -> Option<&'a [u8]> {
    let mut values = resp.field_values(name);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}
