//! The wrapper every emulator is: an [`Emulator<A>`] holds what all providers share, and the
//! provider's [`Api`] holds only what is its own.
//!
//! Shared: the fault injector, the journal of received requests (with
//! [`Emulator::wait_for_sends`]), the RNG that ids are drawn from, the `/__sim/*` control routes
//! and the loopback server ([`Running`]). The provider's own: its account, routes, request
//! parsing, response and error bodies, signatures and receipts.
//!
//! Why one generic type and not a wrapper per provider: the nine copies had drifted apart (some
//! lacked `faults`, `clear` or `wait_for_sends`, each running handle forwarded a different subset),
//! so what a test could ask of an emulator depended on the provider. Provider-specific methods
//! are inherent impls on the concrete type (`impl Emulator<Twilio>`), so each provider module
//! still reads as the whole of that provider.
//!
//! Only emulators share this: an adapter in `switchboard-providers` never uses emulator code,
//! or an emulator could not catch the adapter's mistakes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::faults::{FaultInjector, Faults, InjectedAnswer};
use crate::journal::Journal;
use crate::server::{self, Connection, RunningServer};

/// The provider-specific half of an [`Emulator`]: its state, its routes and what it records.
pub trait Api: fmt::Debug + Send + Sync + Sized + 'static {
    /// What the journal keeps of each API request.
    type Received: Serialize + Clone + fmt::Debug + Send + Sync + 'static;

    /// The provider's routes, with any `/__sim/*` routes of its own; the shared control routes
    /// are served beside them.
    fn routes(emulator: &Emulator<Self>) -> Router;

    /// Forgets what the provider recorded beside the journal; [`Emulator::clear`] calls it.
    fn clear(&self) {}
}

/// An [`Api`] that accepts one configured account: every provider but the webhook and Okta.
pub trait AccountApi: Api {
    /// The credentials (and account settings) the emulator accepts.
    type Account;

    /// The provider's state for a new emulator of `account`.
    fn for_account(account: Self::Account) -> Self;

    /// The account the emulator accepts.
    fn account(&self) -> &Self::Account;
}

/// An emulator of one provider: cheap to clone, every clone shares faults and records.
#[derive(Debug)]
pub struct Emulator<A: Api> {
    shared: Arc<Shared<A>>,
}

impl<A: Api> Clone for Emulator<A> {
    fn clone(&self) -> Self {
        Emulator { shared: Arc::clone(&self.shared) }
    }
}

#[derive(Debug)]
struct Shared<A: Api> {
    api: A,
    faults: Arc<FaultInjector>,
    journal: Journal<A::Received>,
    /// Ids (sids, message ids, uuids); separate from the faults' RNG so that successful sends
    /// do not shift the fault sequence. A std mutex: held only to draw one number.
    ids: Mutex<StdRng>,
}

impl<A: Api> Emulator<A> {
    /// An emulator around `api` whose randomness (fault draws, ids) is seeded with `seed`.
    pub(crate) fn from_api(api: A, seed: u64) -> Emulator<A> {
        Emulator {
            shared: Arc::new(Shared {
                api,
                faults: Arc::new(FaultInjector::new(seed)),
                journal: Journal::new(),
                ids: Mutex::new(StdRng::seed_from_u64(seed.wrapping_add(1))),
            }),
        }
    }

    /// Binds `127.0.0.1:0` and serves this emulator on a background task.
    pub async fn spawn(self) -> io::Result<Running<A>> {
        let server = RunningServer::start(self.router()).await?;
        Ok(Running { emulator: self, server })
    }

