//! Integration tests against the real local Swift (tempauth or Keystone, whichever
//! `RINGFS_TEST_CONF` / `scripts/services.sh up` provides). Each test uses its own
//! container. Run: `cargo test -p ringfs-swift --test swift`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ringfs_swift::{
    ListEntry, ListOptions, MemoryStore, ObjectStore, SwiftClient, SwiftError, SwiftStore,
};

use common::{client, data, md5, new_container};

#[tokio::test]
async fn round_trips_with_checksums() {
    let c = client();
    let cont = new_container(&c).await;
    for (i, len) in [0usize, 1, 4 << 20, 64 << 20].into_iter().enumerate() {
        let body = data(len, i as u64);
        let name = format!("obj-{len}");
        let info = c
            .put_object(&cont, &name, body.clone(), true)
            .await
            .unwrap();
        assert_eq!(info.etag, md5(&body), "etag of {len} bytes");
        let meta = c.head_object(&cont, &name).await.unwrap();
        assert_eq!(meta.len, len as u64);
        assert_eq!(meta.etag, md5(&body));
        assert!(meta.last_modified.is_some());
        let got = c.get_object(&cont, &name).await.unwrap();
        assert_eq!(got.len(), len);
        assert_eq!(md5(&got), md5(&body), "body of {len} bytes");
    }
    let stats = c.head_container(&cont).await.unwrap();
    assert_eq!(stats.object_count, 4);
    assert_eq!(stats.bytes_used, 1 + (4 << 20) + (64 << 20));
}

#[tokio::test]
async fn range_reads_at_edges() {
    let c = client();
    let cont = new_container(&c).await;
    let body = data(1000, 9);
    c.put_object(&cont, "r", body.clone(), true).await.unwrap();
    let get = |r: std::ops::Range<u64>| c.get_range(&cont, "r", r);
    assert_eq!(get(0..1).await.unwrap(), body.slice(0..1), "first byte");
    assert_eq!(
        get(999..1000).await.unwrap(),
        body.slice(999..1000),
        "last byte"
    );
    assert_eq!(get(100..300).await.unwrap(), body.slice(100..300));
    assert_eq!(
        get(990..5000).await.unwrap(),
        body.slice(990..1000),
        "across the end"
    );
    assert_eq!(get(0..1000).await.unwrap(), body, "exactly all");
    assert!(get(500..500).await.unwrap().is_empty(), "empty range");
    match get(1000..1001).await {
        Err(SwiftError::RangeNotSatisfiable { start, len, .. }) => {
            assert_eq!((start, len), (1000, Some(1000)));
        }
        other => panic!("expected 416, got {other:?}"),
    }
    assert!(matches!(
        get(5000..6000).await,
        Err(SwiftError::RangeNotSatisfiable { .. })
    ));
    let inverted = std::ops::Range { start: 10, end: 5 };
    assert!(matches!(get(inverted).await, Err(SwiftError::Config(_))));
    assert!(c
        .get_range(&cont, "missing", 0..1)
        .await
        .unwrap_err()
        .is_not_found());

    // Streams follow the same rules.
    let s = c.get_stream(&cont, "r", Some(10..20)).await.unwrap();
    let parts: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
    assert_eq!(parts.concat(), body.slice(10..20).to_vec());
    let s = c.get_stream(&cont, "r", None).await.unwrap();
    let parts: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
    assert_eq!(parts.concat(), body.to_vec());
    assert!(matches!(
        c.get_stream(&cont, "r", Some(1000..1010)).await.err(),
        Some(SwiftError::RangeNotSatisfiable { .. })
    ));

    // A zero-length object has no satisfiable non-empty range.
    c.put_object(&cont, "empty", Bytes::new(), true)
        .await
        .unwrap();
    assert!(matches!(
        c.get_range(&cont, "empty", 0..1).await,
        Err(SwiftError::RangeNotSatisfiable { .. })
    ));
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let c = client();
    let cont = new_container(&c).await;
    let e = c.get_object(&cont, "nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains(&cont),
        "{e}"
    );
    assert!(c
        .head_object(&cont, "nope")
        .await
        .unwrap_err()
        .is_not_found());
    assert!(c
        .delete_object(&cont, "nope")
        .await
        .unwrap_err()
        .is_not_found());
    assert!(c
        .head_container("no-such-container-x")
        .await
        .unwrap_err()
        .is_not_found());
    assert!(c
        .list_objects("no-such-container-x", &ListOptions::default())
        .await
        .unwrap_err()
        .is_not_found());
    assert!(c
        .put_object("no-such-container-x", "o", Bytes::from_static(b"x"), true)
        .await
        .unwrap_err()
        .is_not_found());
    // delete then 404
    c.put_object(&cont, "d", Bytes::from_static(b"x"), true)
        .await
        .unwrap();
    c.delete_object(&cont, "d").await.unwrap();
    assert!(c.head_object(&cont, "d").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_naming_user_and_url() {
    let conf = common::conf();
    let mut cfg = common::config();
    cfg.auth = conf.auth_config(Some("definitely-wrong"));
    let c = SwiftClient::new(cfg).unwrap();
    let started = Instant::now();
    let e = c.head_container("whatever").await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SwiftError::Auth { .. }), "{e:?}");
    assert!(msg.contains(&conf.user), "{msg}");
    assert!(msg.contains(&conf.auth_url), "{msg}");
    assert!(msg.contains("401"), "{msg}");
    assert!(!msg.contains("definitely-wrong"), "secret leaked: {msg}");
    assert!(!e.is_retryable());
    // 401 from auth is final: no retries, no backoff.
    assert!(started.elapsed() < Duration::from_secs(3));
    // The waiters of a failed refresh share its error instead of retrying it each.
    let before = c.auth_requests();
    let results = futures::future::join_all((0..20).map(|_| c.head_container("whatever"))).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(SwiftError::Auth { .. }))));
    assert!(
        c.auth_requests() - before < 20,
        "refresh storm: {}",
        c.auth_requests() - before
    );
}

