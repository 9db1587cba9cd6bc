//! What a rule asks of ranking and of dispatch: the emphasis ranking favours ([`Optimize`]) and
//! the validated strategy ([`StrategyPolicy`]: cascade, hedge with its [`HedgeDelay`], race).
//! The planner resolves these into a plan's [`crate::plan::Strategy`].

use std::time::Duration;

use serde::Deserialize;

/// What a rule's ranking favours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimize {
    /// The configured order; health only excludes (static priority with failover).
    Priority,
    /// Success and delivery rates first.
    Reliability,
    /// Accept latency first, then success.
    Latency,
    /// Expected price per delivered message.
    Cost,
}

impl Optimize {
    /// Lower-case label for explain output and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Optimize::Priority => "priority",
            Optimize::Reliability => "reliability",
            Optimize::Latency => "latency",
            Optimize::Cost => "cost",
        }
    }

    /// Whether candidates are ordered by score rather than by configuration.
    #[must_use]
    pub fn is_scored(self) -> bool {
        self != Optimize::Priority
    }
}

/// How a validated rule's hedge delay is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeDelay {
    /// Always this long.
    Fixed(Duration),
    /// A quantile of the first candidate's observed accept latency, clamped.
    Learned {
        /// Which quantile, in (0, 1).
        quantile: f64,
        /// Shortest delay.
        floor: Duration,
        /// Longest delay.
        ceiling: Duration,
    },
}

/// A validated rule's strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StrategyPolicy {
    /// One provider at a time.
    Cascade,
    /// Start the next provider after the hedge delay; keep the first acceptance.
    Hedge(HedgeDelay),
    /// Send to `width` providers at once.
    Race {
        /// At least 2.
        width: u32,
    },
}
