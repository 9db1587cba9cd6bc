//! Observed provider health: consecutive-failure ejection with growing cooldowns and a single
//! probation trial, kept apart from the operator's switch.
