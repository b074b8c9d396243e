//! The wall clock, behind a trait so tests and simulations can set the time.
//!
//! Durations are always measured with the monotonic clock
//! ([`std::time::Instant`]); wall-clock time is only used to stamp when a
//! check started, and enters through [`WallClock`].

use std::time::SystemTime;

/// A source of wall-clock time.
pub trait WallClock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock fixed at one instant, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedWallClock(pub SystemTime);

impl WallClock for FixedWallClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}
