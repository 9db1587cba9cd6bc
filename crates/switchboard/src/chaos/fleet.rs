//! The emulated providers of a chaos run: two Twilio accounts and a Sinch plan, each served on
//! its own loopback port, which it keeps when it stops listening (a refused connection) and
//! starts again.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use switchboard_sim::sinch::{SinchAccount, SinchEmulator};
use switchboard_sim::twilio::{TwilioAccount, TwilioEmulator};
use switchboard_sim::{Fault, Faults};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::schedule::Condition;

/// Connections waiting to be accepted, per emulator: the harness sends hundreds a second.
const LISTEN_BACKLOG: u32 = 1024;

/// A provider's accept latency when healthy: realistic API answers.
const HEALTHY_LATENCY: Duration = Duration::from_millis(50);
const HEALTHY_JITTER: Duration = Duration::from_millis(60);
/// When slow: beyond the adapters' one-second timeout.
const SLOW_LATENCY: Duration = Duration::from_millis(1_400);
const SLOW_JITTER: Duration = Duration::from_millis(600);
/// `Retry-After` when rate limited.
const RETRY_AFTER_S: u64 = 2;

/// One send an emulator received.
#[derive(Clone, Debug)]
pub(super) struct ReceivedSend {
    /// Which provider (index into the fleet).
    pub(super) provider: usize,
    /// The passcode found in the text, if any (the text itself is not kept).
    pub(super) code: Option<String>,
    /// When the emulator read it.
    pub(super) received_at: SystemTime,
}

enum Api {
    Twilio(TwilioEmulator),
    Sinch(SinchEmulator),
}

/// One emulated provider.
pub(super) struct Member {
    /// The provider id in the server's configuration.
    pub(super) id: String,
    api: Api,
    addr: SocketAddr,
    serving: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Every provider of the run, in route order.
pub(super) struct Fleet {
    /// The providers.
    pub(super) members: Vec<Member>,
}

impl Fleet {
    /// Starts the three emulators, seeded from `seed`.
    pub(super) async fn start(seed: u64) -> anyhow::Result<Fleet> {
        let twilio = |n: u8, token: &str| {
            let account =
                TwilioAccount::new(format!("AC{:032}", n), format!("chaos-{token}-token"));
            Api::Twilio(TwilioEmulator::with_seed(account, seed.wrapping_add(u64::from(n))))
        };
        let sinch = SinchAccount::new("chaosplan", "chaos-c-token", "chaos-app", "Y2hhb3M=");
        let apis = [
            ("twilio-a", twilio(1, "a")),
            ("twilio-b", twilio(2, "b")),
            ("sinch-c", Api::Sinch(SinchEmulator::with_seed(sinch, seed.wrapping_add(3)))),
        ];
        let mut members = Vec::new();
        for (id, api) in apis {
            let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            let addr = listener.local_addr()?;
            let mut member = Member { id: id.to_owned(), api, addr, serving: None };
            member.serve(listener);
            members.push(member);
        }
        Ok(Fleet { members })
    }

    /// The server's `[providers.*]` tables for this fleet, with `timeout_ms` each.
    #[must_use]
    pub(super) fn provider_config(&self, timeout_ms: u64) -> String {
        let mut text = String::new();
        for member in &self.members {
            let url = format!("http://{}", member.addr);
            let table = match &member.api {
                Api::Twilio(emulator) => {
                    let account = emulator.account();
                    format!(
                        "kind = \"twilio\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\n\
                         from = \"+15005550006\"\nbase_url = \"{url}\"\n",
                        account.account_sid, account.auth_token
                    )
                }
                Api::Sinch(emulator) => {
                    let account = emulator.account();
                    format!(
                        "kind = \"sinch\"\nservice_plan_id = \"{}\"\napi_token = \"{}\"\n\
                         from = \"+46701234567\"\nsms_base_url = \"{url}\"\n\
                         voice_base_url = \"{url}\"\n",
                        account.service_plan_id, account.api_token
                    )
                }
            };
            text.push_str(&format!(
                "[providers.{}]\n{table}timeout_ms = {timeout_ms}\n\n",
                member.id
            ));
        }
        text
    }

    /// The provider ids, in route order.
    #[must_use]
    pub(super) fn ids(&self) -> Vec<String> {
        self.members.iter().map(|member| member.id.clone()).collect()
    }

