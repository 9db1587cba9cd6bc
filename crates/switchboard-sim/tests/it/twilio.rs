//! The Twilio emulator over real loopback sockets, driven by a plain HTTP client.

use crate::support;

use serde_json::Value;
use support::Receiver;
use switchboard_sim::twilio::{RunningEmulator, SendKind, TwilioAccount, TwilioEmulator};
use switchboard_sim::{Fault, Faults};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token";

async fn start() -> RunningEmulator {
    TwilioEmulator::start(TwilioAccount::new(SID, TOKEN)).await.unwrap()
}

fn messages_url(twilio: &RunningEmulator) -> String {
    format!("{}/2010-04-01/Accounts/{SID}/Messages.json", twilio.base_url())
}

fn calls_url(twilio: &RunningEmulator) -> String {
    format!("{}/2010-04-01/Accounts/{SID}/Calls.json", twilio.base_url())
}

async fn post(url: &str, token: &str, form: &[(&str, &str)]) -> (u16, Value) {
    support::exchange_json(reqwest::Client::new().post(url).basic_auth(SID, Some(token)).form(form))
        .await
}

fn sms(to: &str) -> Vec<(&str, &str)> {
    vec![("To", to), ("From", "+15005550006"), ("Body", "Your code is 123456")]
}

#[tokio::test]
async fn creates_a_message_shaped_like_twilios() {
    let twilio = start().await;
    let (status, body) = post(&messages_url(&twilio), TOKEN, &sms("+14155550100")).await;
    assert_eq!(status, 201);
    let sid = body["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["to"], "+14155550100");
    assert_eq!(body["from"], "+15005550006");
    assert_eq!(body["body"], "Your code is 123456");
    assert_eq!(body["num_segments"], "1");
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(body["error_code"], Value::Null);
    assert_eq!(body["uri"], format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"));
    let date = body["date_created"].as_str().unwrap();
    assert!(date.ends_with("+0000") && date.contains(", "), "{date}");

    let received = twilio.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].kind, SendKind::Message);
    assert!(received[0].is_authenticated);
    assert_eq!(received[0].to.as_deref(), Some("+14155550100"));
    assert_eq!(received[0].body.as_deref(), Some("Your code is 123456"));
}

#[tokio::test]
async fn creates_a_call_with_inline_twiml() {
    let twilio = start().await;
    let twiml = "<Response><Say>1, 2, 3</Say></Response>";
    let form = [("To", "+14155550100"), ("From", "+15005550006"), ("Twiml", twiml)];
    let (status, body) = post(&calls_url(&twilio), TOKEN, &form).await;
    assert_eq!(status, 201);
    assert!(body["sid"].as_str().unwrap().starts_with("CA"));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["direction"], "outbound-api");
    assert_eq!(twilio.received()[0].twiml.as_deref(), Some(twiml));

    let both =
        [("To", "+14155550100"), ("From", "+15005550006"), ("Twiml", twiml), ("Url", "https://x")];
    assert_eq!(post(&calls_url(&twilio), TOKEN, &both).await.1["code"], 21205);
}

#[tokio::test]
async fn refuses_bad_credentials_and_foreign_accounts() {
    let twilio = start().await;
    let (status, body) = post(&messages_url(&twilio), "wrong", &sms("+14155550100")).await;
    assert_eq!((status, body["code"].as_u64()), (401, Some(20003)));
    assert_eq!(body["more_info"], "https://www.twilio.com/docs/errors/20003");
    assert_eq!(body["status"], 401);

    let anonymous = reqwest::Client::new().post(messages_url(&twilio)).form(&sms("+14155550100"));
    assert_eq!(anonymous.send().await.unwrap().status(), 401);

    let other =
        format!("{}/2010-04-01/Accounts/AC{}/Messages.json", twilio.base_url(), "f".repeat(32));
    let (status, body) = post(&other, TOKEN, &sms("+14155550100")).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(20404)));

    let received = twilio.received();
    assert_eq!(received.len(), 3, "refused sends are recorded too");
    assert!(!received[0].is_authenticated && !received[1].is_authenticated);
}

#[tokio::test]
async fn enforces_required_parameters() {
    let twilio = start().await;
    let cases: [(&[(&str, &str)], u64); 4] = [
        (&[("From", "+15005550006"), ("Body", "x")], 21604),
        (&[("To", "+14155550100"), ("Body", "x")], 21603),
        (&[("To", "+14155550100"), ("From", "+15005550006")], 21602),
        (&[("To", "4155550100"), ("From", "+15005550006"), ("Body", "x")], 21211),
    ];
    for (form, code) in cases {
        let (status, body) = post(&messages_url(&twilio), TOKEN, form).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(code)), "{form:?}");
    }
    let service = [
        ("To", "+14155550100"),
        ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ("Body", "x"),
    ];
    let (status, body) = post(&messages_url(&twilio), TOKEN, &service).await;
    assert_eq!((status, body["status"].as_str()), (201, Some("accepted")));
}

