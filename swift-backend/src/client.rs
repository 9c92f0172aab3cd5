//! [`SwiftClient`]: the Swift object API over hyper's keep-alive pool, with auth, retries,
//! backpressure and checksums.
//!
//! ## Request life cycle ([`SwiftClient::execute`])
//! 1. get a token from the shared [`AuthState`] (may wait for the single in-flight refresh);
//! 2. take one of `max_in_flight` semaphore permits, so that callers wait instead of piling
//!    up an unbounded queue of requests inside hyper (the permit is held until the response
//!    body has been read, or, for [`SwiftClient::get_stream`], until the stream is dropped);
//! 3. send, under the progress-based `request_timeout` (see [`crate::body`]);
//! 4. classify: 401 → invalidate the token and repeat once; 5xx, 408, 429, 498, connect
//!    errors, timeouts and broken connections → back off ([`crate::retry`]) and repeat, up to
//!    `retries` times; anything else is handed to the operation, which maps it to a result or
//!    a typed [`SwiftError`].
//!
//! ## Which requests are repeated
//! A request is repeated only if its body can be sent again. `Bytes` bodies (every
//! `put_object`, manifests, bulk-delete lists) are replayable: cloning `Bytes` is a refcount
//! bump. A streamed body ([`SwiftClient::put_object_stream`]) is consumed by the first
//! attempt, so that PUT is tried once, unless the caller supplies a closure that recreates
//! the stream ([`SwiftClient::put_object_stream_with_replay`]). All our requests are
//! idempotent (PUT of the same bytes, GET, HEAD, DELETE, bulk delete), so repeating one is
//! safe; a DELETE whose first answer was lost may report `NotFound` on the repeat.
//!
//! ## Threads and runtimes
//! The hyper pool spawns its connection tasks on the runtime that is current when a
//! connection is made, so one pool should be used from one runtime. The engine runs one
//! current-thread runtime per worker and gives each its own [`SwiftClient::fork`]: a new pool
//! and semaphore, the same token cache.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{StreamExt, TryStreamExt};
use futures::Stream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use md5::{Digest, Md5};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::auth::{AuthConfig, AuthState};
use crate::body::{with_idle_timeout, ByteStream, Progress, ReqBody};
use crate::encode::{check_object, encode_container, encode_object};
use crate::error::{is_retryable_status, BoxError, Result, SwiftError};
use crate::retry::{parse_retry_after, Backoff};
use crate::types::{ObjectMeta, PutInfo};

/// Swift's bulk middleware refuses more deletes than this per request
/// (`max_deletes_per_request`).
pub const BULK_DELETE_MAX: usize = 10_000;

/// Swift's default `container_listing_limit`: the largest page it returns.
pub const LISTING_MAX: u32 = 10_000;

/// Bodies at least this large are hashed on tokio's blocking pool, so a worker's
/// current-thread runtime is not stalled for the ~2 ms/MiB md5 costs.
const MD5_OFFLOAD: usize = 1 << 20;

/// A stream of object bytes from [`SwiftClient::get_stream`].
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// Client configuration. [`SwiftConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct SwiftConfig {
    pub auth: AuthConfig,
    /// Use this account URL instead of the one auth returns (e.g. to bypass a load
    /// balancer, or in tests to point at a closed port).
    pub storage_url_override: Option<String>,
    /// Idle keep-alive connections kept per host (default 64). Concurrency itself is
    /// bounded by `max_in_flight`.
    pub max_connections: usize,
    /// Requests in flight per client fork (default 32); further callers wait.
    pub max_in_flight: usize,
    /// Retries after the first attempt (default 8: at least 8 s of backoff in total).
    pub retries: u32,
    /// First backoff bound (default 100 ms); doubles per retry, equal jitter.
    pub retry_base: Duration,
    /// Largest backoff, and cap on `Retry-After` (default 5 s).
    pub retry_max: Duration,
    /// TCP connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Abandon an attempt after this long without progress (default 60 s; see
    /// [`crate::body`] for why it is not a total deadline).
    pub request_timeout: Duration,
}

impl SwiftConfig {
    /// A configuration with the default limits.
    pub fn new(auth: AuthConfig) -> Self {
        SwiftConfig {
            auth,
            storage_url_override: None,
            max_connections: 64,
            max_in_flight: 32,
            retries: 8,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }

    fn validate(&self) -> Result<()> {
        let mut urls = vec![self.auth.endpoint()];
        urls.extend(self.storage_url_override.clone());
        for u in urls {
            let uri: Uri = u
                .parse()
                .map_err(|e| SwiftError::Config(format!("bad URL {u:?}: {e}")))?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return Err(SwiftError::Config(format!(
                        "{u}: https is not supported by this build (plain http only)"
                    )))
                }
                _ => {
                    return Err(SwiftError::Config(format!(
                        "{u}: URL must start with http://"
                    )))
                }
            }
            if uri.authority().is_none() {
                return Err(SwiftError::Config(format!("{u}: URL has no host")));
            }
        }
        if self.max_in_flight == 0 || self.max_connections == 0 {
            return Err(SwiftError::Config(
                "max_in_flight and max_connections must be at least 1".into(),
            ));
        }
        if let AuthConfig::Keystone { interface, .. } = &self.auth {
            if interface.is_empty() {
                return Err(SwiftError::Config("Keystone interface is empty".into()));
            }
        }
        Ok(())
    }
}

