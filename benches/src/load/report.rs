//! What the harness prints: one row per system under load, then each figure of switchboard's
//! rows as a ratio to the forwarder's (the last row), and for open-loop runs the router's
//! overhead (switchboard's latency minus the forwarder's).

use super::client::Outcome;
use super::target::Target;

/// One system's measurement.
#[derive(Debug)]
pub struct Measured {
    /// The system's name.
    pub name: String,
    /// How many processes it ran as.
    pub processes: usize,
    /// What the client saw.
    pub outcome: Outcome,
    /// Sends the provider (the emulator) received during the run.
    pub provider_sends: u64,
    /// Peak RSS over its processes (`VmHWM`, summed), in KiB, read after the run.
    pub peak_rss_kib: u64,
}

impl Measured {
    /// `outcome` of a run against `target`, with its peak RSS now.
    pub fn of(target: &Target, outcome: Outcome, provider_sends: u64) -> anyhow::Result<Measured> {
        Ok(Measured {
            name: target.name.clone(),
            processes: target.processes(),
            outcome,
            provider_sends,
            peak_rss_kib: target.peak_rss_kib()?,
        })
    }
}

/// A scenario's rows.
pub struct Table {
    rows: Vec<Measured>,
}

impl Table {
    /// Prints the scenario's heading.
    #[must_use]
    pub fn new(scenario: &str, description: &str) -> Table {
        println!("\nscenario {scenario}: {description}");
        Table { rows: Vec::new() }
    }

    /// Adds a row (the forwarder's last).
    pub fn push(&mut self, measured: Measured) {
        self.rows.push(measured);
    }

    /// Prints the rows, the ratios to the last row and, with `overhead`, the differences.
    pub fn print(self, overhead: bool) -> Vec<Measured> {
        println!(
            "  {:<24} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "system",
            "sent",
            "success",
            "fail",
            "error",
            "late",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "peak KiB"
        );
        for row in &self.rows {
            let o = &row.outcome;
            println!(
                "  {:<24} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10}",
                row.name,
                o.sent,
                o.successful,
                o.unsuccessful,
                o.errors,
                o.late_starts,
                o.throughput(),
                o.ms(0.5),
                o.ms(0.99),
                o.ms(0.999),
                o.max_ms(),
                row.peak_rss_kib
            );
        }
        if let Some((base, others)) = self.rows.split_last() {
            let b = &base.outcome;
            for row in others {
                let o = &row.outcome;
                println!(
                    "  {:<24} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8.2}x {:>7.2}x {:>7.2}x {:>7.2}x {:>7.2}x {:>9.2}x",
                    format!("ratio {}", short(&row.name)),
                    "",
                    "",
                    "",
                    "",
                    "",
                    ratio(o.throughput(), b.throughput()),
                    ratio(o.ms(0.5), b.ms(0.5)),
                    ratio(o.ms(0.99), b.ms(0.99)),
                    ratio(o.ms(0.999), b.ms(0.999)),
                    ratio(o.max_ms(), b.max_ms()),
                    ratio(row.peak_rss_kib as f64, base.peak_rss_kib as f64),
                );
                if overhead {
                    println!(
                        "  {:<24} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9} {:>+8.2} {:>+8.2} {:>+8.2} {:>+8.2}",
                        format!("overhead {}", short(&row.name)),
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        o.ms(0.5) - b.ms(0.5),
                        o.ms(0.99) - b.ms(0.99),
                        o.ms(0.999) - b.ms(0.999),
                        o.max_ms() - b.max_ms(),
                    );
                }
            }
            println!(
                "  (ratio and overhead: each row against {}, {} process(es); fail = answered but not \
                 SUCCESSFUL, late = left the generator > 10 ms after its due time)",
                base.name, base.processes
            );
            let sends: Vec<String> = self
                .rows
                .iter()
                .map(|row| format!("{} {}", short(&row.name), row.provider_sends))
                .collect();
            println!("  provider sends during the run: {}", sends.join(", "));
        }
        self.rows
    }
}

fn ratio(value: f64, base: f64) -> f64 {
    if base > 0.0 { value / base } else { f64::NAN }
}

/// "switchboard x3 redis" stays as is; the single replica is just "switchboard" → "sb".
fn short(name: &str) -> String {
    name.replacen("switchboard", "sb", 1)
}
