//! The real clock and id generator behind the domain's `Clock` and `IdGen` ports.

use clinicpay::ports::{Clock, IdGen};
use clinicpay::time::Millis;
use rand::RngCore;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// ULID layout: 48 bits of Unix milliseconds, then 80 random bits from the OS.
pub struct RandomIds;

impl IdGen for RandomIds {
    fn next_bits(&self) -> u128 {
        IdsAt(chrono::Utc::now().timestamp_millis()).next_bits()
    }
}

/// Ids for records booked at a given instant (bills written with their own creation time):
/// they sort with the records booked around then.
pub struct IdsAt(pub Millis);

impl IdGen for IdsAt {
    fn next_bits(&self) -> u128 {
        let ms = self.0.max(0) as u128 & ((1u128 << 48) - 1);
        let mut r = [0u8; 10];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let mut rnd = 0u128;
        for b in r {
            rnd = (rnd << 8) | b as u128;
        }
        (ms << 80) | rnd
    }
}

/// A clock tests can move.
#[derive(Default)]
pub struct ManualClock(pub std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(ms: Millis) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(ms))
    }
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