/// A Swift client. Cheap to clone (clones share the pool); see [`SwiftClient::fork`] for
/// one per runtime.
#[derive(Clone)]
pub struct SwiftClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Client<HttpConnector, ReqBody>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
}

struct Shared {
    config: SwiftConfig,
    auth: AuthState,
}

impl std::fmt::Debug for SwiftClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwiftClient")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

/// What the retry loop does with a request body on each attempt.
pub(crate) enum CallBody {
    Empty,
    Bytes(Bytes),
    Stream {
        first: Option<ReqBody>,
        replay: Option<Box<dyn FnMut() -> ReqBody + Send>>,
    },
}

impl CallBody {
    /// The body for the next attempt, `None` if it cannot be sent again.
    fn next(&mut self) -> Option<ReqBody> {
        match self {
            CallBody::Empty => Some(ReqBody::empty()),
            CallBody::Bytes(b) => Some(ReqBody::bytes(b.clone())),
            CallBody::Stream { first, replay } => {
                first.take().or_else(|| replay.as_mut().map(|f| f()))
            }
        }
    }

    fn replayable(&self) -> bool {
        match self {
            CallBody::Stream { first, replay } => first.is_some() || replay.is_some(),
            _ => true,
        }
    }
}

/// One request, as the retry loop sees it.
pub(crate) struct Call<'a> {
    op: &'static str,
    method: Method,
    container: Option<&'a str>,
    object: Option<&'a str>,
    /// Already encoded, without the `?`.
    query: Option<String>,
    headers: HeaderMap,
    body: CallBody,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        op: &'static str,
        method: Method,
        container: Option<&'a str>,
        object: Option<&'a str>,
    ) -> Self {
        Call {
            op,
            method,
            container,
            object,
            query: None,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
        }
    }

    pub(crate) fn query(mut self, q: impl Into<String>) -> Self {
        self.query = Some(q.into());
        self
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub(crate) fn body(mut self, body: CallBody) -> Self {
        self.body = body;
        self
    }
}

/// A response handed to an operation's handler, with what it needs for error messages.
pub(crate) struct Attempt {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    permit: OwnedSemaphorePermit,
    progress: Progress,
    pub method: Method,
    pub url: String,
    pub container: Option<String>,
    pub object: Option<String>,
    idle: Duration,
}

impl Attempt {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    pub(crate) fn etag(&self) -> String {
        self.header("etag")
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    }

    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    pub(crate) fn is_large_object(&self) -> bool {
        self.header("x-static-large-object")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || self.header("x-object-manifest").is_some()
    }

    pub(crate) fn object_path(&self) -> String {
        format!(
            "{}/{}",
            self.container.as_deref().unwrap_or(""),
            self.object.as_deref().unwrap_or("")
        )
    }

    /// Reads the whole body. Avoids a copy when it arrives as one chunk.
    /// [`Self::read_all`], also returning the md5 hex of the body.
    pub(crate) async fn read_all_md5(self) -> Result<(Bytes, String)> {
        let mut h = Md5::new();
        let data = self.read_all_with(|frame| h.update(frame)).await?;
        Ok((data, hex::encode(h.finalize())))
    }

    pub(crate) async fn read_all(self) -> Result<Bytes> {
        self.read_all_with(|_| {}).await
    }

