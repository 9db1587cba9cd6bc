//! The bare forwarder: the least a telephony hook can do. Per request it reads the body, takes
//! the phone number and code out of Okta's JSON, makes one POST to Twilio's `Messages.json`
//! with the form fields switchboard's Twilio adapter sends (`To`, `From`, `Body`, Basic auth),
//! and answers a fixed `SUCCESSFUL`. No auth, no screening, no ledger, no routing, no failover,
//! no metrics, no logs: whatever switchboard spends beyond this is the router's overhead.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

/// The sender id switchboard's config gives the Twilio provider in the harness.
pub const FROM: &str = "+15005550006";

/// The answer Okta requires, fixed.
const ANSWER: &str = r#"{"commands":[{"type":"com.okta.telephony.action","value":[{"status":"SUCCESSFUL","provider":"forwarder","transactionId":"forwarded"}]}]}"#;

/// Where the forwarder sends.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The emulator's base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// Twilio's `AccountSid`.
    pub account_sid: String,
    /// Twilio's auth token.
    pub auth_token: String,
    /// The upstream call's timeout (switchboard's adapter has `timeout_ms`).
    pub timeout: Duration,
}

struct Forwarder {
    client: reqwest::Client,
    messages_url: String,
    upstream: Upstream,
}

/// The forwarder's routes: `POST /okta/telephony`.
pub fn router(upstream: Upstream) -> anyhow::Result<Router> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(upstream.timeout)
        .pool_max_idle_per_host(usize::MAX)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let messages_url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        upstream.base_url.trim_end_matches('/'),
        upstream.account_sid
    );
    let forwarder = Arc::new(Forwarder { client, messages_url, upstream });
    Ok(Router::new().route("/okta/telephony", axum::routing::post(forward)).with_state(forwarder))
}

/// Serves the forwarder on `listener` until the process ends.
pub async fn serve(listener: TcpListener, upstream: Upstream) -> anyhow::Result<()> {
    axum::serve(listener, router(upstream)?).await?;
    Ok(())
}

async fn forward(State(forwarder): State<Arc<Forwarder>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let profile = &request["data"]["messageProfile"];
    let (Some(phone), Some(code)) = (profile["phoneNumber"].as_str(), profile["otpCode"].as_str())
    else {
        return (StatusCode::BAD_REQUEST, "no phoneNumber or otpCode").into_response();
    };
    let text = format!("Your code is {code}");
    let form = [("To", phone), ("From", FROM), ("Body", text.as_str())];
    let sent = forwarder
        .client
        .post(&forwarder.messages_url)
        .basic_auth(&forwarder.upstream.account_sid, Some(&forwarder.upstream.auth_token))
        .form(&form)
        .send()
        .await;
    // Read the provider's answer to the end, as an adapter does, then answer Okta the same
    // whatever it said: the forwarder has no failover to try.
    if let Ok(response) = sent {
        let _ = response.bytes().await;
    }
    ([(axum::http::header::CONTENT_TYPE, "application/json")], ANSWER).into_response()
}

#[cfg(test)]
mod tests {
    use switchboard_core::Channel;
    use switchboard_server::okta::OktaRequest;
    use switchboard_sim::twilio::{TwilioAccount, TwilioEmulator};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_forwarder_sends_one_message_per_request() {
        let sid = "AC33333333333333333333333333333333";
        let twilio =
            TwilioEmulator::start(TwilioAccount::new(sid, "forwarder-token")).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Upstream {
            base_url: twilio.base_url(),
            account_sid: sid.to_owned(),
            auth_token: "forwarder-token".to_owned(),
            timeout: Duration::from_secs(5),
        };
        tokio::spawn(serve(listener, upstream));
        let body = OktaRequest::new(Channel::Sms, "+14155550123", "123456").to_string();
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("http://{addr}/okta/telephony"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("SUCCESSFUL"));
        let received = twilio.received();
        assert_eq!(received.len(), 1);
        assert!(received[0].is_authenticated);
        assert_eq!(received[0].to.as_deref(), Some("+14155550123"));
        assert_eq!(received[0].from.as_deref(), Some(FROM));
        assert_eq!(received[0].body.as_deref(), Some("Your code is 123456"));
    }
}
