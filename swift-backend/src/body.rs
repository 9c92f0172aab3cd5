//! Request bodies and the progress-based request timeout.
//!
//! `request_timeout` is enforced as "no progress for this long" rather than as a deadline
//! for the whole exchange: a 5 GiB segment upload or a 10,000-object bulk delete (Swift
//! trickles whitespace to keep that response alive) legitimately takes longer than a minute,
//! while a stalled connection shows no progress at all. Progress is any request body chunk
//! handed to hyper or any response body chunk received. `Bytes` bodies are handed over in
//! 1 MiB slices (zero-copy) so that the progress clock ticks during a large upload too.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures::Stream;
use hyper::body::{Body, Frame, SizeHint};

use crate::error::BoxError;

// tokio's Instant (not std's) so that tests with a paused clock see progress move.

/// A boxed stream of body chunks, as accepted by the streaming PUT.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + 'static>>;

const SLICE: usize = 1 << 20;

/// Last time an attempt made progress, shared between its body, its response reader and
/// the watchdog.
#[derive(Clone)]
pub(crate) struct Progress {
    base: Instant,
    last_nanos: Arc<AtomicU64>,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            base: Instant::now(),
            last_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn bump(&self) {
        let n = self.base.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.last_nanos.fetch_max(n, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed))
    }
}

/// Runs `fut` until it completes or makes no progress for `idle`.
/// Returns `None` on timeout.
pub(crate) async fn with_idle_timeout<F: std::future::Future>(
    fut: F,
    progress: &Progress,
    idle: Duration,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let deadline = progress.last() + idle;
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep_until(deadline) => {
                if progress.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

enum Kind {
    Empty,
    Bytes(Bytes),
    Stream {
        stream: ByteStream,
        len: Option<u64>,
        done: bool,
    },
}

/// The request body type of our hyper client.
pub struct ReqBody {
    kind: Kind,
    progress: Option<Progress>,
}

impl ReqBody {
    pub(crate) fn empty() -> Self {
        ReqBody {
            kind: Kind::Empty,
            progress: None,
        }
    }

    pub(crate) fn bytes(b: Bytes) -> Self {
        ReqBody {
            kind: Kind::Bytes(b),
            progress: None,
        }
    }

    /// A streamed body; with `len` hyper sends `Content-Length` (and fails the request if
    /// the stream yields a different amount), without it `Transfer-Encoding: chunked`.
    pub(crate) fn stream(stream: ByteStream, len: Option<u64>) -> Self {
        ReqBody {
            kind: Kind::Stream {
                stream,
                len,
                done: false,
            },
            progress: None,
        }
    }

    pub(crate) fn with_progress(mut self, p: Progress) -> Self {
        self.progress = Some(p);
        self
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let out = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Bytes(b) if b.is_empty() => Poll::Ready(None),
            Kind::Bytes(b) => {
                let n = b.len().min(SLICE);
                Poll::Ready(Some(Ok(Frame::data(b.split_to(n)))))
            }
            Kind::Stream { done: true, .. } => Poll::Ready(None),
            Kind::Stream { stream, done, .. } => match stream.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => {
                    *done = true;
                    Poll::Ready(Some(Err(e)))
                }
            },
        };
        if let (Poll::Ready(Some(Ok(_))), Some(p)) = (&out, &this.progress) {
            p.bump();
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Bytes(b) => b.is_empty(),
            Kind::Stream { done, len, .. } => *done || *len == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Bytes(b) => SizeHint::with_exact(b.len() as u64),
            Kind::Stream { len: Some(n), .. } => SizeHint::with_exact(*n),
            Kind::Stream { len: None, .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn bytes_body_is_sliced_and_exact() {
        let data = Bytes::from(vec![7u8; SLICE * 2 + 10]);
        let mut body = ReqBody::bytes(data.clone());
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut sizes = Vec::new();
        while let Some(f) = body.frame().await {
            sizes.push(f.unwrap().into_data().unwrap().len());
        }
        assert_eq!(sizes, vec![SLICE, SLICE, 10]);
        assert!(body.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_progress() {
        let p = Progress::new();
        let p2 = p.clone();
        // Makes progress every 40 ms for 400 ms: must not time out with a 100 ms idle limit.
        let busy = async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                p2.bump();
            }
            7
        };
        assert_eq!(
            with_idle_timeout(busy, &p, Duration::from_millis(100)).await,
            Some(7)
        );
        let stuck = tokio::time::sleep(Duration::from_secs(10));
        assert!(
            with_idle_timeout(stuck, &Progress::new(), Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}