    /// Serves this emulator on `listener` until `shutdown` completes (for a standalone process).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        server::serve(listener, self.router(), shutdown).await;
    }

    /// The provider's routes and the `/__sim/*` control routes. Served by anything other than
    /// [`Emulator::serve`] or [`Emulator::spawn`], an injected reset degrades to a hang.
    pub fn router(&self) -> Router {
        let control = crate::admin::routes(Arc::clone(&self.shared.faults), self.journal().clone());
        A::routes(self).merge(control)
    }

    /// Replaces the faults in force.
    ///
    /// # Panics
    /// If [`Faults::check`] refuses them.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.faults.set(faults);
    }

    /// The faults in force.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.shared.faults.get()
    }

    /// Every request received so far, oldest first.
    #[must_use]
    pub fn received(&self) -> Vec<A::Received> {
        self.journal().snapshot()
    }

    /// Every request received since the last call, oldest first, and forgets them (atomically):
    /// what a long run drains periodically, since the journal keeps only the newest 10,000.
    #[must_use]
    pub fn take_received(&self) -> Vec<A::Received> {
        self.journal().take()
    }

    /// Forgets the received requests (and, where the provider posts callbacks, those).
    pub fn clear(&self) {
        self.journal().clear();
        self.api().clear();
    }

    /// Completes once `n` requests have been received in all (clearing does not reset the
    /// count): what tests await instead of sleeping.
    pub async fn wait_for_sends(&self, n: usize) {
        self.journal().wait_for_pushed(n).await;
    }

    /// The provider's half.
    pub(crate) fn api(&self) -> &A {
        &self.shared.api
    }

    /// Adds a request to the journal (before auth, validation and faults are applied, so tests
    /// see what the adapter sent even when the emulator refused it) and returns it.
    ///
    /// The one place a request's `received_at` is taken: `build` gets it and puts it in the
    /// record, so every emulator's journal carries it, stamped the same way.
    pub(crate) fn record(&self, build: impl FnOnce(SystemTime) -> A::Received) -> A::Received {
        let received = build(SystemTime::now());
        self.journal().push(received.clone());
        received
    }

    /// Draws and plays this request's faults: the delay, hang or reset happens here; an error
    /// answer comes back for the provider to render in its own format.
    pub(crate) async fn play_faults(&self, connection: Connection) -> Option<InjectedAnswer> {
        let decision = self.shared.faults.draw();
        decision.play(connection.as_ref().map(|axum::Extension(control)| control)).await
    }

    /// The gate every emulator puts in front of an endpoint, in the same order: this request's
    /// faults first (rendered by `injected` in the provider's error format), then
    /// authentication, checked only once the faults have played (`unauthenticated` renders
    /// the provider's refusal).
    pub(crate) async fn gate(
        &self,
        connection: Connection,
        is_authenticated: impl FnOnce() -> bool,
        injected: impl FnOnce(InjectedAnswer) -> axum::response::Response,
        unauthenticated: impl FnOnce() -> axum::response::Response,
    ) -> Result<(), axum::response::Response> {
        if let Some(answer) = self.play_faults(connection).await {
            return Err(injected(answer));
        }
        if !is_authenticated() {
            return Err(unauthenticated());
        }
        Ok(())
    }

    /// 128 random bits for an id.
    pub(crate) fn random_u128(&self) -> u128 {
        self.shared.ids.lock().unwrap_or_else(PoisonError::into_inner).random()
    }

    /// 128 random bits as lower-case hex grouped 8-4-4-4-12, like Plivo's, Infobip's and AWS's
    /// ids (no version bits: the providers do not promise a UUID version).
    pub(crate) fn new_uuid_shaped(&self) -> String {
        hyphenated(&format!("{:032x}", self.random_u128()))
    }

    /// A version 4 UUID, like Vonage's and Sinch's.
    pub(crate) fn new_uuid_v4(&self) -> String {
        let mut bytes = self.random_u128().to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        hyphenated(&hex::encode(bytes))
    }

    fn journal(&self) -> &Journal<A::Received> {
        &self.shared.journal
    }
}

/// 32 hex digits grouped 8-4-4-4-12.
fn hyphenated(hex: &str) -> String {
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

impl<A: AccountApi> Emulator<A> {
    /// An emulator for `account` whose randomness is seeded with 0.
    #[must_use]
    pub fn new(account: A::Account) -> Emulator<A> {
        Self::with_seed(account, 0)
    }

    /// An emulator for `account` whose randomness (fault draws, ids) is seeded with `seed`.
    #[must_use]
    pub fn with_seed(account: A::Account, seed: u64) -> Emulator<A> {
        Self::from_api(A::for_account(account), seed)
    }

    /// Binds `127.0.0.1:0` and serves a new emulator for `account` on a background task.
    pub async fn start(account: A::Account) -> io::Result<Running<A>> {
        Self::new(account).spawn().await
    }

    /// The account this emulator accepts.
    #[must_use]
    pub fn account(&self) -> &A::Account {
        self.api().account()
    }
}

/// An emulator serving on a loopback port; stops on [`Running::shutdown`] or drop.
///
/// Dereferences to the [`Emulator`], so faults, records and the provider's own settings are
/// reached the same way on either.
#[derive(Debug)]
#[must_use = "dropping the handle stops the emulator"]
pub struct Running<A: Api> {
    emulator: Emulator<A>,
    server: RunningServer,
}

impl<A: Api> Deref for Running<A> {
    type Target = Emulator<A>;

    fn deref(&self) -> &Emulator<A> {
        &self.emulator
    }
}

impl<A: Api> Running<A> {
    /// `http://127.0.0.1:PORT`, to use as the adapter's base URL.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The emulator handle (shares faults and records with this server).
    #[must_use]
    pub fn emulator(&self) -> &Emulator<A> {
        &self.emulator
    }

    /// Stops accepting, drops open connections and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
