//! Container operations: create, delete, stats, JSON listings with paging, and bulk
//! delete through Swift's `bulk` middleware.
//!
//! Listing pages end when a page holds fewer entries than asked for; with a delimiter the
//! marker may be a rolled-up `subdir`, which Swift accepts as a marker (it resumes after
//! everything under that prefix). Bulk delete sends url-encoded `/container/object` lines,
//! at most [`BULK_DELETE_MAX`] per request, and reads the middleware's JSON report: the
//! HTTP status is 200 as soon as the middleware starts answering (it trickles whitespace
//! to keep long deletes alive), so the real outcome is the report's "Response Status".

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::Deserialize;

use crate::client::{one_line, Attempt, Call, CallBody, SwiftClient, BULK_DELETE_MAX, LISTING_MAX};
use crate::encode::{check_container, encode_container, encode_object, encode_query};
use crate::error::{Result, SwiftError};
use crate::types::{BulkDeleteReport, ContainerMeta, ListEntry, ListOptions, ListPage};

impl SwiftClient {
    /// Deletes many objects of one container through the bulk middleware, in requests of
    /// at most [`BULK_DELETE_MAX`] names. Missing objects are counted, not errors; objects
    /// Swift failed to delete are listed in the report.
    pub async fn bulk_delete<S: AsRef<str>>(
        &self,
        container: &str,
        names: &[S],
    ) -> Result<BulkDeleteReport> {
        check_container(container)?;
        let mut report = BulkDeleteReport::default();
        for chunk in names.chunks(BULK_DELETE_MAX) {
            let mut body = String::with_capacity(chunk.len() * 64);
            let c = encode_container(container);
            for n in chunk {
                let n = n.as_ref();
                if n.is_empty() {
                    return Err(SwiftError::Config(format!(
                        "empty object name in bulk delete of container {container:?}"
                    )));
                }
                body.push('/');
                body.push_str(&c);
                body.push('/');
                body.push_str(&encode_object(n));
                body.push('\n');
            }
            let call = Call::new("bulk_delete", Method::POST, None, None)
                .query("bulk-delete")
                .header(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                )
                .header(
                    http::header::ACCEPT,
                    HeaderValue::from_static("application/json"),
                )
                .body(CallBody::Bytes(Bytes::from(body)));
            let r = self
                .execute(call, |a| async move { parse_bulk_report(a).await })
                .await?;
            report.deleted += r.deleted;
            report.not_found += r.not_found;
            report.errors.extend(r.errors);
        }
        Ok(report)
    }