    /// Reads the whole body, handing every frame to `inspect` as it arrives.
    async fn read_all_with(mut self, mut inspect: impl FnMut(&[u8])) -> Result<Bytes> {
        const PREALLOC_MAX: u64 = 256 << 20;
        let mut first: Option<Bytes> = None;
        let mut buf: Option<BytesMut> = None;
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| SwiftError::Io {
                context: format!("reading body of {} {}", self.method, self.url),
                source: Arc::new(e),
            })?;
            self.progress.bump();
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            inspect(&data);
            match (&mut first, &mut buf) {
                (None, None) => first = Some(data),
                (Some(f), None) => {
                    let cap = self.content_length().unwrap_or(0).min(PREALLOC_MAX) as usize;
                    let mut b = BytesMut::with_capacity(cap.max(f.len() + data.len()));
                    b.extend_from_slice(f);
                    b.extend_from_slice(&data);
                    first = None;
                    buf = Some(b);
                }
                (_, Some(b)) => b.extend_from_slice(&data),
            }
        }
        drop(self.permit);
        Ok(match (first, buf) {
            (_, Some(b)) => b.freeze(),
            (Some(f), None) => f,
            (None, None) => Bytes::new(),
        })
    }

    /// Reads (up to a limit) and discards the body so the connection can be reused.
    pub(crate) async fn drain(mut self) -> Bytes {
        const LIMIT: usize = 64 << 10;
        let mut out = BytesMut::new();
        while let Some(Ok(frame)) = self.body.frame().await {
            self.progress.bump();
            if let Ok(d) = frame.into_data() {
                if out.len() < LIMIT {
                    let take = d.len().min(LIMIT - out.len());
                    out.extend_from_slice(&d[..take]);
                } else {
                    break;
                }
            }
        }
        out.freeze()
    }

    /// Maps a status the operation did not expect to a typed error.
    pub(crate) async fn into_error(self) -> SwiftError {
        let status = self.status.as_u16();
        let method = self.method.to_string();
        let url = self.url.clone();
        let container = self.container.clone();
        let object = self.object.clone();
        match status {
            404 => {
                self.drain().await;
                SwiftError::NotFound {
                    container: container.unwrap_or_default(),
                    object,
                }
            }
            401 => {
                self.drain().await;
                SwiftError::Unauthorized { method, url }
            }
            403 => {
                self.drain().await;
                SwiftError::Forbidden { method, url }
            }
            _ => {
                let body = self.drain().await;
                SwiftError::Http {
                    status,
                    method,
                    url,
                    body_snippet: one_line(&String::from_utf8_lossy(&body), 300),
                }
            }
        }
    }

    /// Turns the response body into a stream that keeps the permit until it ends.
    pub(crate) fn into_stream(self) -> ObjectStream {
        let Attempt {
            body,
            permit,
            method,
            url,
            idle,
            ..
        } = self;
        let state = Some((body, permit));
        Box::pin(futures::stream::unfold(state, move |state| {
            let method = method.clone();
            let url = url.clone();
            async move {
                let (mut body, permit) = state?;
                loop {
                    match tokio::time::timeout(idle, body.frame()).await {
                        Err(_) => {
                            let e = SwiftError::Timeout {
                                op: format!("reading body of {method} {url}"),
                                after: idle,
                            };
                            return Some((Err(e), None));
                        }
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => {
                            let e = SwiftError::Io {
                                context: format!("reading body of {method} {url}"),
                                source: Arc::new(e),
                            };
                            return Some((Err(e), None));
                        }
                        Ok(Some(Ok(frame))) => match frame.into_data() {
                            Ok(d) if !d.is_empty() => return Some((Ok(d), Some((body, permit)))),
                            _ => continue,
                        },
                    }
                }
            }
        }))
    }
}

/// What one attempt came to.
enum Step<T> {
    Done(T),
    Unauthorized,
    Retry(SwiftError, Option<Duration>),
}

/// Collapses a server-provided text to one short line for error messages.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut last_space = true;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// Object metadata carrying the CRC-32 of the body, set on every upload: a whole-object
/// GET checks it (~0.3 ms per 4 MiB) instead of hashing the body with md5 (~8 ms), so
/// reads stay verified end to end at a fraction of the CPU. Objects without it (written
/// by other tools) are checked against their md5 ETag.
pub const CRC_HEADER: &str = "x-object-meta-ringfs-crc32";

fn crc_value(data: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(data))
}

/// md5 hex of `data`, on the blocking pool when large (see [`MD5_OFFLOAD`]).
pub(crate) async fn md5_hex(data: &Bytes) -> String {
    if data.len() >= MD5_OFFLOAD {
        let d = data.clone();
        if let Ok(h) = tokio::task::spawn_blocking(move || hex::encode(Md5::digest(&d))).await {
            return h;
        }
    }
    hex::encode(Md5::digest(data))
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hv(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| SwiftError::Config(format!("invalid header value {s:?}")))
}

fn endpoint_of(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("?", |a| a.as_str())
    )
}

fn map_send_error(e: hyper_util::client::legacy::Error, method: &Method, uri: &Uri) -> SwiftError {
    if e.is_connect() {
        SwiftError::Connect {
            endpoint: endpoint_of(uri),
            source: Arc::new(e),
        }
    } else {
        SwiftError::Io {
            context: format!("{method} {uri}"),
            source: Arc::new(e),
        }
    }
}

fn status_retry_error(
    status: u16,
    method: &Method,
    url: &str,
    attempts: u32,
    body: &[u8],
) -> SwiftError {
    if matches!(status, 429 | 498) {
        SwiftError::Throttled {
            status,
            method: method.to_string(),
            url: url.to_string(),
            attempts,
        }
    } else {
        SwiftError::Http {
            status,
            method: method.to_string(),
            url: url.to_string(),
            body_snippet: one_line(&String::from_utf8_lossy(body), 300),
        }
    }
}

impl SwiftClient {
    /// Builds a client. No I/O happens here: the first request authenticates (or call
    /// [`SwiftClient::authenticate`] to fail fast). Needs no runtime; must be *used* inside
    /// a tokio runtime (current-thread is fine).
    pub fn new(config: SwiftConfig) -> Result<Self> {
        config.validate()?;
        let auth = AuthState::new(config.auth.clone(), config.storage_url_override.clone());
        let shared = Arc::new(Shared { config, auth });
        Ok(Self::with_shared(shared))
    }

