//! The load generator: an open loop (request *i* is due at start + *i* / rate, and its latency
//! is measured from that due time, so a server that stalls is charged for every request it
//! delayed: no coordinated omission) and a closed loop (N connections, each sending its next
//! request when the last is answered: "as fast as possible", which does coordinate).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Latencies are recorded in microseconds, up to this (one minute), three significant digits.
const HIGHEST_US: u64 = 60_000_000;

/// A request later than this past its due time to leave the generator counts as started late.
pub const LATE_START: Duration = Duration::from_millis(10);

/// What one load run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Latency of every answered request, in microseconds (errors not included).
    pub latency: Histogram<u64>,
    /// Requests sent.
    pub sent: u64,
    /// Answered 200 with `SUCCESSFUL` in the body.
    pub successful: u64,
    /// Answered, but not 200 or not `SUCCESSFUL` (a shed request, a refusal).
    pub unsuccessful: u64,
    /// Never answered: connection error or the client's timeout.
    pub errors: u64,
    /// Open loop: requests that left the generator more than [`LATE_START`] after their due
    /// time (the in-flight cap was full, or the generator itself fell behind).
    pub late_starts: u64,
    /// First due time to last answer.
    pub elapsed: Duration,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            latency: Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"),
            sent: 0,
            successful: 0,
            unsuccessful: 0,
            errors: 0,
            late_starts: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: &Outcome) {
        self.latency.add(&other.latency).expect("histograms with the same bounds");
        self.sent += other.sent;
        self.successful += other.successful;
        self.unsuccessful += other.unsuccessful;
        self.errors += other.errors;
        self.late_starts += other.late_starts;
    }

    /// Answered requests per second of `elapsed`.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        (self.successful + self.unsuccessful) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0 to 1), in milliseconds.
    #[must_use]
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }

    /// The highest latency, in milliseconds.
    #[must_use]
    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1_000.0
    }

    fn record(&mut self, latency: Duration, answer: Answer) {
        match answer {
            Answer::Successful => self.successful += 1,
            Answer::Unsuccessful => self.unsuccessful += 1,
            Answer::Error => {
                self.errors += 1;
                return;
            }
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, HIGHEST_US);
        self.latency.record(us).expect("clamped into the histogram's range");
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Successful,
    Unsuccessful,
    Error,
}

/// Where requests go and what they carry: request *i* goes to `urls[i % urls.len()]` (several
/// replicas behind a round-robin balancer) with body `body(i)`.
#[derive(Clone)]
pub struct Load {
    /// The hook URLs, one per replica.
    pub urls: Arc<Vec<String>>,
    /// `(header, value)` sent with every request (the hook's shared secret).
    pub auth: Option<(String, String)>,
    /// Request *i*'s body.
    pub body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
    /// The client's timeout per request.
    pub timeout: Duration,
}

