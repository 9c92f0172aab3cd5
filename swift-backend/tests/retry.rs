//! The retry loop, backpressure and error mapping against a scripted fake HTTP server
//! (v1 auth included), for the answers a healthy local Swift never gives: 5xx, 429/498
//! with `Retry-After`, a server that hangs, a wrong ETag on a GET. No services needed.
//! Run: `cargo test -p ringfs-swift --test retry`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use ringfs_swift::{AuthConfig, SwiftClient, SwiftConfig, SwiftError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Respond(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Never answer.
    Hang,
}

fn reply(status: u16) -> Reply {
    Reply::Respond(status, vec![], vec![])
}

type Script = Arc<dyn Fn(&Req, usize) -> Reply + Send + Sync>;

/// A fake Swift: answers v1 auth itself and hands every other request (with the number of
/// non-auth requests seen before it) to `script`.
struct Fake {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
    auths: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    token_expires: Arc<Mutex<u64>>,
}

impl Fake {
    async fn start(script: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            requests: Default::default(),
            auths: Default::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            token_expires: Arc::new(Mutex::new(3600)),
        };
        let script: Script = Arc::new(script);
        let ctx = (
            fake.addr,
            fake.requests.clone(),
            fake.auths.clone(),
            fake.in_flight.clone(),
            fake.max_in_flight.clone(),
            fake.token_expires.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, script, ctx).await;
                });
            }
        });
        fake
    }

    fn client(&self, tweak: impl FnOnce(&mut SwiftConfig)) -> SwiftClient {
        let mut cfg = SwiftConfig::new(AuthConfig::TempAuth {
            url: format!("http://{}/auth/v1.0", self.addr),
            user: "fake:user".into(),
            key: "fake-key".into(),
        });
        cfg.retries = 3;
        cfg.retry_base = Duration::from_millis(5);
        cfg.retry_max = Duration::from_millis(50);
        tweak(&mut cfg);
        SwiftClient::new(cfg).unwrap()
    }

    fn count(&self) -> usize {
        self.requests.lock().len()
    }
}

type Ctx = (
    std::net::SocketAddr,
    Arc<Mutex<Vec<Req>>>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    Arc<Mutex<u64>>,
);

async fn serve(mut sock: TcpStream, script: Script, ctx: Ctx) -> std::io::Result<()> {
    let (addr, requests, auths, in_flight, max_in_flight, token_expires) = ctx;
    let mut buf = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 8192];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 65536];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end + 4..head_end + 4 + len].to_vec();
        buf.drain(..head_end + 4 + len);
        let req = Req {
            method,
            path,
            headers,
            body,
        };

        let reply = if req.path == "/auth/v1.0" {
            auths.fetch_add(1, Ordering::SeqCst);
            let expires = *token_expires.lock();
            Reply::Respond(
                200,
                vec![
                    (
                        "X-Auth-Token",
                        format!("tk{}", auths.load(Ordering::SeqCst)),
                    ),
                    ("X-Storage-Url", format!("http://{addr}/v1/AUTH_fake")),
                    ("X-Auth-Token-Expires", expires.to_string()),
                ],
                vec![],
            )
        } else {
            let n = {
                let mut r = requests.lock();
                r.push(req.clone());
                r.len() - 1
            };
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max_in_flight.fetch_max(now, Ordering::SeqCst);
            let r = script(&req, n);
            // Let concurrent requests overlap so the in-flight count means something.
            tokio::time::sleep(Duration::from_millis(20)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        };
        match reply {
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Reply::Respond(status, headers, body) => {
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                if req.method != "HEAD" {
                    bytes.extend_from_slice(&body);
                }
                sock.write_all(&bytes).await?;
            }
        }
    }
}

