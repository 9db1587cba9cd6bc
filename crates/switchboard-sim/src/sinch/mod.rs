//! An emulator of Sinch's SMS and Voice APIs (filled in below).
