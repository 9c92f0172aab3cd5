//! Static large objects: objects over Swift's 5 GiB single-object limit are stored as
//! segments plus a JSON manifest (`?multipart-manifest=put`); Swift assembles them on GET.
//!
//! [`SwiftClient::put_large`] cuts a stream into segments named
//! `<name>/segments/<00000000>` next to the manifest, uploads a few at a time (each a
//! plain, md5-verified, retried `put_object`), then writes the manifest. Swift allows
//! at most 1,000 segments per manifest by default (`max_manifest_segments`), so choose
//! `segment_size` at least `total / 1000`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::Stream;
use http::{HeaderValue, Method};

use crate::client::{Call, CallBody, SwiftClient};
use crate::container::parse_bulk_report;
use crate::encode::check_object;
use crate::error::{BoxError, Result, SwiftError};
use crate::types::{BulkDeleteReport, PutInfo, SloSegment};

/// Segments of `put_large` uploaded concurrently (memory: this many segments).
const LARGE_CONCURRENCY: usize = 4;

impl SwiftClient {
    /// Writes a static large object manifest (`?multipart-manifest=put`) over existing
    /// segments; needed for objects over Swift's 5 GiB single-object limit.
    pub async fn put_slo(
        &self,
        container: &str,
        name: &str,
        segments: &[SloSegment],
    ) -> Result<PutInfo> {
        check_object(container, name)?;
        let manifest: Vec<serde_json::Value> = segments
            .iter()
            .map(|s| {
                let mut v = serde_json::json!({"path": format!("/{}/{}", s.container, s.object)});
                if let Some(e) = &s.etag {
                    v["etag"] = e.clone().into();
                }
                if let Some(n) = s.size_bytes {
                    v["size_bytes"] = n.into();
                }
                v
            })
            .collect();
        let body = serde_json::to_vec(&manifest)
            .map_err(|e| SwiftError::Config(format!("cannot encode manifest: {e}")))?;
        let call = Call::new("put_slo", Method::PUT, Some(container), Some(name))
            .query("multipart-manifest=put")
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(CallBody::Bytes(Bytes::from(body)));
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            let etag = a.etag();
            a.drain().await;
            Ok(PutInfo { etag })
        })
        .await
    }

    /// Uploads a stream of any size as `segment_size` segments named
    /// `<name>/segments/<00000000>` in the same container (up to 4 at a time, each
    /// md5-verified and retried), then writes the SLO manifest at `name`. Input that fits
    /// in one segment is written as a plain object instead.
    pub async fn put_large<S, E>(
        &self,
        container: &str,
        name: &str,
        data: S,
        segment_size: u64,
    ) -> Result<PutInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        check_object(container, name)?;
        if segment_size == 0 {
            return Err(SwiftError::Config("segment_size must be positive".into()));
        }
        let seg = segment_size as usize;
        let mut data = std::pin::pin!(data);
        let mut buf = BytesMut::new();
        let mut eof = false;
        let mut index = 0u32;
        let mut in_flight = FuturesOrdered::new();
        let mut segments = Vec::new();
        loop {
            while !eof && buf.len() < seg {
                // Keep the segment uploads moving while waiting for input (they only
                // progress when polled).
                let item = if in_flight.is_empty() {
                    data.next().await
                } else {
                    tokio::select! {
                        done = in_flight.next() => {
                            if let Some(r) = done {
                                segments.push(r?);
                            }
                            continue;
                        }
                        item = data.next() => item,
                    }
                };
                match item {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        return Err(SwiftError::Io {
                            context: format!("reading the input of put_large {container}/{name}"),
                            source: Arc::from(e.into()),
                        })
                    }
                    None => eof = true,
                }
            }
            if index == 0 && eof && buf.len() <= seg {
                // Everything fits in one object: no manifest needed.
                return self.put_object(container, name, buf.freeze(), true).await;
            }
            if buf.is_empty() && eof {
                break;
            }
            let take = buf.len().min(seg);
            let chunk = buf.split_to(take).freeze();
            let seg_name = format!("{name}/segments/{index:08}");
            index += 1;
            in_flight.push_back(async move {
                let len = chunk.len() as u64;
                let info = self.put_object(container, &seg_name, chunk, true).await?;
                Ok::<_, SwiftError>(SloSegment {
                    container: container.to_string(),
                    object: seg_name,
                    etag: Some(info.etag),
                    size_bytes: Some(len),
                })
            });
            if in_flight.len() >= LARGE_CONCURRENCY {
                if let Some(r) = in_flight.next().await {
                    segments.push(r?);
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            segments.push(r?);
        }
        self.put_slo(container, name, &segments).await
    }

    /// Deletes a static large object and its segments (`?multipart-manifest=delete`).
    pub async fn delete_slo(&self, container: &str, name: &str) -> Result<BulkDeleteReport> {
        check_object(container, name)?;
        let call = Call::new("delete_slo", Method::DELETE, Some(container), Some(name))
            .query("multipart-manifest=delete")
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            parse_bulk_report(a).await
        })
        .await
    }
}