#[tokio::test]
async fn token_expiry_and_refresh() {
    let c = client();
    let cont = new_container(&c).await;
    let n0 = c.auth_requests();
    assert_eq!(n0, 1);
    c.put_object(&cont, "a", Bytes::from_static(b"a"), true)
        .await
        .unwrap();
    assert_eq!(c.auth_requests(), n0, "valid token reused");

    // Expired token: refreshed before the request, once for many concurrent requests.
    c.invalidate_token_for_test();
    let results = futures::future::join_all((0..50).map(|_| c.head_object(&cont, "a"))).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(c.auth_requests(), n0 + 1, "single refresh for 50 waiters");

    // Token Swift does not accept: 401, re-auth once, request repeated.
    c.corrupt_token_for_test();
    assert_eq!(c.get_object(&cont, "a").await.unwrap(), "a");
    assert_eq!(c.auth_requests(), n0 + 2);

    // Same through a fork: the token cache is shared.
    let f = c.fork();
    c.corrupt_token_for_test();
    f.put_object(&cont, "b", Bytes::from_static(b"b"), true)
        .await
        .unwrap();
    assert_eq!(c.auth_requests(), n0 + 3);
    assert_eq!(c.get_object(&cont, "b").await.unwrap(), "b");
    assert_eq!(
        c.auth_requests(),
        n0 + 3,
        "fork's new token used by the parent"
    );
}

/// Every upload stores its CRC-32 as object metadata (small and streamed large bodies).
#[tokio::test]
async fn uploads_store_their_crc() {
    let c = client();
    let cont = new_container(&c).await;
    let big = Bytes::from(
        (0..(2 << 20) + 5)
            .map(|i: u32| (i % 253) as u8)
            .collect::<Vec<_>>(),
    );
    for (name, body) in [("small", Bytes::from_static(b"abc")), ("big", big)] {
        c.put_object(&cont, name, body.clone(), true).await.unwrap();
        let h = c.head_object(&cont, name).await.unwrap();
        let want = format!("{:08x}", crc32fast::hash(&body));
        assert_eq!(h.crc32, Some(want), "{name}");
        assert_eq!(c.get_object(&cont, name).await.unwrap(), body);
    }
}