    fn with_shared(shared: Arc<Shared>) -> Self {
        let cfg = &shared.config;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(cfg.connect_timeout));
        conn.set_nodelay(true);
        conn.set_keepalive(Some(Duration::from_secs(60)));
        // Swift's proxy drops idle keep-alive connections after `client_timeout` (60 s);
        // expiring ours well before avoids writing into a socket the server is closing.
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.max_connections)
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_timer(TokioTimer::new())
            .build(conn);
        SwiftClient {
            inner: Arc::new(Inner {
                http,
                permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
                shared,
            }),
        }
    }

    /// A client with its own connection pool and in-flight limit, sharing this client's
    /// configuration and token cache. Use one fork per runtime (per worker thread).
    pub fn fork(&self) -> SwiftClient {
        Self::with_shared(self.inner.shared.clone())
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &SwiftConfig {
        &self.inner.shared.config
    }

    /// Obtains a token now (instead of on the first request), to report bad credentials
    /// at mount time.
    pub async fn authenticate(&self) -> Result<()> {
        self.inner.shared.auth.token(self).await.map(|_| ())
    }

    /// The account URL in use, once authenticated.
    pub fn storage_url(&self) -> Option<String> {
        self.inner.shared.auth.storage_url()
    }

    /// Test hook: makes the cached token look expired so the next request refreshes it.
    #[doc(hidden)]
    pub fn invalidate_token_for_test(&self) {
        self.inner.shared.auth.expire_now();
    }

    /// Test hook: replaces the cached token with a bogus one (same expiry), so the next
    /// request meets a 401 and must re-authenticate.
    #[doc(hidden)]
    pub fn corrupt_token_for_test(&self) {
        self.inner.shared.auth.corrupt();
    }

    /// Number of auth requests made by this client and its forks (for tests and metrics).
    pub fn auth_requests(&self) -> u64 {
        self.inner.shared.auth.refresh_count()
    }

    fn backoff(&self) -> Backoff {
        let c = &self.inner.shared.config;
        Backoff {
            retries: c.retries,
            base: c.retry_base,
            max: c.retry_max,
        }
    }

    /// A request without token, retried on transport errors and retryable statuses; used
    /// for auth. Returns the final status whatever it is.
    pub(crate) async fn raw_request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes)> {
        const LIMIT: usize = 16 << 20;
        let cfg = &self.inner.shared.config;
        let backoff = self.backoff();
        let uri: Uri = url
            .parse()
            .map_err(|e| SwiftError::Config(format!("bad URL {url:?}: {e}")))?;
        let mut retry = 0;
        loop {
            let progress = Progress::new();
            let mut req = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .body(ReqBody::bytes(body.clone()).with_progress(progress.clone()))
                .map_err(|e| SwiftError::Config(format!("cannot build request to {url}: {e}")))?;
            req.headers_mut().extend(headers.clone());
            let started = Instant::now();
            let attempt = async {
                let resp = self
                    .inner
                    .http
                    .request(req)
                    .await
                    .map_err(|e| map_send_error(e, &method, &uri))?;
                let (parts, mut body) = resp.into_parts();
                let mut buf = BytesMut::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| SwiftError::Io {
                        context: format!("reading body of {method} {url}"),
                        source: Arc::new(e),
                    })?;
                    progress.bump();
                    if let Ok(d) = frame.into_data() {
                        if buf.len() + d.len() > LIMIT {
                            return Err(SwiftError::Http {
                                status: parts.status.as_u16(),
                                method: method.to_string(),
                                url: url.to_string(),
                                body_snippet: format!("response body larger than {LIMIT} bytes"),
                            });
                        }
                        buf.extend_from_slice(&d);
                    }
                }
                Ok((parts.status, parts.headers, buf.freeze()))
            };
            let res = match with_idle_timeout(attempt, &progress, cfg.request_timeout).await {
                Some(r) => r,
                None => Err(SwiftError::Timeout {
                    op: format!("{method} {url}"),
                    after: cfg.request_timeout,
                }),
            };
            tracing::debug!(
                %method, url, attempt = retry + 1,
                status = res.as_ref().ok().map(|r| r.0.as_u16()),
                latency_ms = started.elapsed().as_millis() as u64,
                "auth request"
            );
            let (err, retry_after) = match res {
                Ok((status, h, b))
                    if is_retryable_status(status.as_u16()) && retry < backoff.retries =>
                {
                    let ra = h
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    (
                        status_retry_error(status.as_u16(), &method, url, retry + 1, &b),
                        ra,
                    )
                }
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() && retry < backoff.retries => (e, None),
                Err(e) => return Err(e),
            };
            tracing::debug!(error = %err, "retrying auth request");
            tokio::time::sleep(backoff.delay(retry, retry_after)).await;
            retry += 1;
        }
    }

    /// The retry loop shared by all operations; see the module docs.
    pub(crate) async fn execute<T, F, Fut>(&self, call: Call<'_>, handle: F) -> Result<T>
    where
        F: FnMut(Attempt) -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let span = tracing::debug_span!(
            "swift",
            op = call.op,
            container = call.container,
            object = call.object
        );
        self.execute_inner(call, handle).instrument(span).await
    }

    async fn execute_inner<T, F, Fut>(&self, call: Call<'_>, mut handle: F) -> Result<T>
    where
        F: FnMut(Attempt) -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
    {
        let Call {
            method,
            container,
            object,
            query,
            headers,
            mut body,
            ..
        } = call;
        let shared = &self.inner.shared;
        let idle = shared.config.request_timeout;
        let backoff = self.backoff();
        let mut path = String::new();
        if let Some(c) = container {
            path.push('/');
            path.push_str(&encode_container(c));
            if let Some(o) = object {
                path.push('/');
                path.push_str(&encode_object(o));
            }
        }
        if let Some(q) = &query {
            path.push('?');
            path.push_str(q);
        }
        let mut retry: u32 = 0;
        let mut reauthed = false;
        loop {
            // Wait for a slot before taking the token: a request queued behind
            // `max_in_flight` others for longer than the token has left would otherwise go
            // out with an expired token.
            let permit = self
                .inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| SwiftError::Config("client semaphore closed".into()))?;
            let token = shared.auth.token(self).await?;
            let url = format!("{}{}", token.storage_url, path);
            let uri: Uri = url
                .parse()
                .map_err(|e| SwiftError::Config(format!("bad request URL {url:?}: {e}")))?;
            let Some(req_body) = body.next() else {
                return Err(SwiftError::Config(format!(
                    "{method} {url}: streamed body already consumed and no replay given"
                )));
            };
            let progress = Progress::new();
            // hyper leaves out `Content-Length: 0` for an empty body, and Swift answers
            // 411 to a PUT without a length: state it whenever the length is known.
            let length = match (&method, hyper::body::Body::size_hint(&req_body).exact()) {
                (&Method::PUT | &Method::POST, Some(n)) => Some(n),
                _ => None,
            };
            let mut req = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header("x-auth-token", token.value.clone())
                .body(req_body.with_progress(progress.clone()))
                .map_err(|e| SwiftError::Config(format!("cannot build request {url}: {e}")))?;
            req.headers_mut().extend(headers.clone());
            if let Some(n) = length {
                req.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            let started = Instant::now();
            let attempt_no = retry + 1;
            let attempt = async {
                let resp: Response<Incoming> = self
                    .inner
                    .http
                    .request(req)
                    .await
                    .map_err(|e| map_send_error(e, &method, &uri))?;
                progress.bump();
                let (parts, resp_body) = resp.into_parts();
                let status = parts.status.as_u16();
                tracing::debug!(
                    %method, status, attempt = attempt_no,
                    latency_ms = started.elapsed().as_millis() as u64,
                    "swift response"
                );
                let a = Attempt {
                    status: parts.status,
                    headers: parts.headers,
                    body: resp_body,
                    permit,
                    progress: progress.clone(),
                    method: method.clone(),
                    url: url.clone(),
                    container: container.map(str::to_string),
                    object: object.map(str::to_string),
                    idle,
                };
                if status == 401 {
                    a.drain().await;
                    return Ok(Step::Unauthorized);
                }
                if is_retryable_status(status) {
                    let ra = a.header("retry-after").and_then(parse_retry_after);
                    let b = a.drain().await;
                    return Ok(Step::Retry(
                        status_retry_error(status, &method, &url, attempt_no, &b),
                        ra,
                    ));
                }
                handle(a).await.map(Step::Done)
            };
            let outcome = match with_idle_timeout(attempt, &progress, idle).await {
                Some(r) => r,
                None => Err(SwiftError::Timeout {
                    op: format!("{method} {url}"),
                    after: idle,
                }),
            };
            let (err, retry_after) = match outcome {
                Ok(Step::Done(v)) => return Ok(v),
                Ok(Step::Unauthorized) => {
                    // The token was refused: drop it whether or not this request can be
                    // repeated, so the next request starts with a fresh one.
                    shared.auth.invalidate(token.generation);
                    if !reauthed && body.replayable() {
                        tracing::debug!(%method, url, "401: re-authenticating once");
                        reauthed = true;
                        continue;
                    }
                    return Err(SwiftError::Unauthorized {
                        method: method.to_string(),
                        url,
                    });
                }
                Ok(Step::Retry(e, ra)) => (e, ra),
                Err(e) if e.is_retryable() => (e, None),
                Err(e) => {
                    tracing::debug!(%method, url, error = %e, "swift request failed");
                    return Err(e);
                }
            };
            if retry >= backoff.retries || !body.replayable() {
                tracing::debug!(%method, url, error = %err, attempts = attempt_no, "giving up");
                return Err(err);
            }
            let delay = backoff.delay(retry, retry_after);
            tracing::debug!(%method, url, error = %err, attempt = attempt_no, delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    // ---------------------------------------------------------------- objects

    /// Uploads an object. With `verify_md5` the md5 is sent as `ETag`, so Swift refuses a
    /// body damaged in transit (422 → [`SwiftError::Corrupt`]); the returned ETag is also
    /// compared. Retried (the body is `Bytes`).
    pub async fn put_object(
        &self,
        container: &str,
        name: &str,
        body: Bytes,
        verify_md5: bool,
    ) -> Result<PutInfo> {
        check_object(container, name)?;
        if verify_md5 && body.len() >= MD5_OFFLOAD {
            // Large bodies are hashed while they are sent (hashing first would add ~2 ms
            // per MiB to every upload) and checked against the md5 Swift computed of what
            // it received. A mismatch fails the upload, which the caller retries under
            // the same name before anything refers to the object.
            let len = body.len() as u64;
            let crc = crc_value(&body);
            return self
                .put_replayable(
                    container,
                    name,
                    move || {
                        futures::stream::iter(pieces(&body).map(Ok::<_, std::convert::Infallible>))
                    },
                    Some(len),
                    Some(crc),
                )
                .await;
        }
        let md5 = if verify_md5 {
            Some(md5_hex(&body).await)
        } else {
            None
        };
        self.put_with_md5(container, name, body, md5.as_deref())
            .await
    }

    /// PUT with a caller-chosen ETag (what `put_object` computes). Exposed for tests that
    /// need to send a wrong checksum on purpose.
    #[doc(hidden)]
    pub async fn put_with_md5(
        &self,
        container: &str,
        name: &str,
        body: Bytes,
        md5: Option<&str>,
    ) -> Result<PutInfo> {
        check_object(container, name)?;
        let mut call = Call::new("put_object", Method::PUT, Some(container), Some(name))
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .header(
                http::header::HeaderName::from_static(CRC_HEADER),
                hv(&crc_value(&body))?,
            )
            .body(CallBody::Bytes(body));
        if let Some(m) = md5 {
            call = call.header(http::header::ETAG, hv(m)?);
        }
        self.execute(call, move |a| async move {
            match a.status.as_u16() {
                200..=299 => {
                    let etag = a.etag();
                    let path = a.object_path();
                    a.drain().await;
                    if let Some(m) = md5 {
                        if !etag.eq_ignore_ascii_case(m) {
                            return Err(SwiftError::Corrupt {
                                object: path,
                                expected: m.to_string(),
                                actual: etag,
                            });
                        }
                    }
                    Ok(PutInfo { etag })
                }
                422 if md5.is_some() => {
                    let path = a.object_path();
                    a.drain().await;
                    Err(SwiftError::Corrupt {
                        object: path,
                        expected: md5.unwrap_or_default().to_string(),
                        actual: "a different md5 (Swift answered 422 Unprocessable Entity)".into(),
                    })
                }
                _ => Err(a.into_error().await),
            }
        })
        .await
    }

    /// Uploads an object from a stream, tried once (a stream cannot be sent twice; see
    /// [`SwiftClient::put_object_stream_with_replay`]). With `content_length` the request
    /// carries `Content-Length` and fails if the stream yields a different amount; without
    /// it the body is sent chunked. The md5 is computed while streaming and compared with
    /// the ETag Swift returns.
    pub async fn put_object_stream<S, E>(
        &self,
        container: &str,
        name: &str,
        body: S,
        content_length: Option<u64>,
    ) -> Result<PutInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        check_object(container, name)?;
        let slot = Arc::new(Mutex::new(None));
        let stream = hashing(
            body.map_err(Into::into).boxed(),
            slot.clone(),
            content_length,
        );
        let body = CallBody::Stream {
            first: Some(ReqBody::stream(stream, content_length)),
            replay: None,
        };
        self.put_stream_call(container, name, body, slot, None)
            .await
    }

    /// Like [`SwiftClient::put_object_stream`], but `make_body` recreates the stream for
    /// every attempt, so the PUT is retried like a `Bytes` one.
    pub async fn put_object_stream_with_replay<F, S, E>(
        &self,
        container: &str,
        name: &str,
        make_body: F,
        content_length: Option<u64>,
    ) -> Result<PutInfo>
    where
        F: FnMut() -> S + Send + 'static,
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.put_replayable(container, name, make_body, content_length, None)
            .await
    }

    /// [`Self::put_object_stream_with_replay`], with the body's CRC-32 ([`CRC_HEADER`])
    /// when the caller knows it.
    async fn put_replayable<F, S, E>(
        &self,
        container: &str,
        name: &str,
        mut make_body: F,
        content_length: Option<u64>,
        crc: Option<String>,
    ) -> Result<PutInfo>
    where
        F: FnMut() -> S + Send + 'static,
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        check_object(container, name)?;
        let slot = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let body = CallBody::Stream {
            first: None,
            replay: Some(Box::new(move || {
                let stream = hashing(
                    make_body().map_err(Into::into).boxed(),
                    s2.clone(),
                    content_length,
                );
                ReqBody::stream(stream, content_length)
            })),
        };
        self.put_stream_call(container, name, body, slot, crc).await
    }

    async fn put_stream_call(
        &self,
        container: &str,
        name: &str,
        body: CallBody,
        slot: Arc<Mutex<Option<String>>>,
        crc: Option<String>,
    ) -> Result<PutInfo> {
        let mut call = Call::new(
            "put_object_stream",
            Method::PUT,
            Some(container),
            Some(name),
        )
        .header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )
        .body(body);
        if let Some(c) = crc {
            call = call.header(http::header::HeaderName::from_static(CRC_HEADER), hv(&c)?);
        }
        let slot = &slot;
        self.execute(call, move |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            let etag = a.etag();
            let path = a.object_path();
            a.drain().await;
            let Some(sent) = slot.lock().clone() else {
                return Err(SwiftError::Corrupt {
                    object: path,
                    expected: "the md5 of the whole body (the upload ended before the body did)"
                        .into(),
                    actual: etag,
                });
            };
            if !etag.eq_ignore_ascii_case(&sent) {
                return Err(SwiftError::Corrupt {
                    object: path,
                    expected: sent,
                    actual: etag,
                });
            }
            Ok(PutInfo { etag })
        })
        .await
    }

    /// Downloads a whole object, checked end to end: against the CRC-32 its uploader
    /// stored ([`CRC_HEADER`]), else, for plain objects, against the md5 ETag
    /// (large-object manifests have no whole-body md5 to check).
    pub async fn get_object(&self, container: &str, name: &str) -> Result<Bytes> {
        check_object(container, name)?;
        let call = Call::new("get_object", Method::GET, Some(container), Some(name));
        self.execute(call, |a| async move {
            if a.status != StatusCode::OK {
                return Err(a.into_error().await);
            }
            let etag = a.etag();
            let path = a.object_path();
            if let Some(want) = a.header(CRC_HEADER).map(str::to_ascii_lowercase) {
                let mut h = crc32fast::Hasher::new();
                let data = a.read_all_with(|frame| h.update(frame)).await?;
                let actual = format!("{:08x}", h.finalize());
                if actual != want {
                    return Err(SwiftError::Corrupt {
                        object: path,
                        expected: format!("crc32 {want}"),
                        actual: format!("crc32 {actual}"),
                    });
                }
                return Ok(data);
            }
            let check = !a.is_large_object() && is_md5_hex(&etag);
            if check {
                // Hashed frame by frame as it arrives, overlapping the transfer.
                let (data, actual) = a.read_all_md5().await?;
                if !actual.eq_ignore_ascii_case(&etag) {
                    return Err(SwiftError::Corrupt {
                        object: path,
                        expected: etag,
                        actual,
                    });
                }
                return Ok(data);
            }
            a.read_all().await
        })
        .await
    }

    /// Downloads `range` of an object. Like `read(2)`, a range reaching past the end
    /// returns the bytes that exist; a non-empty range starting at or past the end is
    /// [`SwiftError::RangeNotSatisfiable`]. An empty range returns no bytes without a
    /// request (HTTP cannot express it).
    pub async fn get_range(&self, container: &str, name: &str, range: Range<u64>) -> Result<Bytes> {
        check_object(container, name)?;
        if range.start > range.end {
            return Err(SwiftError::Config(format!(
                "inverted range {}..{} for {container}/{name}",
                range.start, range.end
            )));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let call = Call::new("get_range", Method::GET, Some(container), Some(name))
            .header(http::header::RANGE, range_header(&range)?);
        let range = &range;
        self.execute(call, move |a| async move {
            match a.status.as_u16() {
                206 => {
                    if let Some(start) = a.header("content-range").and_then(content_range_start) {
                        if start != range.start {
                            let url = a.url.clone();
                            a.drain().await;
                            return Err(SwiftError::Http {
                                status: 206,
                                method: "GET".into(),
                                url,
                                body_snippet: format!(
                                    "Content-Range starts at {start}, asked for {}",
                                    range.start
                                ),
                            });
                        }
                    }
                    a.read_all().await
                }
                200 => {
                    // The server ignored the Range header: cut the range out ourselves.
                    let (c, o) = (a.container.clone(), a.object.clone());
                    let all = a.read_all().await?;
                    let len = all.len() as u64;
                    if range.start >= len {
                        return Err(range_error(c, o, range, Some(len)));
                    }
                    Ok(all.slice(range.start as usize..range.end.min(len) as usize))
                }
                416 => {
                    let len = a.header("content-range").and_then(content_range_len);
                    let (c, o) = (a.container.clone(), a.object.clone());
                    a.drain().await;
                    Err(range_error(c, o, range, len))
                }
                _ => Err(a.into_error().await),
            }
        })
        .await
    }

    /// Streams an object (or a range of it, same rules as [`SwiftClient::get_range`]).
    /// Opening the stream is retried; an error in the middle of the stream is returned as
    /// a stream item (the caller knows how far it got and can ask for the rest). The
    /// stream holds one in-flight permit until it ends or is dropped.
    pub async fn get_stream(
        &self,
        container: &str,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream> {
        check_object(container, name)?;
        let mut call = Call::new("get_stream", Method::GET, Some(container), Some(name));
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(SwiftError::Config(format!(
                    "inverted range {}..{} for {container}/{name}",
                    r.start, r.end
                )));
            }
            if r.is_empty() {
                return Ok(Box::pin(futures::stream::empty()));
            }
            call = call.header(http::header::RANGE, range_header(r)?);
        }
        let range = &range;
        self.execute(call, move |a| async move {
            match (a.status.as_u16(), range) {
                (200, None) | (206, Some(_)) => Ok(a.into_stream()),
                (200, Some(r)) => {
                    // Range ignored by the server: skip and truncate ourselves.
                    let (start, end) = (r.start, r.end);
                    let mut pos = 0u64;
                    let s = a.into_stream().filter_map(move |item| {
                        let out = match item {
                            Err(e) => Some(Err(e)),
                            Ok(b) => {
                                let (lo, hi) = (pos, pos + b.len() as u64);
                                pos = hi;
                                let (s, e) = (start.max(lo), end.min(hi));
                                (s < e).then(|| Ok(b.slice((s - lo) as usize..(e - lo) as usize)))
                            }
                        };
                        futures::future::ready(out)
                    });
                    Ok(Box::pin(s) as ObjectStream)
                }
                (416, Some(r)) => {
                    let len = a.header("content-range").and_then(content_range_len);
                    let (c, o) = (a.container.clone(), a.object.clone());
                    a.drain().await;
                    Err(range_error(c, o, r, len))
                }
                _ => Err(a.into_error().await),
            }
        })
        .await
    }

    /// Object metadata; [`SwiftError::NotFound`] when absent.
    pub async fn head_object(&self, container: &str, name: &str) -> Result<ObjectMeta> {
        check_object(container, name)?;
        let call = Call::new("head_object", Method::HEAD, Some(container), Some(name));
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            let len = a.content_length().ok_or_else(|| SwiftError::Http {
                status: a.status.as_u16(),
                method: "HEAD".into(),
                url: a.url.clone(),
                body_snippet: "no Content-Length in HEAD response".into(),
            })?;
            let meta = ObjectMeta {
                len,
                etag: a.etag(),
                last_modified: a.header("last-modified").map(str::to_string),
                is_slo: a
                    .header("x-static-large-object")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                crc32: a.header(CRC_HEADER).map(str::to_ascii_lowercase),
            };
            a.drain().await;
            Ok(meta)
        })
        .await
    }

    /// Deletes an object; [`SwiftError::NotFound`] when absent.
    pub async fn delete_object(&self, container: &str, name: &str) -> Result<()> {
        check_object(container, name)?;
        let call = Call::new("delete_object", Method::DELETE, Some(container), Some(name));
        self.execute(call, |a| async move {
            if !a.status.is_success() {
                return Err(a.into_error().await);
            }
            a.drain().await;
            Ok(())
        })
        .await
    }
}

