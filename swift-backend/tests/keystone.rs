//! Keystone-only integration tests: endpoint choice from the catalog, the errors a user
//! meets with wrong credentials, project or region, cross-project access, and
//! application credentials. Each test prints a note and passes when the services run
//! tempauth. Run against Keystone:
//! `scripts/services.sh up --auth keystone --dir DIR` then
//! `RINGFS_TEST_CONF=DIR/ringfs.toml cargo test -p ringfs-swift --test keystone`.

mod common;

use std::collections::HashMap;
use std::process::Command;

use bytes::Bytes;
use ringfs_swift::{AuthConfig, SwiftClient, SwiftError};

use common::{conf, TestConf};

/// The test config and `keystone.env`, or `None` (with a note) in tempauth mode.
fn keystone() -> Option<(&'static TestConf, HashMap<String, String>)> {
    let c = conf();
    if !c.is_keystone() {
        eprintln!(
            "note: {} uses {} auth; Keystone-only test skipped",
            c.path.display(),
            c.auth
        );
        return None;
    }
    Some((c, c.keystone_env()))
}

/// `keystone.env` value, accepting both `KEYSTONE_OTHER_USER` and `OTHER_USER` spellings.
fn env_of(env: &HashMap<String, String>, key: &str) -> String {
    env.get(&format!("KEYSTONE_{key}"))
        .or_else(|| env.get(key))
        .cloned()
        .unwrap_or_else(|| panic!("keystone.env has no {key}"))
}

fn keystone_auth(
    conf: &TestConf,
    edit: impl FnOnce(&mut String, &mut String, &mut String, &mut Option<String>, &mut String),
) -> AuthConfig {
    let (mut user, mut password, mut project, mut region, mut interface) = (
        conf.user.clone(),
        conf.key.clone(),
        conf.project.clone(),
        conf.region.clone(),
        conf.interface.clone(),
    );
    edit(
        &mut user,
        &mut password,
        &mut project,
        &mut region,
        &mut interface,
    );
    AuthConfig::Keystone {
        auth_url: conf.auth_url.clone(),
        user,
        password,
        user_domain: conf.user_domain.clone(),
        project,
        project_domain: conf.project_domain.clone(),
        region,
        interface,
        application_credential: None,
    }
}

fn client_with(auth: AuthConfig) -> SwiftClient {
    let mut cfg = common::config();
    cfg.auth = auth;
    SwiftClient::new(cfg).unwrap()
}

#[tokio::test]
async fn catalog_endpoint_by_region_and_interface() {
    let Some((conf, env)) = keystone() else {
        return;
    };
    let project_id = env_of(&env, "RINGFS_PROJECT_ID");
    for (region, interface) in [
        (conf.region.clone(), "public"),
        (conf.region.clone(), "internal"),
        (None, "admin"),
        (None, "public"),
    ] {
        let c = client_with(keystone_auth(conf, |_, _, _, r, i| {
            *r = region.clone();
            *i = interface.to_string();
        }));
        c.authenticate()
            .await
            .unwrap_or_else(|e| panic!("{region:?}/{interface}: {e}"));
        let url = c.storage_url().unwrap();
        assert!(url.ends_with(&format!("/v1/AUTH_{project_id}")), "{url}");
        // And the endpoint works.
        let cont = common::new_container(&c).await;
        c.put_object(&cont, "o", Bytes::from_static(b"k"), true)
            .await
            .unwrap();
        assert_eq!(c.get_object(&cont, "o").await.unwrap(), "k");
    }
}

#[tokio::test]
async fn wrong_password_is_a_clear_error() {
    let Some((conf, _)) = keystone() else { return };
    let c = client_with(keystone_auth(conf, |_, p, _, _, _| *p = "nope".into()));
    let e = c.authenticate().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SwiftError::Auth { .. }), "{e:?}");
    assert!(
        msg.contains(&conf.user) && msg.contains(&conf.auth_url),
        "{msg}"
    );
    assert!(msg.contains("401"), "{msg}");
    assert!(!msg.contains("nope\""), "{msg}");
    eprintln!("{msg}");
}

#[tokio::test]
async fn unknown_project_is_a_clear_error() {
    let Some((conf, _)) = keystone() else { return };
    let c = client_with(keystone_auth(conf, |_, _, p, _, _| {
        *p = "no-such-project".into()
    }));
    let e = c.authenticate().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SwiftError::Auth { .. }), "{e:?}");
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains("no-such-project"), "{msg}");
    eprintln!("{msg}");
}

