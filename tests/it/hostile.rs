//! Hostile input gets a fast, specific refusal and costs nothing: every case asserts its status
//! and that no provider was called.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{SECRET, TestApp, action, okta_request, spawn_app, within};

fn assert_no_sends(app: &TestApp) {
    let (primary, backup) = app.sends();
    assert!(primary.is_empty() && backup.is_empty(), "a provider was called");
}

async fn post_raw(app: &TestApp, content_type: &str, body: String) -> reqwest::Response {
    app.client
        .post(&app.hook_url)
        .header("Authorization", SECRET)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let mut request = okta_request("evt-big", "+14155550100", "482915", "SMS");
    request["padding"] = "x".repeat(70 * 1024).into();
    let response = post_raw(&app, "application/json", request.to_string()).await;
    assert_eq!(response.status(), 413);
    assert_no_sends(&app);
}

#[tokio::test]
async fn other_content_types_are_refused_with_415() {
    let app = spawn_app().await;
    let body = okta_request("evt-ct", "+14155550100", "482915", "SMS").to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"] {
        assert_eq!(
            post_raw(&app, content_type, body.clone()).await.status(),
            415,
            "{content_type}"
        );
    }
    assert_eq!(post_raw(&app, "Application/JSON; charset=utf-8", body).await.status(), 200);
    assert_eq!(app.primary.received().len(), 1);
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_refused_with_431() {
    let app = spawn_app().await;
    let body = okta_request("evt-headers", "+14155550100", "482915", "SMS").to_string();
    let mut many = app
        .client
        .post(&app.hook_url)
        .header("Authorization", SECRET)
        .header("content-type", "application/json");
    for index in 0..100 {
        many = many.header(format!("x-filler-{index}"), "1");
    }
    assert_eq!(many.body(body.clone()).send().await.unwrap().status(), 431);
    let large = app
        .client
        .post(&app.hook_url)
        .header("Authorization", SECRET)
        .header("content-type", "application/json")
        .header("x-large", "y".repeat(20 * 1024))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 431);
    assert_no_sends(&app);
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_head_is_cut_off() {
    let app = spawn_app().await;
    let address = app.hook_url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // Half a request head, then nothing: the slowloris pattern.
    stream.write_all(b"POST /okta/telephony HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buffer = Vec::new();
    // Paused time jumps to the server's 5 s header-read timer once everything is idle; a server
    // without one would leave the read pending until `within` fails the test at 30 s.
    let closed = within(30, stream.read_to_end(&mut buffer)).await;
    // A reset is as good as a close here: either way the connection is gone.
    let _ = closed;
    let text = String::from_utf8_lossy(&buffer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert_no_sends(&app);
}

#[tokio::test]
async fn deep_json_and_duplicate_keys_are_refused_with_400() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
    let response = post_raw(&app, "application/json", deep).await;
    assert_eq!(response.status(), 400);

    let request = okta_request("evt-dup", "+14155550100", "482915", "SMS").to_string();
    // A second otpCode after the first: which one would a proxy or a log have seen?
    let duplicated = request.replacen(
        "\"otpCode\":\"482915\"",
        "\"otpCode\":\"482915\",\"otpCode\":\"111111\"",
        1,
    );
    assert_ne!(duplicated, request);
    let response = post_raw(&app, "application/json", duplicated).await;
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["error"]["errorSummary"].as_str().unwrap().contains("duplicate field `otpCode`"),
        "{answer}"
    );
    assert_no_sends(&app);
}

#[tokio::test]
async fn numbers_that_never_take_an_otp_are_refused_with_failed() {
    let app = spawn_app().await;
    for (phone, channel, reason) in [
        ("+19002530000", "SMS", "number_type"), // premium rate
        ("+19002530000", "CALL", "number_type"),
        ("+18002530000", "SMS", "number_type"), // toll free cannot take SMS
    ] {
        let (status, answer) = app
            .hook_json(&okta_request(&format!("evt-{phone}-{channel}"), phone, "482915", channel))
            .await;
        assert_eq!(status, 200);
        let value = action(&answer);
        assert_eq!(value["status"], "FAILED", "{phone} {channel}");
        assert!(
            value["transactionMetadata"].as_str().unwrap().contains(&format!("refused={reason}")),
            "{answer}"
        );
    }
    assert_no_sends(&app);
    // A toll-free number can take a call.
    let (_, answer) =
        app.hook_json(&okta_request("evt-tollfree-call", "+18002530000", "482915", "CALL")).await;
    assert_eq!(action(&answer)["status"], "SUCCESSFUL");
    assert_eq!(app.primary.received().len(), 1);
}

#[tokio::test]
async fn an_expired_otp_is_refused_with_failed() {
    let app = spawn_app().await;
    let mut request = okta_request("evt-expired", "+14155550100", "482915", "SMS");
    request["data"]["messageProfile"]["otpExpires"] = "2022-01-28T21:48:34.321Z".into();
    let (_, answer) = app.hook_json(&request).await;
    let value = action(&answer);
    assert_eq!(value["status"], "FAILED");
    assert!(value["transactionMetadata"].as_str().unwrap().contains("refused=otp_expired"));
    assert_no_sends(&app);
}