/// `data` cut into 256 KiB pieces (no copies), the frames of a streamed upload.
fn pieces(data: &Bytes) -> impl Iterator<Item = Bytes> + Send + 'static {
    const PIECE: usize = 256 << 10;
    let data = data.clone();
    (0..data.len().div_ceil(PIECE))
        .map(move |i| data.slice(i * PIECE..((i + 1) * PIECE).min(data.len())))
}

/// Wraps a body stream so that, once it ends, `slot` holds the md5 hex of what it yielded.
/// With a known `length` the hash is also finished when that many bytes have passed:
/// hyper stops polling a body once it has sent `Content-Length` bytes, so the stream's
/// end may never be seen.
fn hashing(
    stream: ByteStream,
    slot: Arc<Mutex<Option<String>>>,
    length: Option<u64>,
) -> ByteStream {
    *slot.lock() = None;
    Box::pin(futures::stream::unfold(
        (stream, Some(Md5::new()), slot, 0u64),
        move |(mut s, mut h, slot, mut seen)| async move {
            match s.next().await {
                Some(Ok(b)) => {
                    seen += b.len() as u64;
                    if let Some(hh) = h.as_mut() {
                        hh.update(&b);
                        if Some(seen) == length {
                            if let Some(hh) = h.take() {
                                *slot.lock() = Some(hex::encode(hh.finalize()));
                            }
                        }
                    }
                    Some((Ok(b), (s, h, slot, seen)))
                }
                Some(Err(e)) => Some((Err(e), (s, None, slot, seen))),
                None => {
                    if let Some(hh) = h.take() {
                        *slot.lock() = Some(hex::encode(hh.finalize()));
                    }
                    None
                }
            }
        },
    ))
}

