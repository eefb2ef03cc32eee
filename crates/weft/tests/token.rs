//! `weft token workload` and `weft token revoke` as users run them: the real `weft`
//! binary against the HTTP API served in this process over an in-memory store, with a
//! token issuer. No root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../../weft-control/tests/support/memory_store.rs"]
mod memory_store;
#[path = "support/tls_api.rs"]
mod tls_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weft_control::api::{self, ApiState, NoProxies};
use weft_control::identity::{Refusal, Tokens};
use weft_tls::token::TokenKey;

use memory_store::MemoryStore;

/// The API with a token issuer for `cluster.local`, on 127.0.0.1.
struct ControlPlane {
    addr: SocketAddr,
    tokens: Arc<Tokens>,
    home: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl ControlPlane {
    async fn start() -> ControlPlane {
        let store = Arc::new(MemoryStore::default());
        let tokens = Arc::new(Tokens::new(
            TokenKey::generate().unwrap(),
            store.clone(),
            "cluster.local",
        ));
        let router = api::router(ApiState {
            store,
            proxies: Arc::new(NoProxies),
            tokens: Some(tokens.clone()),
            admin: None,
            metrics: None,
            stats: None,
            secrets: Some(std::sync::Arc::new(
                weft_control::seal::Keyring::ephemeral().expect("a random key"),
            )),
        });
        let home = tempfile::tempdir().unwrap();
        let api = tls_api::serve(router, home.path()).await;
        tls_api::configure_ca(home.path(), &api.ca_file);
        ControlPlane {
            addr: api.addr,
            tokens,
            home,
        }
    }

    /// Runs `weft ARGS --control-plane <this API>` with an empty HOME.
    async fn weft(&self, args: &[&str]) -> Run {
        let url = format!("https://{}", self.addr);
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .args(["--control-plane", &url])
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("WEFT_CONTROL_PLANE")
            .output()
            .await
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

#[tokio::test]
async fn token_workload_prints_a_token_for_the_identity_and_revoke_refuses_it_afterwards() {
    let cp = ControlPlane::start().await;
    let run = cp
        .weft(&[
            "token",
            "workload",
            "--namespace",
            "shop",
            "--service-account",
            "web",
            "--ttl",
            "2h",
        ])
        .await
        .ok();

    let token = run.stdout.trim();
    assert_eq!(run.stdout.lines().count(), 1, "only the token on stdout");
    let claims = cp
        .tokens
        .authenticate(token, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        (claims.namespace.as_str(), claims.service_account.as_str()),
        ("shop", "web")
    );
    let lifetime = claims.expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(lifetime <= Duration::from_secs(7200), "{lifetime:?}");
    assert!(lifetime > Duration::from_secs(7100), "{lifetime:?}");
    assert!(run.stderr.contains(&claims.id), "{}", run.stderr);
    assert!(
        run.stderr.contains("spiffe://cluster.local/ns/shop/sa/web"),
        "{}",
        run.stderr
    );

    cp.weft(&["token", "revoke", &claims.id]).await.ok();
    let refusal = cp
        .tokens
        .authenticate(token, SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Revoked { .. }), "{refusal}");
}

#[tokio::test]
async fn token_workload_rejects_an_invalid_identity_with_the_reason() {
    let cp = ControlPlane::start().await;
    let run = cp
        .weft(&[
            "token",
            "workload",
            "--namespace",
            "Shop!",
            "--service-account",
            "web",
        ])
        .await;
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("400"), "{}", run.stderr);
}