    /// Creates a container (succeeds if it exists).
    pub async fn create_container(&self, container: &str) -> Result<()> {
        check_container(container)?;
        let call = Call::new("create_container", Method::PUT, Some(container), None);
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            a.drain().await;
            Ok(())
        })
        .await
    }

    /// Deletes an empty container; `NotFound` when absent, HTTP 409 when not empty.
    pub async fn delete_container(&self, container: &str) -> Result<()> {
        check_container(container)?;
        let call = Call::new("delete_container", Method::DELETE, Some(container), None);
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            a.drain().await;
            Ok(())
        })
        .await
    }

    /// Container statistics; `NotFound` when absent.
    pub async fn head_container(&self, container: &str) -> Result<ContainerMeta> {
        check_container(container)?;
        let call = Call::new("head_container", Method::HEAD, Some(container), None);
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            let num = |h: &str| a.header(h).and_then(|v| v.parse().ok()).unwrap_or(0);
            let meta = ContainerMeta {
                object_count: num("x-container-object-count"),
                bytes_used: num("x-container-bytes-used"),
            };
            a.drain().await;
            Ok(meta)
        })
        .await
    }

    /// One page of a container listing (JSON format).
    pub async fn list_objects(&self, container: &str, opts: &ListOptions) -> Result<ListPage> {
        check_container(container)?;
        let mut q = String::from("format=json");
        if let Some(p) = &opts.prefix {
            q.push_str("&prefix=");
            q.push_str(&encode_query(p));
        }
        if let Some(d) = opts.delimiter {
            q.push_str("&delimiter=");
            q.push_str(&encode_query(d.encode_utf8(&mut [0; 4])));
        }
        if let Some(m) = &opts.marker {
            q.push_str("&marker=");
            q.push_str(&encode_query(m));
        }
        let limit = opts.limit.unwrap_or(LISTING_MAX).clamp(1, LISTING_MAX);
        q.push_str(&format!("&limit={limit}"));
        let call = Call::new("list_objects", Method::GET, Some(container), None)
            .query(q)
            .header(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
        self.execute(call, move |a| async move {
            match a.status.as_u16() {
                204 => {
                    a.drain().await;
                    return Ok(ListPage::default());
                }
                200 => {}
                _ => return Err(a.into_error().await),
            }
            let url = a.url.clone();
            let body = a.read_all().await?;
            let raw: Vec<RawListEntry> =
                serde_json::from_slice(&body).map_err(|e| SwiftError::Http {
                    status: 200,
                    method: "GET".into(),
                    url,
                    body_snippet: format!("unparsable listing: {e}"),
                })?;
            let entries: Vec<ListEntry> = raw
                .into_iter()
                .map(|r| match r {
                    RawListEntry::Subdir { subdir } => ListEntry::Subdir(subdir),
                    RawListEntry::Object { name, bytes, hash } => ListEntry::Object {
                        name,
                        bytes,
                        etag: hash,
                    },
                })
                .collect();
            let next_marker = if entries.len() as u64 >= u64::from(limit) {
                entries.last().map(|e| e.name().to_string())
            } else {
                None
            };
            Ok(ListPage {
                entries,
                next_marker,
            })
        })
        .await
    }

    /// The whole listing, page after page.
    pub async fn list_all(
        &self,
        container: &str,
        prefix: Option<&str>,
        delimiter: Option<char>,
    ) -> Result<Vec<ListEntry>> {
        let mut opts = ListOptions {
            prefix: prefix.map(str::to_string),
            delimiter,
            marker: None,
            limit: None,
        };
        let mut out = Vec::new();
        loop {
            let page = self.list_objects(container, &opts).await?;
            out.extend(page.entries);
            match page.next_marker {
                Some(m) => opts.marker = Some(m),
                None => return Ok(out),
            }
        }
    }
}

#[derive(Deserialize)]
struct RawBulkReport {
    #[serde(rename = "Number Deleted", default)]
    deleted: u64,
    #[serde(rename = "Number Not Found", default)]
    not_found: u64,
    #[serde(rename = "Errors", default)]
    errors: Vec<Vec<serde_json::Value>>,
    #[serde(rename = "Response Status", default)]
    status: String,
    #[serde(rename = "Response Body", default)]
    body: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawListEntry {
    Subdir {
        subdir: String,
    },
    Object {
        name: String,
        #[serde(default)]
        bytes: u64,
        #[serde(default)]
        hash: String,
    },
}

pub(crate) async fn parse_bulk_report(a: Attempt) -> Result<BulkDeleteReport> {
    if !a.status.is_success() {
        return Err(a.into_error().await);
    }
    let (method, url) = (a.method.to_string(), a.url.clone());
    let body = a.read_all().await?;
    let raw: RawBulkReport = serde_json::from_slice(&body).map_err(|e| SwiftError::Http {
        status: 200,
        method: method.clone(),
        url: url.clone(),
        body_snippet: format!(
            "unparsable bulk-delete report ({e}): {}",
            one_line(&String::from_utf8_lossy(&body), 200)
        ),
    })?;
    let errors: Vec<(String, String)> = raw
        .errors
        .iter()
        .map(|e| {
            let s = |i: usize| match e.get(i) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            (s(0), s(1))
        })
        .collect();
    let status: u16 = raw
        .status
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    if !(200..300).contains(&status) && errors.is_empty() {
        // The whole request failed inside the middleware (the HTTP status was 200 because
        // the middleware had already started streaming its answer).
        return Err(SwiftError::Http {
            status,
            method,
            url,
            body_snippet: one_line(&format!("{} {}", raw.status, raw.body), 300),
        });
    }
    Ok(BulkDeleteReport {
        deleted: raw.deleted,
        not_found: raw.not_found,
        errors,
    })
}
