//! The watcher on tokio's paused clock: its polling advances in virtual time, while the files
//! it watches change on disk (their modification times are set ahead, so that a coarse
//! filesystem clock cannot hide a change).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{Server, Settings};

const INTERVAL: Duration = Duration::from_secs(2);

fn config(deadline_ms: u64) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[okta]
deadline_ms = {deadline_ms}
[okta.auth]
secrets = ["watch-test-secret-0123456789"]

[providers.primary]
kind = "twilio"
account_sid = "AC11111111111111111111111111111111"
auth_token = "primary-token"
from = "+15005550006"
base_url = "http://127.0.0.1:9"

[[routes]]
countries = ["*"]
providers = ["primary"]
"#
    )
}

/// Writes `text` to `path`, dated `ahead` into the future.
fn write(path: &Path, text: &str, ahead: u64) {
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(ahead)).unwrap();
}

/// A server started from a file of its own.
fn server_from_file(name: &str) -> (Server, PathBuf) {
    let path = std::env::temp_dir().join(format!("switchboard-{}-{name}.toml", std::process::id()));
    write(&path, &config(2_500), 0);
    let settings = Settings::load(&path).expect("a valid file");
    (Server::new(settings).with_source(path.clone()), path)
}

#[tokio::test(start_paused = true)]
async fn each_reload_is_reported_and_a_refused_one_is_counted() {
    let (server, path) = server_from_file("reports");
    let watcher = server.watch(INTERVAL);
    let mut reloads = watcher.reloads();
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(*reloads.borrow_and_update(), None, "nothing changed, nothing reloaded");

    write(&path, &config(0), 10);
    reloads.changed().await.unwrap();
    let refused = reloads.borrow_and_update().clone().unwrap();
    let error = refused.result.unwrap_err();
    assert!(error.contains("okta.deadline_ms"), "names the key: {error}");
    assert_eq!(refused.failures, 1);
    assert_eq!(server.shared.runtime().okta.deadline, Duration::from_millis(2_500), "kept");

    write(&path, &config(2_000), 20);
    reloads.changed().await.unwrap();
    let loaded = reloads.borrow_and_update().clone().unwrap();
    assert_eq!(loaded, crate::Reload { result: Ok(()), failures: 1 });
    assert_eq!(server.shared.runtime().okta.deadline, Duration::from_millis(2_000));
    let metrics = server.shared.metrics.render();
    assert!(metrics.contains(r#"switchboard_config_reloads_total{result="refused"} 1"#));
    assert!(metrics.contains(r#"switchboard_config_reloads_total{result="ok"} 1"#));

    watcher.stop().await;
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stopped_watcher_reloads_nothing_more() {
    let (server, path) = server_from_file("stopped");
    let watcher = server.watch(INTERVAL);
    let reloads = watcher.reloads();
    watcher.stop().await;
    write(&path, &config(2_000), 10);
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(*reloads.borrow(), None);
    assert_eq!(server.shared.runtime().okta.deadline, Duration::from_millis(2_500));
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_watcher_ends_when_the_server_stops() {
    let (server, path) = server_from_file("server-stops");
    let watcher = server.watch(INTERVAL);
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::time::sleep(INTERVAL).await;
    assert!(!watcher.is_finished());
    server.clone().run(hook, admin, Duration::from_secs(1), async {}).await.unwrap();
    tokio::time::timeout(INTERVAL, async {
        while !watcher.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the watcher ended with the server");
    std::fs::remove_file(path).unwrap();
}
