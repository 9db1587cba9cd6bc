//! Route rules: which providers may carry a destination, in the configured order.