impl Load {
    /// A client for this load: no proxy (loopback only), no pool limit.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .no_proxy()
            .timeout(self.timeout)
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .build()?)
    }

    async fn send(&self, client: &reqwest::Client, index: u64, body: Bytes) -> Answer {
        let url = &self.urls[(index % self.urls.len() as u64) as usize];
        let mut request =
            client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some((name, value)) = &self.auth {
            request = request.header(name, value);
        }
        let Ok(response) = request.send().await else {
            return Answer::Error;
        };
        let status = response.status();
        match response.bytes().await {
            Ok(text) if status.is_success() && contains(&text, b"SUCCESSFUL") => Answer::Successful,
            Ok(_) => Answer::Unsuccessful,
            Err(_) => Answer::Error,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Sends `count` requests at `rate` per second, request *i* due at start + *i* / rate, with at
/// most `max_in_flight` outstanding; each latency runs from the request's due time. Indices
/// start at `first`.
pub async fn open_loop(
    load: &Load,
    first: u64,
    count: u64,
    rate: f64,
    max_in_flight: usize,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(rate > 0.0, "rate must be positive");
    let client = load.client()?;
    let outcome = Arc::new(Mutex::new(Outcome::new()));
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut late_starts = 0;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let body = (load.body)(first + i);
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let permit = Arc::clone(&permits).acquire_owned().await?;
        if due.elapsed() > LATE_START {
            late_starts += 1;
        }
        let (load, client, outcome) = (load.clone(), client.clone(), Arc::clone(&outcome));
        tasks.spawn(async move {
            let answer = load.send(&client, first + i, body).await;
            let latency = due.elapsed();
            drop(permit);
            outcome.lock().unwrap_or_else(PoisonError::into_inner).record(latency, answer);
        });
        // Reap finished tasks as we go, so the set stays the size of what is in flight.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut outcome = Arc::try_unwrap(outcome)
        .map_err(|_| anyhow::anyhow!("a request task outlived the run"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    outcome.sent = count;
    outcome.late_starts = late_starts;
    outcome.elapsed = elapsed;
    Ok(outcome)
}

/// `connections` workers each send a request, wait for its answer and send the next, for
/// `duration`; latency runs from each send. Indices start at `first`, interleaved across
/// workers. Returns the outcome and the next unused index.
pub async fn closed_loop(
    load: &Load,
    first: u64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Outcome, u64)> {
    let client = load.client()?;
    let start = Instant::now();
    let end = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    let n = connections as u64;
    for worker in 0..n {
        let (load, client) = (load.clone(), client.clone());
        workers.spawn(async move {
            let mut outcome = Outcome::new();
            let mut round = 0;
            while Instant::now() < end {
                let index = first + round * n + worker;
                let body = (load.body)(index);
                let sent = Instant::now();
                let answer = load.send(&client, index, body).await;
                outcome.record(sent.elapsed(), answer);
                outcome.sent += 1;
                round += 1;
            }
            (outcome, round)
        });
    }
    let mut total = Outcome::new();
    let mut rounds = 0;
    while let Some(joined) = workers.join_next().await {
        let (outcome, round) = joined?;
        total.merge(&outcome);
        rounds = rounds.max(round);
    }
    total.elapsed = start.elapsed();
    Ok((total, first + rounds * n))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// A server that answers `SUCCESSFUL` after `delay`.
    async fn slow_server(delay: Duration) -> SocketAddr {
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || async move {
                tokio::time::sleep(delay).await;
                "{\"status\":\"SUCCESSFUL\"}"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    fn load(addr: SocketAddr) -> Load {
        Load {
            urls: Arc::new(vec![format!("http://{addr}/hook")]),
            auth: None,
            body: Arc::new(|i| Bytes::from(format!("{{\"i\":{i}}}"))),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_open_loop_measures_from_the_due_time() {
        let addr = slow_server(Duration::from_millis(20)).await;
        let outcome = open_loop(&load(addr), 0, 40, 200.0, 100).await.unwrap();
        assert_eq!(outcome.sent, 40);
        assert_eq!(outcome.successful, 40);
        assert_eq!(outcome.errors + outcome.unsuccessful, 0);
        assert_eq!(outcome.latency.len(), 40);
        assert!(outcome.ms(0.5) >= 20.0, "p50 {} ms below the server's delay", outcome.ms(0.5));
        assert!(outcome.max_ms() < 2_000.0, "max {} ms", outcome.max_ms());
        // 40 requests at 200/s take at least 195 ms plus the last one's 20 ms.
        assert!(outcome.elapsed >= Duration::from_millis(215), "{:?}", outcome.elapsed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_in_flight_cap_is_charged_to_the_latency() {
        // One request at a time against a 50 ms server, due every 10 ms: each waits for the
        // one before, so the last is due at 90 ms and answered no sooner than 500 ms.
        let addr = slow_server(Duration::from_millis(50)).await;
        let outcome = open_loop(&load(addr), 0, 10, 100.0, 1).await.unwrap();
        assert_eq!(outcome.successful, 10);
        assert!(outcome.late_starts >= 5, "late starts {}", outcome.late_starts);
        assert!(outcome.max_ms() >= 400.0, "max {} ms, not charged for waiting", outcome.max_ms());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_closed_loop_counts_every_answer() {
        let addr = slow_server(Duration::from_millis(5)).await;
        let (outcome, next) =
            closed_loop(&load(addr), 0, 4, Duration::from_millis(200)).await.unwrap();
        assert!(outcome.successful >= 4, "{outcome:?}");
        assert_eq!(outcome.successful, outcome.sent);
        assert!(next >= outcome.sent);
    }
}
