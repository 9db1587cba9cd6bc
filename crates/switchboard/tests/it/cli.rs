//! The binary as a new user meets it: `check-config` exit codes and messages, and `serve` with a
//! config pointed at a Twilio emulator running in another process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use switchboard_core::Purpose;
use switchboard_server::okta::{ActionStatus, OktaAnswer, OktaRequest};
use time::macros::datetime;

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn check_config(path: &Path) -> Output {
    Command::new(BINARY)
        .arg("check-config")
        .arg(path)
        .env("OKTA_HOOK_SECRET", "an-okta-secret-of-some-length")
        .env("TWILIO_AUTH_TOKEN", "token")
        .env("TWILIO_BACKUP_AUTH_TOKEN", "token")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("GATEWAY_TOKEN", "token")
        .env("SWITCHBOARD_PHONE_HASH_KEY", "key")
        .env("SWITCHBOARD_ADMIN_TOKEN", "an-admin-token-of-some-length")
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for file in ["config/demo.toml", "config/example.toml"] {
        let output = check_config(&repo_file(file));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{file}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains(": ok ("), "{stdout}");
    }
}

#[test]
fn check_config_names_the_offending_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(repo_file("config/demo.toml")).unwrap();
    for (broken, key) in [
        (demo.replace("deadline_ms = 2500", "deadline_ms = 9000"), "okta.deadline_ms"),
        (
            demo.replace(
                "providers = [\"twilio-primary\", \"twilio-backup\"]",
                "providers = [\"twilio-primary\", \"nexmo\"]",
            ),
            "routes[0].providers[1]",
        ),
        (demo.replace("timeout_ms = 800", "timeout_ms = \"fast\""), "providers.twilio-"),
        (
            demo.replace(
                "secrets = [\"demo-okta-hook-secret\"]",
                "secrets = [\"${UNSET_SECRET_FOR_TEST}\"]",
            ),
            "okta.auth.secrets[0]: environment variable UNSET_SECRET_FOR_TEST is not set",
        ),
    ] {
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, broken).unwrap();
        let output = check_config(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{key}: exit status must be non-zero");
        assert!(stderr.contains(key), "expected `{key}` in: {stderr}");
    }
    let output = check_config(&dir.path().join("missing.toml"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's stderr until a line contains `marker`, returning that line.
fn wait_for_line(child: &mut Child, marker: &str) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let found = lines
        .by_ref()
        .map(|line| line.unwrap())
        .find(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("the process exited without printing `{marker}`"));
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    found
}

#[tokio::test]
async fn serve_delivers_oktas_sample_through_an_emulator_in_another_process() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let mut emulator = Command::new(BINARY)
        .args(["emulate", "twilio", "--listen", "127.0.0.1:0", "--account-sid"])
        .arg("AC0123456789abcdef0123456789abcdef")
        .args(["--auth-token", "the-twilio-token"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_line(&mut emulator, "twilio emulator on ");
    let emulator = Running(emulator);
    let emulator_url =
        line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[okta]
path = "/okta/telephony"
deadline_ms = 2500
report = "always_success"
[okta.auth]
header = "Authorization"
secrets = ["${{OKTA_HOOK_SECRET}}"]
[providers.twilio-us]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "${{TWILIO_AUTH_TOKEN}}"
from = "+15005550006"
base_url = "{emulator_url}"
timeout_ms = 1200
[[routes]]
countries = ["US", "CA"]
providers = ["twilio-us"]
"#
        ),
    )
    .unwrap();
    let mut server = Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(&config)
        .env("OKTA_HOOK_SECRET", "Basic c3dpdGNoYm9hcmQ6aHVudGVyMg==")
        .env("TWILIO_AUTH_TOKEN", "the-twilio-token")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_line(&mut server, "switchboard serving");
    let _server = Running(server);
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    let hook_url = format!("http://{}/okta/telephony", started["listen"].as_str().unwrap());
    let admin_url = format!("http://{}", started["admin_listen"].as_str().unwrap());

    let sample = OktaRequest::sms("+14155550100", "11111")
        .event_id("uS5871kJThSsU8qlA1LTcg")
        .purpose(Purpose::Enrollment)
        .template("(HOOK)Your code is 11111")
        .expires(datetime!(2099-01-28 21:48:34.321 UTC))
        .to_json();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let forged = client
        .post(&hook_url)
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .json(&sample)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let response = client
        .post(&hook_url)
        .header("Authorization", "Basic c3dpdGNoYm9hcmQ6aHVudGVyMg==")
        .json(&sample)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    // Reads the envelope as Okta does: one command of type `com.okta.telephony.action`, one value.
    let value = OktaAnswer::from_json(&answer).unwrap_or_else(|error| panic!("{error}: {answer}"));
    assert_eq!(value.status, ActionStatus::Successful);
    assert_eq!(value.provider, "twilio-us");

    let journal: serde_json::Value = client
        .get(format!("{emulator_url}/__sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sends = journal.as_array().expect("journal is a list");
    assert_eq!(sends.len(), 1, "exactly one send, none for the forged request: {journal}");
    assert_eq!(sends[0]["kind"], "message");
    assert_eq!(sends[0]["is_authenticated"], true);
    assert_eq!(sends[0]["to"], "+14155550100");
    assert_eq!(sends[0]["from"], "+15005550006");
    assert_eq!(sends[0]["body"], "(HOOK)Your code is 11111");
    assert_eq!(value.transaction_id.len(), 34);

    let metrics =
        client.get(format!("{admin_url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_provider_attempts_total{provider="twilio-us",channel="sms",outcome="accepted"} 1"#), "{metrics}");
    assert!(!metrics.contains("11111"));
    drop(emulator);
}

#[test]
fn explain_shows_the_rule_and_every_candidate_without_the_number() {
    let output = Command::new(BINARY)
        .args(["explain", "--config"])
        .arg(repo_file("config/demo.toml"))
        .args(["+447400123456", "--channel", "voice"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("country GB"), "{stdout}");
    assert!(stdout.contains("rule         everywhere (matched)"), "{stdout}");
    assert!(stdout.contains("chosen       1. twilio-primary"), "{stdout}");
    assert!(stdout.contains("then         2. twilio-backup"), "{stdout}");
    assert!(!stdout.contains("7400123456"), "the number itself is never printed: {stdout}");

    let bad = Command::new(BINARY)
        .args(["explain", "--config"])
        .arg(repo_file("config/demo.toml"))
        .args(["not-a-number"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("number: not a phone number"));
}