fn range_header(r: &Range<u64>) -> Result<HeaderValue> {
    hv(&format!("bytes={}-{}", r.start, r.end - 1))
}

fn range_error(
    container: Option<String>,
    object: Option<String>,
    r: &Range<u64>,
    len: Option<u64>,
) -> SwiftError {
    SwiftError::RangeNotSatisfiable {
        container: container.unwrap_or_default(),
        object: object.unwrap_or_default(),
        start: r.start,
        end: r.end,
        len,
    }
}

/// `bytes 10-20/100` → 10
fn content_range_start(v: &str) -> Option<u64> {
    v.strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `bytes */100` or `bytes 10-20/100` → 100
fn content_range_len(v: &str) -> Option<u64> {
    v.rsplit('/').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses() {
        assert_eq!(
            one_line("<html>\n  <h1>Oops</h1>\r\n</html>", 100),
            "<html> <h1>Oops</h1> </html>"
        );
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ééé", 4), "éé…");
    }

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 10-20/100"), Some(10));
        assert_eq!(content_range_len("bytes */100"), Some(100));
        assert_eq!(content_range_len("bytes 0-0/*"), None);
    }

    #[test]
    fn config_validation() {
        let mut c = SwiftConfig::new(AuthConfig::TempAuth {
            url: "https://h/auth/v1.0".into(),
            user: "u".into(),
            key: "k".into(),
        });
        assert!(
            matches!(SwiftClient::new(c.clone()), Err(SwiftError::Config(m)) if m.contains("https"))
        );
        c.auth = AuthConfig::TempAuth {
            url: "http://h/auth/v1.0".into(),
            user: "u".into(),
            key: "k".into(),
        };
        assert!(SwiftClient::new(c.clone()).is_ok());
        c.max_in_flight = 0;
        assert!(SwiftClient::new(c).is_err());
    }

    #[tokio::test]
    async fn md5_offload_matches_inline() {
        let big = Bytes::from(vec![1u8; MD5_OFFLOAD + 3]);
        assert_eq!(md5_hex(&big).await, hex::encode(Md5::digest(&big)));
        assert_eq!(
            md5_hex(&Bytes::new()).await,
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