#[tokio::test]
async fn etag_mismatch_is_corrupt() {
    let c = client();
    let cont = new_container(&c).await;
    let body = Bytes::from_static(b"some block");
    let e = c
        .put_with_md5(
            &cont,
            "x",
            body.clone(),
            Some("0123456789abcdef0123456789abcdef"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, SwiftError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("{cont}/x")), "{e}");
    assert!(!e.is_retryable());
    assert!(
        c.head_object(&cont, "x").await.unwrap_err().is_not_found(),
        "nothing stored"
    );
    // The right md5 goes through.
    c.put_with_md5(&cont, "x", body.clone(), Some(&md5(&body)))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_puts_all_verified() {
    let c = client();
    let cont = new_container(&c).await;
    let n = 256;
    let started = Instant::now();
    let puts = (0..n).map(|i| {
        let c = c.clone();
        let cont = cont.clone();
        async move {
            let body = data(16 << 10, 1000 + i as u64);
            c.put_object(&cont, &format!("p/{i:04}"), body, true).await
        }
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    eprintln!("{n} concurrent PUTs in {:?}", started.elapsed());
    let gets = (0..n).map(|i| {
        let c = c.clone();
        let cont = cont.clone();
        async move { (i, c.get_object(&cont, &format!("p/{i:04}")).await) }
    });
    for (i, r) in futures::future::join_all(gets).await {
        assert_eq!(
            md5(&r.unwrap()),
            md5(&data(16 << 10, 1000 + i as u64)),
            "object {i}"
        );
    }
    assert_eq!(c.list_all(&cont, Some("p/"), None).await.unwrap().len(), n);
}

#[tokio::test]
async fn bulk_delete_thousand_objects() {
    let c = client();
    let cont = new_container(&c).await;
    let names: Vec<String> = (0..1000).map(|i| format!("blk/{i:05} odd%name?")).collect();
    let puts = names
        .iter()
        .map(|n| c.put_object(&cont, n, Bytes::from(n.clone()), true));
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    assert_eq!(c.list_all(&cont, None, None).await.unwrap().len(), 1000);
    let started = Instant::now();
    let report = c.bulk_delete(&cont, &names).await.unwrap();
    eprintln!("bulk delete of 1000 in {:?}", started.elapsed());
    assert_eq!((report.deleted, report.not_found), (1000, 0), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(c.list_all(&cont, None, None).await.unwrap().is_empty());
    // Again: all missing, which is fine.
    let report = c.bulk_delete(&cont, &names[..10]).await.unwrap();
    assert_eq!((report.deleted, report.not_found), (0, 10));
    // Nothing to do: no request.
    let none: [&str; 0] = [];
    assert_eq!(c.bulk_delete(&cont, &none).await.unwrap().deleted, 0);
    c.delete_container(&cont).await.unwrap();
}

/// Slow (Swift's bulk middleware takes minutes for 10,000 deletes on this class of
/// machine); the chunking itself is covered fast in `tests/retry.rs`.
#[tokio::test]
#[ignore = "slow: minutes of Swift-side deletes; run with --ignored"]
async fn bulk_delete_chunks_over_ten_thousand() {
    // 10,001 names of absent objects: two requests, all counted as not found.
    let c = client();
    let cont = new_container(&c).await;
    c.put_object(&cont, "last", Bytes::from_static(b"x"), true)
        .await
        .unwrap();
    let mut names: Vec<String> = (0..10_000).map(|i| format!("absent-{i}")).collect();
    names.push("last".into());
    let started = Instant::now();
    let report = c.bulk_delete(&cont, &names).await.unwrap();
    eprintln!("bulk delete of 10,001 in {:?}", started.elapsed());
    assert_eq!(
        (report.deleted, report.not_found),
        (1, 10_000),
        "{report:?}"
    );
}

#[tokio::test]
async fn listing_pagination_prefix_delimiter() {
    let c = client();
    let cont = new_container(&c).await;
    let names = ["a/1", "a/2", "a/3", "a/sub/4", "a0", "b/1", "b/2", "c"];
    for n in names {
        c.put_object(&cont, n, Bytes::from(n), true).await.unwrap();
    }
    // Pages of 2 over everything.
    let mut opts = ListOptions {
        limit: Some(2),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.list_objects(&cont, &opts).await.unwrap();
        pages += 1;
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| e.name().to_string()));
        match page.next_marker {
            Some(m) => opts.marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, names);
    assert_eq!(pages, 5, "4 full pages and an empty last one");
    if let ListEntry::Object { bytes, etag, .. } = &c
        .list_objects(&cont, &ListOptions::default())
        .await
        .unwrap()
        .entries[0]
    {
        assert_eq!((*bytes, etag.as_str()), (3, md5(b"a/1").as_str()));
    } else {
        panic!("object entry expected");
    }

    // Prefix, paged.
    let mut opts = ListOptions {
        prefix: Some("a/".into()),
        limit: Some(3),
        ..Default::default()
    };
    let p1 = c.list_objects(&cont, &opts).await.unwrap();
    assert_eq!(p1.entries.len(), 3);
    opts.marker = p1.next_marker.clone();
    let p2 = c.list_objects(&cont, &opts).await.unwrap();
    let names2: Vec<_> = p2.entries.iter().map(|e| e.name().to_string()).collect();
    assert_eq!(names2, ["a/sub/4"]);
    assert_eq!(p2.next_marker, None);

    // Delimiter rolls prefixes up; paging one entry at a time crosses subdirs correctly.
    let all = c.list_all(&cont, None, Some('/')).await.unwrap();
    assert_eq!(
        all,
        vec![
            ListEntry::Subdir("a/".into()),
            ListEntry::Object {
                name: "a0".into(),
                bytes: 2,
                etag: md5(b"a0")
            },
            ListEntry::Subdir("b/".into()),
            ListEntry::Object {
                name: "c".into(),
                bytes: 1,
                etag: md5(b"c")
            },
        ]
    );
    let mut opts = ListOptions {
        delimiter: Some('/'),
        limit: Some(1),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = c.list_objects(&cont, &opts).await.unwrap();
        seen.extend(page.entries.iter().map(|e| e.name().to_string()));
        match page.next_marker {
            Some(m) => opts.marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ["a/", "a0", "b/", "c"]);
    // Prefix + delimiter: one level down.
    let sub = c.list_all(&cont, Some("a/"), Some('/')).await.unwrap();
    let sub: Vec<_> = sub.iter().map(|e| e.name().to_string()).collect();
    assert_eq!(sub, ["a/1", "a/2", "a/3", "a/sub/"]);
}

#[tokio::test]
async fn slo_round_trip_with_small_segments() {
    let c = client();
    let cont = new_container(&c).await;
    let body = data(10 * 1024 + 123, 77);
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(1000)
        .map(|ch| Ok(Bytes::copy_from_slice(ch)))
        .collect();
    let info = c
        .put_large(&cont, "big file 100%", futures::stream::iter(chunks), 1024)
        .await
        .unwrap();
    assert!(!info.etag.is_empty());
    let meta = c.head_object(&cont, "big file 100%").await.unwrap();
    assert!(meta.is_slo);
    assert_eq!(meta.len, body.len() as u64);
    assert_eq!(
        md5(&c.get_object(&cont, "big file 100%").await.unwrap()),
        md5(&body)
    );
    // A range across a segment boundary.
    assert_eq!(
        c.get_range(&cont, "big file 100%", 1000..3000)
            .await
            .unwrap(),
        body.slice(1000..3000)
    );
    let segs = c
        .list_all(&cont, Some("big file 100%/segments/"), None)
        .await
        .unwrap();
    assert_eq!(segs.len(), 11);
    // Deleting the manifest with its segments leaves nothing.
    let report = c.delete_slo(&cont, "big file 100%").await.unwrap();
    assert_eq!(report.deleted, 12, "{report:?}");
    assert!(c.list_all(&cont, None, None).await.unwrap().is_empty());

    // Input that fits one segment becomes a plain object.
    let small = data(500, 1);
    c.put_large(
        &cont,
        "small",
        futures::stream::iter([Ok::<_, std::io::Error>(small.clone())]),
        1024,
    )
    .await
    .unwrap();
    assert!(!c.head_object(&cont, "small").await.unwrap().is_slo);
    assert_eq!(c.get_object(&cont, "small").await.unwrap(), small);
}

#[tokio::test]
async fn odd_names_are_encoded() {
    let c = client();
    let cont = format!("{} odd ü%?#", common::unique("test"));
    c.create_container(&cont).await.unwrap();
    let names = [
        "space name",
        "100%",
        "%2F",
        "what?x=1&y=2",
        "hash#tag",
        "plus+sign",
        "ünïcødé/日本語/ø",
        "dir/sub dir/file",
        "semi;colon,comma",
        "quote\"apos'",
        "tilde~dot.under_dash-",
        "back\\slash",
        "a//double",
        "emoji 🦀",
    ];
    for (i, n) in names.iter().enumerate() {
        let body = Bytes::from(format!("{i}:{n}"));
        c.put_object(&cont, n, body.clone(), true)
            .await
            .unwrap_or_else(|e| panic!("put {n:?}: {e}"));
        assert_eq!(c.get_object(&cont, n).await.unwrap(), body, "{n:?}");
        assert_eq!(
            c.head_object(&cont, n).await.unwrap().len,
            body.len() as u64
        );
    }
    let mut listed: Vec<String> = c
        .list_all(&cont, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name().to_string())
        .collect();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    // Prefix with odd characters.
    let p = c.list_all(&cont, Some("ünïcødé/"), None).await.unwrap();
    assert_eq!(p.len(), 1);
    let report = c.bulk_delete(&cont, &names).await.unwrap();
    assert_eq!(report.deleted, names.len() as u64, "{report:?}");
    c.delete_container(&cont).await.unwrap();
}

#[test]
fn works_on_current_thread_runtimes_with_forks() {
    let c = client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cont = rt.block_on(new_container(&c));
    // Two more threads, each with its own current-thread runtime and fork.
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let f = c.fork();
            let cont = cont.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    for i in 0..20 {
                        let name = format!("t{t}/{i}");
                        let body = data(1000 + i, t as u64 * 100 + i as u64);
                        f.put_object(&cont, &name, body.clone(), true)
                            .await
                            .unwrap();
                        assert_eq!(f.get_object(&cont, &name).await.unwrap(), body);
                    }
                });
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    rt.block_on(async {
        assert_eq!(c.list_all(&cont, None, None).await.unwrap().len(), 40);
    });
    assert_eq!(c.auth_requests(), 1, "one token for all forks");
}

#[tokio::test]
async fn connect_error_names_endpoint_quickly() {
    // Real auth, then a storage URL on a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = common::config();
    cfg.storage_url_override = Some(format!("http://127.0.0.1:{port}/v1/AUTH_x"));
    cfg.retries = 3;
    let c = SwiftClient::new(cfg).unwrap();
    let started = Instant::now();
    let e = c.head_object("c", "o").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(e, SwiftError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.is_retryable());
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    eprintln!("connect error after {elapsed:?}: {e}");
}

#[tokio::test]
async fn streamed_puts() {
    let c = client();
    let cont = new_container(&c).await;
    let body = data(300_000, 5);
    let chunks = || {
        futures::stream::iter(
            body.chunks(65_536)
                .map(|ch| Ok::<_, std::io::Error>(Bytes::copy_from_slice(ch)))
                .collect::<Vec<_>>(),
        )
    };
    // Chunked transfer encoding (no length).
    let info = c
        .put_object_stream(&cont, "chunked", chunks(), None)
        .await
        .unwrap();
    assert_eq!(info.etag, md5(&body));
    assert_eq!(c.get_object(&cont, "chunked").await.unwrap(), body);
    // With Content-Length.
    c.put_object_stream(&cont, "sized", chunks(), Some(body.len() as u64))
        .await
        .unwrap();
    assert_eq!(c.get_object(&cont, "sized").await.unwrap(), body);
    // A wrong length fails and stores nothing.
    let e = c
        .put_object_stream(&cont, "short", chunks(), Some(body.len() as u64 + 1))
        .await
        .unwrap_err();
    eprintln!("wrong length: {e}");
    assert!(c
        .head_object(&cont, "short")
        .await
        .unwrap_err()
        .is_not_found());
    // Replayable: survives a 401 (the stream is made again).
    let b2 = body.clone();
    c.corrupt_token_for_test();
    c.put_object_stream_with_replay(
        &cont,
        "replayed",
        move || futures::stream::iter([Ok::<_, std::io::Error>(b2.clone())]),
        Some(body.len() as u64),
    )
    .await
    .unwrap();
    assert_eq!(c.get_object(&cont, "replayed").await.unwrap(), body);
    // A failing input stream surfaces as an error.
    let bad = futures::stream::iter([
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("disk on fire")),
    ]);
    let e = c
        .put_object_stream(&cont, "bad", bad, None)
        .await
        .unwrap_err();
    eprintln!("failing stream: {e}");
    assert!(c
        .head_object(&cont, "bad")
        .await
        .unwrap_err()
        .is_not_found());
}

/// The same semantic checks on the in-memory store and on Swift: a test passing on
/// `MemoryStore` means the same on Swift.
async fn store_conformance(s: &dyn ObjectStore, prefix: &str) {
    let k = |n: &str| format!("{prefix}{n}");
    s.put(&k("b/1"), Bytes::from_static(b"hello"))
        .await
        .unwrap();
    s.put(&k("b/2"), Bytes::new()).await.unwrap();
    s.put(&k("c"), Bytes::from_static(b"x")).await.unwrap();
    s.put(&k("b/1"), Bytes::from_static(b"hello"))
        .await
        .unwrap(); // retry: same bytes
    assert_eq!(s.get(&k("b/1"), None).await.unwrap(), "hello");
    assert_eq!(s.get(&k("b/1"), Some(0..1)).await.unwrap(), "h");
    assert_eq!(s.get(&k("b/1"), Some(4..5)).await.unwrap(), "o");
    assert_eq!(s.get(&k("b/1"), Some(3..100)).await.unwrap(), "lo");
    assert_eq!(s.get(&k("b/1"), Some(2..2)).await.unwrap(), "");
    assert!(matches!(
        s.get(&k("b/1"), Some(5..6)).await,
        Err(SwiftError::RangeNotSatisfiable { .. })
    ));
    assert!(s.get(&k("nope"), None).await.unwrap_err().is_not_found());
    assert_eq!(s.head(&k("b/1")).await.unwrap(), Some(5));
    assert_eq!(s.head(&k("b/2")).await.unwrap(), Some(0));
    assert_eq!(s.head(&k("nope")).await.unwrap(), None);
    assert_eq!(
        s.list(&k("b/")).await.unwrap(),
        vec![(k("b/1"), 5), (k("b/2"), 0)]
    );
    s.delete_many(&[k("b/1"), k("missing")]).await.unwrap();
    assert_eq!(s.head(&k("b/1")).await.unwrap(), None);
    assert_eq!(
        s.list(prefix).await.unwrap(),
        vec![(k("b/2"), 0), (k("c"), 1)]
    );
    s.delete_many(&[]).await.unwrap();
}

#[tokio::test]
async fn object_store_semantics_match_memory_store() {
    store_conformance(&MemoryStore::new(), "").await;
    let c = client();
    let cont = new_container(&c).await;
    let store = SwiftStore::new(c, cont);
    store_conformance(&store, "blocks/").await;
    // And through a fork.
    store_conformance(&store.fork(), "forked/").await;
}
