//! Hostile input gets a fast, specific refusal and costs nothing: every case asserts its status
//! and that no provider was called.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    AppOptions, SECRET, TestApp, action, okta_request, spawn_app, spawn_app_with, within,
};

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
    // Okta's error shape, like every other refusal.
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["errorCauses"][0]["reason"], "INVALID_REQUEST", "{answer}");
    assert!(answer["error"]["errorSummary"].as_str().unwrap().contains("larger than"));
    assert_no_sends(&app);
}

/// Writes a request head for `body` and the first `split` bytes of it; returns the stream and
/// the rest of the body.
async fn start_request(
    app: &TestApp,
    body: &str,
    split: usize,
) -> (tokio::net::TcpStream, Vec<u8>) {
    let address = app.hook_url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /okta/telephony HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..split]).await.unwrap();
    (stream, body.as_bytes()[split..].to_vec())
}

/// Reads one HTTP response (headers and a Content-Length body) from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned)
                })
                .and_then(|l| l.trim().parse::<usize>().ok());
            if n == 0 || length.is_some_and(|length| body.len() >= length) {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_takes_half_the_deadline_is_refused_at_that_point_with_408() {
    let app = spawn_app().await;
    let body = okta_request("evt-split", "+14155550100", "482915", "SMS").to_string();
    let first_byte = tokio::time::Instant::now();
    let (mut stream, rest) = start_request(&app, &body, 40).await;
    // The rest would come 1.5 s later; the server does not wait that long.
    let writer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        let _ = stream.write_all(&rest).await;
        stream
    });
    let mut stream = writer.await.unwrap();
    let response = within(30, read_response(&mut stream)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"errorSummary\":\"request body did not arrive in time\""),
        "{response}"
    );
    assert!(tokio::time::Instant::now() - first_byte < std::time::Duration::from_millis(2_500));
    assert_no_sends(&app);
}

#[tokio::test(start_paused = true)]
async fn a_body_dribbled_a_byte_at_a_time_cannot_hold_the_connection() {
    let app = spawn_app().await;
    let body = okta_request("evt-dribble", "+14155550100", "482915", "SMS").to_string();
    let first_byte = tokio::time::Instant::now();
    let (stream, rest) = start_request(&app, &body, 1).await;
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 100 ms: never idle long enough for an inactivity timer.
    let dribble = tokio::spawn(async move {
        for byte in rest {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = Vec::new();
    let _ = within(30, reader.read_to_end(&mut buffer)).await;
    let cut_off = tokio::time::Instant::now() - first_byte;
    dribble.abort();
    let text = String::from_utf8_lossy(&buffer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(cut_off < std::time::Duration::from_millis(2_500), "held for {cut_off:?}");
    assert_no_sends(&app);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_the_first_byte_not_the_last() {
    // The primary hangs past the deadline, so only the deadline ends the wait.
    let app =
        spawn_app_with(AppOptions { primary_timeout_ms: 3_000, ..AppOptions::default() }).await;
    app.primary
        .set_faults(switchboard_sim::faults::Faults::always(switchboard_sim::faults::Fault::Hang));
    app.backup
        .set_faults(switchboard_sim::faults::Faults::always(switchboard_sim::faults::Fault::Hang));
    let body = okta_request("evt-first-byte", "+14155550100", "482915", "SMS").to_string();
    let first_byte = tokio::time::Instant::now();
    let (mut stream, rest) = start_request(&app, &body, 40).await;
    // The body completes 1 s after the first byte, inside its half of the deadline.
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    stream.write_all(&rest).await.unwrap();
    let response = within(30, read_response(&mut stream)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("outcome=pending"), "{response}");
    let answered = tokio::time::Instant::now() - first_byte;
    // deadline_ms = 2500 from the first byte (not 1 s + 2.5 s from the last), published 100 ms
    // early so it is on the wire by then.
    assert!(answered >= std::time::Duration::from_millis(2_400), "{answered:?}");
    assert!(answered < std::time::Duration::from_millis(2_500), "{answered:?}");
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

#[tokio::test]
async fn a_refusal_names_the_field_and_never_echoes_a_code_or_number() {
    let app = spawn_app().await;
    let good = okta_request("evt-echo", "+14155550100", "482915", "SMS");
    let mut code_as_number = good.clone();
    code_as_number["data"]["messageProfile"]["otpCode"] = 482_915.into();
    let mut phone_as_number = good.clone();
    phone_as_number["data"]["messageProfile"]["phoneNumber"] = 14_155_550_100_u64.into();
    let mut profile_as_string = good.clone();
    profile_as_string["data"]["messageProfile"] = "+14155550100 482915".into();
    let cases = [
        (code_as_number.to_string(), "data.messageProfile.otpCode"),
        (phone_as_number.to_string(), "data.messageProfile.phoneNumber"),
        (profile_as_string.to_string(), "data.messageProfile"),
        (format!("{good} {{}}"), ""),
    ];
    for (body, location) in cases {
        let response = post_raw(&app, "application/json", body).await;
        assert_eq!(response.status(), 400, "{location}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("482915") && !text.contains("4155550100"), "{text}");
        if !location.is_empty() {
            assert!(text.contains(&format!("\"location\":\"{location}\"")), "{text}");
        }
    }
    assert_no_sends(&app);
}
