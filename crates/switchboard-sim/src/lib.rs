//! Provider emulators.
