//! The set-up every adapter module shares: start the provider's emulator, then build the adapter
//! against its base URL. What differs per provider (account, config, id) stays in the closure.

use switchboard_sim::{AccountApi, Api, Emulator, Running};

/// A running emulator and the adapter under test, built against it.
pub struct Harness<A: Api, P> {
    pub emulator: Running<A>,
    pub provider: P,
}

/// Starts an emulator that accepts `account` on a loopback port, then `build`s the adapter from
/// the emulator's base URL.
pub async fn start<A: AccountApi, P>(
    account: A::Account,
    build: impl FnOnce(String) -> P,
) -> Harness<A, P> {
    let emulator = Emulator::<A>::start(account).await.unwrap();
    let provider = build(emulator.base_url());
    Harness { emulator, provider }
}

/// [`start`] for the usual adapter module: `build` the adapter from `config(base_url)` once
/// `tweak` has changed what the test needs.
pub async fn start_tweaked<A: AccountApi, C, P>(
    account: A::Account,
    config: impl FnOnce(String) -> C,
    tweak: impl FnOnce(&mut C),
    build: impl FnOnce(&C) -> P,
) -> Harness<A, P> {
    start(account, |base_url| {
        let mut config = config(base_url);
        tweak(&mut config);
        build(&config)
    })
    .await
}