#[tokio::test]
async fn region_without_object_store_lists_the_catalog() {
    let Some((conf, _)) = keystone() else { return };
    for (region, interface) in [(Some("Atlantis"), "public"), (None, "bogus")] {
        let c = client_with(keystone_auth(conf, |_, _, _, r, i| {
            *r = region.map(str::to_string);
            *i = interface.to_string();
        }));
        let e = c.authenticate().await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, SwiftError::Auth { .. }), "{e:?}");
        assert!(msg.contains("no object-store endpoint"), "{msg}");
        assert!(msg.contains(interface), "{msg}");
        if let Some(r) = region {
            assert!(msg.contains(r), "{msg}");
        }
        // What the catalog does offer.
        assert!(
            msg.contains("object-store public RegionOne http://"),
            "{msg}"
        );
        assert!(msg.contains("identity"), "{msg}");
        eprintln!("{msg}");
    }
}

#[tokio::test]
async fn token_of_other_project_is_forbidden() {
    let Some((conf, env)) = keystone() else {
        return;
    };
    let owner = common::client();
    let cont = common::new_container(&owner).await;
    owner
        .put_object(&cont, "secret", Bytes::from_static(b"s"), true)
        .await
        .unwrap();
    let ringfs_account = owner.storage_url().unwrap();

    let mut cfg = common::config();
    cfg.auth = keystone_auth(conf, |u, p, pr, _, _| {
        *u = env_of(&env, "OTHER_USER");
        *p = env_of(&env, "OTHER_PASSWORD");
        *pr = env_of(&env, "OTHER_PROJECT");
    });
    cfg.storage_url_override = Some(ringfs_account);
    let other = SwiftClient::new(cfg).unwrap();
    let e = other.get_object(&cont, "secret").await.unwrap_err();
    assert!(matches!(e, SwiftError::Forbidden { .. }), "{e:?}");
    assert!(
        e.to_string().contains("403") && e.to_string().contains(&cont),
        "{e}"
    );
    assert!(!e.is_retryable());
    let e = other
        .put_object(&cont, "intruder", Bytes::from_static(b"x"), true)
        .await
        .unwrap_err();
    assert!(matches!(e, SwiftError::Forbidden { .. }), "{e:?}");
}

/// Runs the `openstack` CLI as the test user; `None` when it is not installed.
fn openstack(conf: &TestConf, args: &[&str]) -> Option<String> {
    let out = Command::new("openstack")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .args([
            "--os-auth-url",
            &conf.auth_url,
            "--os-identity-api-version",
            "3",
            "--os-username",
            &conf.user,
            "--os-password",
            &conf.key,
            "--os-project-name",
            &conf.project,
            "--os-user-domain-name",
            &conf.user_domain,
            "--os-project-domain-name",
            &conf.project_domain,
        ])
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "openstack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn application_credential_auth() {
    let Some((conf, _)) = keystone() else { return };
    let name = common::unique("ringfs-test");
    let Some(json) = openstack(
        conf,
        &["application", "credential", "create", &name, "-f", "json"],
    ) else {
        eprintln!("note: openstack CLI not available; application credential test skipped");
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let secret = v["secret"].as_str().unwrap().to_string();

    let app = |secret: String| keystone_auth_app(conf, id.clone(), secret);
    let c = client_with(app(secret.clone()));
    let cont = common::new_container(&c).await;
    c.put_object(&cont, "via-app-cred", Bytes::from_static(b"ok"), true)
        .await
        .unwrap();
    assert_eq!(c.get_object(&cont, "via-app-cred").await.unwrap(), "ok");
    // Same account as the password user.
    let pw = common::client();
    assert_eq!(pw.get_object(&cont, "via-app-cred").await.unwrap(), "ok");

    let bad = client_with(app("wrong-secret".into()));
    let e = bad.authenticate().await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("application-credential:{id}")),
        "{msg}"
    );
    assert!(
        msg.contains("401") && !msg.contains("wrong-secret"),
        "{msg}"
    );

    openstack(conf, &["application", "credential", "delete", &name]);
}

fn keystone_auth_app(conf: &TestConf, id: String, secret: String) -> AuthConfig {
    AuthConfig::Keystone {
        auth_url: conf.auth_url.clone(),
        user: String::new(),
        password: String::new(),
        user_domain: String::new(),
        project: String::new(),
        project_domain: String::new(),
        region: conf.region.clone(),
        interface: conf.interface.clone(),
        application_credential: Some((id, secret)),
    }
}