    /// Every send received since the last call.
    #[must_use]
    pub(super) fn take_received(&self) -> Vec<ReceivedSend> {
        let mut sends = Vec::new();
        for (provider, member) in self.members.iter().enumerate() {
            match &member.api {
                Api::Twilio(emulator) => {
                    sends.extend(emulator.take_received().into_iter().map(|send| ReceivedSend {
                        provider,
                        code: send.body.as_deref().and_then(find_code),
                        received_at: send.received_at,
                    }));
                }
                Api::Sinch(emulator) => {
                    sends.extend(emulator.take_received().into_iter().map(|send| ReceivedSend {
                        provider,
                        code: send.text.as_deref().and_then(find_code),
                        received_at: send.received_at,
                    }));
                }
            }
        }
        sends
    }

    /// Stops every emulator.
    pub(super) async fn stop(&mut self) {
        for member in &mut self.members {
            member.stop().await;
        }
    }
}

impl Member {
    /// Puts `condition` in force; `seed` seeds the latency jitter of this phase.
    pub(super) async fn apply(&mut self, condition: Condition, seed: u64) -> anyhow::Result<()> {
        if condition == Condition::Refused {
            self.stop().await;
            return Ok(());
        }
        let is_twilio = matches!(self.api, Api::Twilio(_));
        let faults = match condition {
            Condition::Healthy | Condition::Refused => {
                Faults::none().with_latency(HEALTHY_LATENCY, HEALTHY_JITTER)
            }
            Condition::Slow => Faults::none().with_latency(SLOW_LATENCY, SLOW_JITTER),
            Condition::Hang => Faults::always(Fault::Hang),
            Condition::Reset => Faults::always(Fault::Reset),
            Condition::ServerError => {
                Faults::always(Fault::Status { status: 503, code: is_twilio.then_some(20503) })
                    .with_latency(HEALTHY_LATENCY, HEALTHY_JITTER)
            }
            Condition::RateLimited => {
                Faults::always(Fault::RateLimit { retry_after_s: RETRY_AFTER_S })
                    .with_latency(HEALTHY_LATENCY, HEALTHY_JITTER)
            }
            // Twilio's "Authenticate" (20003); Sinch's 401 has no code of its own.
            Condition::AuthFailure => {
                Faults::always(Fault::Status { status: 401, code: is_twilio.then_some(20003) })
                    .with_latency(HEALTHY_LATENCY, HEALTHY_JITTER)
            }
        }
        .with_seed(seed);
        match &self.api {
            Api::Twilio(emulator) => emulator.set_faults(faults),
            Api::Sinch(emulator) => emulator.set_faults(faults),
        }
        // Listening again only now: the first connection must meet the new faults.
        if self.serving.is_none() {
            let listener = bind(self.addr)
                .with_context(|| format!("{}: listening again on {}", self.id, self.addr))?;
            self.serve(listener);
        }
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A sent value and a dropped sender both mean "stop".
            match stopped.await {
                Ok(()) | Err(_) => {}
            }
        };
        let task = match &self.api {
            Api::Twilio(emulator) => tokio::spawn(emulator.clone().serve(listener, shutdown)),
            Api::Sinch(emulator) => tokio::spawn(emulator.clone().serve(listener, shutdown)),
        };
        self.serving = Some((stop, task));
    }

    /// Stops listening and drops every open connection (in-flight requests included).
    async fn stop(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            drop(stop);
            if let Err(error) = task.await {
                tracing::warn!(%error, provider = %self.id, "emulator task failed");
            }
        }
    }
}

/// Binds with `SO_REUSEADDR`, so a stopped emulator gets its port back although connections it
/// closed linger in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket.bind(addr).with_context(|| format!("binding {addr}"))?;
    socket.listen(LISTEN_BACKLOG).with_context(|| format!("listening on {addr}"))
}

/// The first run of 4 to 10 digits in a message text: the passcode the harness put there.
fn find_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| (4..=10).contains(&run.len()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::find_code;

    #[test]
    fn finds_the_code_in_a_text() {
        assert_eq!(find_code("Your code is 042917").as_deref(), Some("042917"));
        assert_eq!(find_code("Code 12: 98765, valid 5 min").as_deref(), Some("98765"));
        assert_eq!(find_code("no code"), None);
    }
}