#[tokio::test]
async fn magic_numbers_give_twilios_errors() {
    let twilio = start().await;
    for (to, code) in [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
    ] {
        let (status, body) = post(&messages_url(&twilio), TOKEN, &sms(to)).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(code)), "{to}");
    }
    for (from, code) in [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611)]
    {
        let form = [("To", "+15005550001"), ("From", from), ("Body", "x")];
        let (_, body) = post(&messages_url(&twilio), TOKEN, &form).await;
        assert_eq!(body["code"].as_u64(), Some(code), "the sender's error wins for {from}");
    }
    for (to, code) in [
        ("+15005550001", 21217),
        ("+15005550002", 21214),
        ("+15005550003", 21215),
        ("+15005550004", 21216),
    ] {
        let form = [("To", to), ("From", "+15005550006"), ("Twiml", "<Response/>")];
        let (_, body) = post(&calls_url(&twilio), TOKEN, &form).await;
        assert_eq!(body["code"].as_u64(), Some(code), "call to {to}");
    }
}

#[tokio::test]
async fn serves_the_account_resource_for_probes() {
    let twilio = start().await;
    let url = format!("{}/2010-04-01/Accounts/{SID}.json", twilio.base_url());
    let client = reqwest::Client::new();
    let response = client.get(&url).basic_auth(SID, Some(TOKEN)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["sid"].as_str(), body["status"].as_str()), (Some(SID), Some("active")));
    assert!(body.get("auth_token").is_none());
    let response = client.get(&url).basic_auth(SID, Some("wrong")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(twilio.received().is_empty(), "a probe is not a send");
}

#[tokio::test]
async fn injects_error_answers_and_rate_limits() {
    let twilio = start().await;
    twilio.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));
    let (status, body) = post(&messages_url(&twilio), TOKEN, &sms("+14155550100")).await;
    assert_eq!((status, body["code"].as_u64()), (503, Some(20503)));

    twilio.set_faults(Faults::always(Fault::Status { status: 502, code: None }));
    let response = reqwest::Client::new()
        .post(messages_url(&twilio))
        .basic_auth(SID, Some(TOKEN))
        .form(&sms("+14155550100"));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().starts_with("<html>"));

    twilio.set_faults(Faults::always(Fault::RateLimit { retry_after_s: 7 }));
    let response = reqwest::Client::new()
        .post(messages_url(&twilio))
        .basic_auth(SID, Some(TOKEN))
        .form(&sms("+14155550100"));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 20429);
    assert_eq!(twilio.received().len(), 3, "faulted sends are recorded");
}

#[tokio::test]
async fn hang_never_answers_and_reset_breaks_the_connection() {
    let twilio = start().await;
    twilio.set_faults(Faults::always(Fault::Hang));
    support::assert_hang_times_out(|client| {
        client.post(messages_url(&twilio)).form(&sms("+14155550100"))
    })
    .await;

    twilio.set_faults(Faults::always(Fault::Reset));
    let client = reqwest::Client::new();
    let error =
        client.post(messages_url(&twilio)).form(&sms("+14155550100")).send().await.unwrap_err();
    assert!(!error.is_timeout() && !error.is_connect(), "{error:?}");
    assert_eq!(twilio.received().len(), 2, "both requests were read before the fault");

    twilio.set_faults(Faults::none());
    let response = client
        .post(messages_url(&twilio))
        .basic_auth(SID, Some(TOKEN))
        .form(&sms("+14155550100"))
        .send()
        .await;
    assert_eq!(response.unwrap().status(), 201, "the emulator keeps serving after a reset");
}

