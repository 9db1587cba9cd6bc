//! Whether one attempt may go: the operator's switch, provider health, then the retry budget for
//! a speculative send.
//!
//! Health ([`HealthBook`]), the budget ([`RetryBudget`]), the spend meter ([`SpendBook`]) and
//! the operator's switches ([`OperatorSwitches`]) are separate state with separate owners:
//! health changes with every attempt's outcome per (provider, country, channel), the budget with
//! the fleet's traffic, spending with every paid send, the switches with the operator. An
//! attempt needs all to agree, and a refusal by any must claim nothing from the others: the
//! switch is asked first (a provider disabled since the plan was made), health admits next
//! (without claiming its probation trial), the budget pays for a speculative send (its price
//! charged to the spend meter when the country has an hourly cap), and only then is the trial
//! claimed.

use std::time::Instant;

use crate::budget::{BudgetRefusal, RetryBudget};
use crate::health::{HealthBook, HealthRefusal};
use crate::plan::Candidate;
use crate::spend::SpendBook;
use crate::switch::{OperatorState, OperatorSwitches};

/// Asks the operator's switch, health and, for a speculative send, the retry budget (and its
/// spend cap, charged to the spend meter) whether `candidate` may be sent to now; on `Go` the
/// probation trial is claimed and the budget paid. Nothing is claimed or taken when it refuses.
pub fn begin_attempt(
    health: &mut HealthBook,
    budget: &mut RetryBudget,
    spend: &mut SpendBook,
    switches: &OperatorSwitches,
    candidate: &Candidate,
    kind: AttemptKind,
    now: Instant,
) -> Admission {
    if switches.state(candidate.provider()) == OperatorState::Disabled {
        return Admission::Disabled;
    }
    let claim =
        match health.admit(&candidate.key, candidate.is_fail_open, candidate.is_exploration, now) {
            Ok(claim) => claim,
            Err(refusal) => return refusal.into(),
        };
    if kind.is_speculative()
        && let Err(refusal) =
            budget.try_withdraw(spend, candidate.key.country(), candidate.score.price, now)
    {
        return refusal.into();
    }
    health.claim(claim, now);
    Admission::Go
}

/// What dispatch is about to send, for [`begin_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptKind {
    /// The first send of a hook request.
    First,
    /// The next provider after a failure.
    Failover,
    /// Another provider while an earlier one is still unanswered.
    Hedge,
    /// One of the extra providers a race sends to at once.
    Race,
}

impl AttemptKind {
    /// Whether this send is speculative, paid from the retry budget: a hedge or a race extra,
    /// sent while another provider may still deliver the same code. A failover is not: the
    /// attempt before it has ended without an acceptance, so it replaces that send rather than
    /// adding to it, and refusing it could only lose the code (see `budget.rs`).
    #[must_use]
    pub fn is_speculative(self) -> bool {
        matches!(self, AttemptKind::Hedge | AttemptKind::Race)
    }

    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::First => "first",
            AttemptKind::Failover => "failover",
            AttemptKind::Hedge => "hedge",
            AttemptKind::Race => "race",
        }
    }
}

/// Whether dispatch may send to a candidate now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "dispatch must skip the candidate unless this is `Go`"]
pub enum Admission {
    /// Send.
    Go,
    /// The operator disabled the provider since the plan was made.
    Disabled,
    /// The key is on probation and its one trial is already running.
    TrialInFlight,
    /// Speculative sends are over their share of traffic: no hedge or race extra now.
    RetryBudget,
    /// Speculative sends to this country spent their hourly cap: no hedge or race extra now.
    SpendBudget,
    /// The provider is at the throughput its account is granted (`max_per_second`): the next
    /// candidate goes instead. Decided by the server's throughput limiter before the rest.
    AtCapacity,
}

impl Admission {
    /// Whether dispatch may send.
    #[must_use]
    pub fn is_go(self) -> bool {
        self == Admission::Go
    }

    /// Whether the refusal is the budget's: no later candidate will be admitted either, as an
    /// extra send, until traffic earns more.
    #[must_use]
    pub fn is_budget(self) -> bool {
        matches!(self, Admission::RetryBudget | Admission::SpendBudget)
    }

    /// Lower-case label for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Go => "go",
            Admission::Disabled => "disabled",
            Admission::TrialInFlight => "trial_in_flight",
            Admission::RetryBudget => "retry_budget",
            Admission::SpendBudget => "spend_budget",
            Admission::AtCapacity => "at_capacity",
        }
    }
}

impl From<HealthRefusal> for Admission {
    fn from(refusal: HealthRefusal) -> Admission {
        match refusal {
            HealthRefusal::TrialInFlight => Admission::TrialInFlight,
        }
    }
}

impl From<BudgetRefusal> for Admission {
    fn from(refusal: BudgetRefusal) -> Admission {
        match refusal {
            BudgetRefusal::Retries => Admission::RetryBudget,
            BudgetRefusal::Spend => Admission::SpendBudget,
        }
    }
}