fn md5(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

fn created(body: &[u8]) -> Reply {
    Reply::Respond(201, vec![("Etag", md5(body))], vec![])
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let fake = Fake::start(|req, n| match n {
        0 => reply(503),
        1 => reply(500),
        _ => created(&req.body),
    })
    .await;
    let c = fake.client(|_| {});
    let info = c
        .put_object("c", "o", Bytes::from_static(b"data"), true)
        .await
        .unwrap();
    assert_eq!(info.etag, md5(b"data"));
    assert_eq!(fake.count(), 3);
    // Every attempt carried the whole body, its md5 and an explicit length.
    for r in fake.requests.lock().iter() {
        assert_eq!(r.body, b"data");
        assert_eq!(r.header("etag"), Some(md5(b"data").as_str()));
        assert_eq!(r.header("content-length"), Some("4"));
        assert_eq!(r.path, "/v1/AUTH_fake/c/o");
    }
}

#[tokio::test]
async fn gives_up_after_retries() {
    let fake = Fake::start(|_, _| {
        Reply::Respond(503, vec![], b"<html>Service\nUnavailable</html>".to_vec())
    })
    .await;
    let c = fake.client(|_| {});
    let e = c.get_object("c", "o").await.unwrap_err();
    assert!(
        matches!(&e, SwiftError::Http { status: 503, body_snippet, .. } if body_snippet == "<html>Service Unavailable</html>"),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert!(!e.to_string().contains('\n'));
    assert_eq!(fake.count(), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn honours_retry_after_capped_at_retry_max() {
    let fake = Fake::start(|_, n| {
        if n == 0 {
            Reply::Respond(429, vec![("Retry-After", "1".into())], vec![])
        } else {
            reply(204)
        }
    })
    .await;
    let c = fake.client(|c| c.retry_max = Duration::from_secs(5));
    let t = Instant::now();
    c.delete_object("c", "o").await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());

    // A huge Retry-After is capped at retry_max.
    let fake = Fake::start(|_, n| {
        if n == 0 {
            Reply::Respond(503, vec![("Retry-After", "3600".into())], vec![])
        } else {
            reply(204)
        }
    })
    .await;
    let c = fake.client(|c| c.retry_max = Duration::from_millis(100));
    let t = Instant::now();
    c.delete_object("c", "o").await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn throttled_after_retries() {
    let fake = Fake::start(|_, _| reply(498)).await;
    let c = fake.client(|c| c.retries = 2);
    match c.head_object("c", "o").await {
        Err(SwiftError::Throttled {
            status: 498,
            attempts: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.count(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for (status, check) in [
        (400u16, "Http" as &str),
        (403, "Forbidden"),
        (404, "NotFound"),
        (409, "Http"),
        (411, "Http"),
        (422, "Corrupt"),
    ] {
        let fake = Fake::start(move |_, _| reply(status)).await;
        let c = fake.client(|_| {});
        let e = c
            .put_object("c", "o", Bytes::from_static(b"x"), true)
            .await
            .unwrap_err();
        let dbg = format!("{e:?}");
        assert!(dbg.starts_with(check), "{status}: {dbg}");
        assert!(!e.is_retryable(), "{status}");
        assert_eq!(fake.count(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn reauthenticates_once_on_401() {
    // 401 once: re-auth and the request succeeds.
    let fake = Fake::start(|_, n| if n == 0 { reply(401) } else { reply(204) }).await;
    let c = fake.client(|_| {});
    c.delete_object("c", "o").await.unwrap();
    assert_eq!(fake.auths.load(Ordering::SeqCst), 2);
    let reqs = fake.requests.lock().clone();
    assert_eq!(reqs[0].header("x-auth-token"), Some("tk1"));
    assert_eq!(reqs[1].header("x-auth-token"), Some("tk2"));

    // 401 always: one re-auth, then Unauthorized.
    let fake = Fake::start(|_, _| reply(401)).await;
    let c = fake.client(|_| {});
    let e = c.delete_object("c", "o").await.unwrap_err();
    assert!(matches!(e, SwiftError::Unauthorized { .. }), "{e:?}");
    assert_eq!(fake.count(), 2);
    assert_eq!(fake.auths.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn proactive_refresh_before_expiry() {
    let fake = Fake::start(|_, _| reply(204)).await;
    *fake.token_expires.lock() = 2; // margin = min(max(0.2 s, 60 s), 1 s) = 1 s
    let c = fake.client(|_| {});
    c.delete_object("c", "o").await.unwrap();
    assert_eq!(c.auth_requests(), 1);
    c.delete_object("c", "o").await.unwrap();
    assert_eq!(c.auth_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.delete_object("c", "o").await.unwrap();
    assert_eq!(
        c.auth_requests(),
        2,
        "refreshed in the last half of the lifetime"
    );
}

#[tokio::test]
async fn hanging_server_times_out() {
    let fake = Fake::start(|_, _| Reply::Hang).await;
    let c = fake.client(|c| {
        c.request_timeout = Duration::from_millis(200);
        c.retries = 1;
    });
    let t = Instant::now();
    let e = c.get_object("c", "o").await.unwrap_err();
    assert!(matches!(e, SwiftError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("/v1/AUTH_fake/c/o"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn streamed_put_is_retried_only_with_replay() {
    let fake = Fake::start(|req, n| {
        if n == 0 {
            reply(503)
        } else {
            created(&req.body)
        }
    })
    .await;
    let c = fake.client(|_| {});
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
    let e = c
        .put_object_stream("c", "o", stream, Some(3))
        .await
        .unwrap_err();
    assert!(matches!(e, SwiftError::Http { status: 503, .. }), "{e:?}");
    assert_eq!(fake.count(), 1, "a consumed stream is not replayed");

    let fake = Fake::start(|req, n| {
        if n == 0 {
            reply(503)
        } else {
            created(&req.body)
        }
    })
    .await;
    let c = fake.client(|_| {});
    let info = c
        .put_object_stream_with_replay(
            "c",
            "o",
            || futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]),
            Some(3),
        )
        .await
        .unwrap();
    assert_eq!(info.etag, md5(b"abc"));
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn wrong_etag_on_get_and_put_is_corrupt() {
    let fake = Fake::start(|req, _| {
        if req.method == "GET" {
            Reply::Respond(200, vec![("Etag", md5(b"other"))], b"payload".to_vec())
        } else {
            Reply::Respond(201, vec![("Etag", md5(b"other"))], vec![])
        }
    })
    .await;
    let c = fake.client(|_| {});
    let e = c.get_object("c", "o").await.unwrap_err();
    assert!(matches!(e, SwiftError::Corrupt { .. }), "{e:?}");
    let e = c
        .put_object("c", "o", Bytes::from_static(b"payload"), true)
        .await
        .unwrap_err();
    assert!(matches!(e, SwiftError::Corrupt { .. }), "{e:?}");
    // Without verification the returned ETag is just reported.
    let info = c
        .put_object("c", "o", Bytes::from_static(b"payload"), false)
        .await
        .unwrap();
    assert_eq!(info.etag, md5(b"other"));
}

/// A body whose CRC-32 differs from the one its uploader stored is `Corrupt`, whatever
/// the ETag says; a matching CRC passes without an md5 check.
#[tokio::test]
async fn get_checks_the_stored_crc() {
    let crc = format!("{:08x}", crc32fast::hash(b"payload"));
    let fake = Fake::start(move |req, _| {
        let stored = if req.path.ends_with("/bad") {
            "deadbeef".to_string()
        } else {
            crc.clone()
        };
        Reply::Respond(
            200,
            vec![
                ("Etag", md5(b"not the body")),
                ("X-Object-Meta-Ringfs-Crc32", stored),
            ],
            b"payload".to_vec(),
        )
    })
    .await;
    let c = fake.client(|_| {});
    let e = c.get_object("c", "bad").await.unwrap_err();
    assert!(matches!(e, SwiftError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("crc32 deadbeef"), "{e}");
    assert_eq!(&c.get_object("c", "good").await.unwrap()[..], b"payload");
}

/// Bodies of 1 MiB and more are hashed while streaming, so their check is the ETag Swift
/// returns: a mismatch is still `Corrupt`, and a match passes with the whole body sent.
#[tokio::test]
async fn large_put_is_checked_against_the_returned_etag() {
    let big: Vec<u8> = (0..(3 << 20) + 17).map(|i: u32| (i % 251) as u8).collect();
    let good = md5(&big);
    let fake = Fake::start(move |req, n| {
        if n == 0 {
            Reply::Respond(201, vec![("Etag", md5(b"other"))], vec![])
        } else {
            created(&req.body)
        }
    })
    .await;
    let c = fake.client(|c| c.retries = 0);
    let e = c
        .put_object("c", "o", Bytes::from(big.clone()), true)
        .await
        .unwrap_err();
    assert!(matches!(e, SwiftError::Corrupt { .. }), "{e:?}");
    let info = c
        .put_object("c", "o", Bytes::from(big.clone()), true)
        .await
        .unwrap();
    assert_eq!(info.etag, good);
    let reqs = fake.requests.lock();
    assert_eq!(reqs.len(), 2);
    for r in reqs.iter() {
        assert_eq!(r.body, big, "the whole body arrives");
        assert_eq!(
            r.header("content-length"),
            Some(big.len().to_string().as_str())
        );
    }
}

#[tokio::test]
async fn in_flight_requests_are_bounded() {
    let fake = Fake::start(|_, _| reply(204)).await;
    let c = fake.client(|c| c.max_in_flight = 3);
    let all = futures::future::join_all((0..24).map(|i| {
        let c = c.clone();
        async move { c.delete_object("c", &format!("o{i}")).await }
    }))
    .await;
    assert!(all.iter().all(|r| r.is_ok()));
    let max = fake.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, 3, "in flight: bounded by the semaphore, and reached");
}

#[tokio::test]
async fn bulk_delete_is_chunked_and_reported() {
    let fake = Fake::start(|req, _| {
        let lines = req.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        let json = format!(
            " \n{{\"Number Deleted\": {lines}, \"Number Not Found\": 0, \"Errors\": [], \"Response Status\": \"200 OK\", \"Response Body\": \"\"}}"
        );
        Reply::Respond(200, vec![("Content-Type", "application/json".into())], json.into_bytes())
    })
    .await;
    let c = fake.client(|_| {});
    let names: Vec<String> = (0..10_001).map(|i| format!("dir/o {i}%")).collect();
    let report = c.bulk_delete("my c", &names).await.unwrap();
    assert_eq!(report.deleted, 10_001);
    let reqs = fake.requests.lock().clone();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/AUTH_fake?bulk-delete");
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    let first = String::from_utf8(reqs[0].body.clone()).unwrap();
    assert_eq!(first.lines().count(), 10_000);
    assert_eq!(first.lines().next(), Some("/my%20c/dir/o%200%25"));
    assert_eq!(
        String::from_utf8(reqs[1].body.clone()).unwrap(),
        "/my%20c/dir/o%2010000%25\n"
    );
}

#[tokio::test]
async fn bulk_delete_failures() {
    // Per-object errors are reported, not raised.
    let fake = Fake::start(|_, _| {
        Reply::Respond(
            200,
            vec![],
            br#"{"Number Deleted": 1, "Number Not Found": 2, "Errors": [["/c/x", "409 Conflict"]], "Response Status": "400 Bad Request", "Response Body": ""}"#.to_vec(),
        )
    })
    .await;
    let c = fake.client(|_| {});
    let r = c.bulk_delete("c", &["a", "b", "x", "y"]).await.unwrap();
    assert_eq!((r.deleted, r.not_found), (1, 2));
    assert_eq!(
        r.errors,
        vec![("/c/x".to_string(), "409 Conflict".to_string())]
    );

    // A middleware-level 5xx inside a 200 is retried.
    let fake = Fake::start(|_, n| {
        let status = if n == 0 { "502 Bad Gateway" } else { "200 OK" };
        Reply::Respond(
            200,
            vec![],
            format!(r#"{{"Number Deleted": 1, "Number Not Found": 0, "Errors": [], "Response Status": "{status}", "Response Body": ""}}"#).into_bytes(),
        )
    })
    .await;
    let c = fake.client(|_| {});
    assert_eq!(c.bulk_delete("c", &["a"]).await.unwrap().deleted, 1);
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn auth_server_errors() {
    // Auth itself refused: Auth error naming the user and URL, no retry.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            h2.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let mut cfg = SwiftConfig::new(AuthConfig::TempAuth {
        url: format!("http://{addr}/auth/v1.0"),
        user: "acct:someone".into(),
        key: "k".into(),
    });
    cfg.retry_base = Duration::from_millis(1);
    let c = SwiftClient::new(cfg).unwrap();
    let e = c.authenticate().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Swift auth failed for user acct:someone at URL http://{addr}/auth/v1.0: 401 Unauthorized")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