#[tokio::test]
async fn faults_and_requests_are_controllable_over_http() {
    let twilio = start().await;
    let client = reqwest::Client::new();
    let faults_url = format!("{}/__sim/faults", twilio.base_url());
    let put = client
        .put(&faults_url)
        .json(&serde_json::json!({"error_rate": 1.0, "error": {"kind": "rate_limit", "retry_after_s": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(twilio.faults(), Faults::always(Fault::RateLimit { retry_after_s: 3 }));
    let current: Value = client.get(&faults_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["error"]["retry_after_s"], 3);
    let invalid =
        client.put(&faults_url).json(&serde_json::json!({"error_rate": 2.0})).send().await.unwrap();
    assert_eq!(invalid.status(), 400);

    post(&messages_url(&twilio), TOKEN, &sms("+14155550100")).await;
    let requests_url = format!("{}/__sim/requests", twilio.base_url());
    let listed: Value = client.get(&requests_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["kind"], "message");
    assert_eq!(listed[0]["to"], "+14155550100");
    assert_eq!(client.delete(&requests_url).send().await.unwrap().status(), 204);
    assert!(twilio.received().is_empty());
}

#[tokio::test]
async fn a_seed_replays_the_same_fault_sequence() {
    let twilio = start().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        twilio.set_faults(
            Faults::sometimes(0.5, Fault::Status { status: 500, code: Some(20500) }).with_seed(42),
        );
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(post(&messages_url(&twilio), TOKEN, &sms("+14155550100")).await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&500) && runs[0].contains(&201), "{:?}", runs[0]);
}

#[tokio::test]
async fn serves_on_a_given_listener_until_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let emulator = TwilioEmulator::new(TwilioAccount::new(SID, TOKEN));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(emulator.clone().serve(listener, async {
        stopped.await.unwrap();
    }));
    let url = format!("http://{addr}/2010-04-01/Accounts/{SID}/Messages.json");
    assert_eq!(post(&url, TOKEN, &sms("+14155550100")).await.0, 201);
    assert_eq!(emulator.received().len(), 1);
    stop.send(()).unwrap();
    server.await.unwrap();
    let after = reqwest::Client::new().post(&url).form(&sms("+14155550100")).send().await;
    assert!(after.unwrap_err().is_connect());
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let twilio = start().await;
    let url = messages_url(&twilio);
    twilio.shutdown().await;
    let after = reqwest::Client::new().post(&url).form(&sms("+14155550100")).send().await;
    assert!(after.unwrap_err().is_connect());
}

#[tokio::test]
async fn posts_signed_status_callbacks_after_a_send() {
    use switchboard_sim::Receipts;
    use switchboard_sim::twilio::signature;
    let twilio = start().await;
    let mut receiver = Receiver::start().await;
    let status_callback = format!("{}/cb/status?tenant=1", receiver.base);
    let mut form = sms("+14155550100");
    form.push(("StatusCallback", &status_callback));
    let (_, body) = post(&messages_url(&twilio), TOKEN, &form).await;
    let sid = body["sid"].as_str().unwrap().to_owned();

    let mut statuses = Vec::new();
    for _ in 0..2 {
        let arrival = receiver.next().await;
        let (url, params) = (format!("{}{}", receiver.base, arrival.uri), arrival.form());
        assert_eq!(url, status_callback);
        let signed = arrival.header("x-twilio-signature");
        assert_eq!(signed, signature(TOKEN, &url, &params), "signed with the auth token");
        let field = |name: &str| params.iter().find(|(key, _)| key == name).unwrap().1.clone();
        assert_eq!(field("MessageSid"), sid);
        assert_eq!(field("AccountSid"), SID);
        statuses.push(field("MessageStatus"));
    }
    assert_eq!(statuses, ["sent", "delivered"]);

    // Set over HTTP, as the demo would.
    let receipts_url = format!("{}/__sim/receipts", twilio.base_url());
    let put = reqwest::Client::new()
        .put(&receipts_url)
        .json(&serde_json::json!({"outcome": {"kind": "undelivered", "code": "30007"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(twilio.emulator().receipts(), Receipts::undelivered(30007));
    post(&messages_url(&twilio), TOKEN, &form).await;
    receiver.next().await;
    let params = receiver.next().await.form();
    assert!(params.contains(&("MessageStatus".into(), "undelivered".into())));
    assert!(params.contains(&("ErrorCode".into(), "30007".into())));
    assert_eq!(twilio.callbacks().len(), 3, "recorded once answered: {:?}", twilio.callbacks());

    // A silent emulator sends nothing after this send's 201; the next delivered one proves the
    // silent send's callbacks were not merely late (callbacks of one send are posted in order,
    // and the two sends' tasks both start before their 201s).
    twilio.set_receipts(Receipts::none());
    let (_, silent) = post(&messages_url(&twilio), TOKEN, &form).await;
    twilio.set_receipts(Receipts::delivered());
    let (_, loud) = post(&messages_url(&twilio), TOKEN, &form).await;
    for _ in 0..2 {
        let params = receiver.next().await.form();
        let sid = &params.iter().find(|(key, _)| key == "MessageSid").unwrap().1;
        assert_eq!(sid, loud["sid"].as_str().unwrap());
        assert_ne!(sid, silent["sid"].as_str().unwrap());
    }
}

#[tokio::test]
async fn calls_report_the_events_asked_for() {
    let twilio = start().await;
    let mut receiver = Receiver::start().await;
    let status_callback = format!("{}/status", receiver.base);
    let form = [
        ("To", "+14155550100"),
        ("From", "+15005550006"),
        ("Twiml", "<Response/>"),
        ("StatusCallback", status_callback.as_str()),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
    ];
    post(&calls_url(&twilio), TOKEN, &form).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let params = receiver.next().await.form();
        statuses.push(params.iter().find(|(key, _)| key == "CallStatus").unwrap().1.clone());
    }
    assert_eq!(statuses, ["in-progress", "completed"]);
}
