//! How many unverified notifications a source may make us store (issue 13 #7).
//!
//! `/notify/*` is unauthenticated: anyone can post to it, and every post used to be stored
//! durably before any check, competing with real payments for the database's writer. A source
//! (the client address, as the proxies we trust report it) has a budget of *rejected*
//! notifications — a token bucket refilled at a steady rate — and all sources together share a
//! second, larger bucket. A token is taken before a notification is stored (so requests in
//! flight together cannot overspend) and given back when it verifies: a genuine notification
//! costs nothing, and a provider sending a burst of real payments is never held back. A source that has spent its budget is not
//! stored first any more: its next notification must verify before it is written, and one that
//! does not is answered "retry later" and only counted. Nothing genuine is lost that way —
//! a real notification from a throttled source still verifies, is stored and is applied.

use crate::time::Millis;
use std::collections::HashMap;
use std::sync::Mutex;

/// The limits; `per_minute` tokens flow back into each bucket, at most `burst` are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Rejected notifications one source may have stored per minute, on average.
    pub per_source_per_minute: i64,
    pub per_source_burst: i64,
    /// The same for all sources together (a flood from many addresses).
    pub global_per_minute: i64,
    pub global_burst: i64,
    /// Sources remembered at once; beyond it, sources with a full bucket are forgotten first.
    pub max_sources: usize,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            per_source_per_minute: 30,
            per_source_burst: 60,
            global_per_minute: 600,
            global_burst: 1_200,
            max_sources: 10_000,
        }
    }
}

/// Milli-tokens, so refill stays exact in integers.
const UNIT: i64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: i64,
    at_ms: Millis,
}

impl Bucket {
    fn full(burst: i64, now: Millis) -> Bucket {
        Bucket { level: burst * UNIT, at_ms: now }
    }

    /// Tops the bucket up for the time since it was last looked at.
    fn refill(&mut self, per_minute: i64, burst: i64, now: Millis) {
        let elapsed = (now - self.at_ms).max(0);
        let full = burst * UNIT;
        if per_minute <= 0 || self.level >= full {
            self.at_ms = now.max(self.at_ms);
            return;
        }
        // per_minute tokens per 60,000 ms = per_minute / 60 milli-tokens per ms; only the time
        // turned into whole milli-tokens is used up, so no fraction is lost between calls
        let gained = elapsed.saturating_mul(per_minute) / 60;
        self.level = self.level.saturating_add(gained).min(full);
        self.at_ms = if self.level >= full { now.max(self.at_ms) } else { self.at_ms + gained * 60 / per_minute };
    }
}

/// The buckets, kept in memory (per instance; each instance protects its own writer).
#[derive(Debug)]
pub struct SourceBudget {
    policy: BudgetPolicy,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    global: Bucket,
    sources: HashMap<String, Bucket>,
}

impl SourceBudget {
    pub fn new(policy: BudgetPolicy) -> SourceBudget {
        SourceBudget {
            policy,
            state: Mutex::new(State { global: Bucket::full(policy.global_burst, 0), sources: HashMap::new() }),
        }
    }

    pub fn policy(&self) -> BudgetPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // the state is a cache of counters: a panic elsewhere cannot leave it inconsistent
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a notification from `source` be stored before it is verified? Takes one token from
    /// the source's bucket and the global one at once (so requests in flight together cannot
    /// overspend); give it back with [`SourceBudget::refund`] once the notification verified.
    pub fn reserve(&self, source: &str, now: Millis) -> bool {
        let p = self.policy;
        let mut st = self.lock();
        st.global.refill(p.global_per_minute, p.global_burst, now);
        if st.global.level < UNIT {
            return false;
        }
        if !st.sources.contains_key(source) && st.sources.len() >= p.max_sources {
            Self::forget_full(&mut st.sources, p, now);
        }
        let b = st.sources.entry(source.to_string()).or_insert_with(|| Bucket::full(p.per_source_burst, now));
        b.refill(p.per_source_per_minute, p.per_source_burst, now);
        if b.level < UNIT {
            return false;
        }
        b.level -= UNIT;
        st.global.level -= UNIT;
        true
    }

    /// A reserved notification turned out genuine (or was not stored): its token goes back.
    pub fn refund(&self, source: &str, now: Millis) {
        let p = self.policy;
        let mut st = self.lock();
        st.global.refill(p.global_per_minute, p.global_burst, now);
        st.global.level = (st.global.level + UNIT).min(p.global_burst * UNIT);
        if let Some(b) = st.sources.get_mut(source) {
            b.refill(p.per_source_per_minute, p.per_source_burst, now);
            b.level = (b.level + UNIT).min(p.per_source_burst * UNIT);
        }
    }

    /// Drops the sources whose bucket has filled up again (they hold no information); when
    /// every one is still spending, drops the half that was looked at longest ago.
    fn forget_full(sources: &mut HashMap<String, Bucket>, p: BudgetPolicy, now: Millis) {
        sources.retain(|_, b| {
            b.refill(p.per_source_per_minute, p.per_source_burst, now);
            b.level < p.per_source_burst * UNIT
        });
        if sources.len() >= p.max_sources {
            let mut ages: Vec<Millis> = sources.values().map(|b| b.at_ms).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            sources.retain(|_, b| b.at_ms > cut);
        }
    }

    /// How many sources are remembered (for tests and metrics).
    pub fn sources(&self) -> usize {
        self.lock().sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BudgetPolicy {
        BudgetPolicy {
            per_source_per_minute: 6,
            per_source_burst: 3,
            global_per_minute: 60,
            global_burst: 5,
            max_sources: 4,
        }
    }

    #[test]
    fn a_source_spends_its_burst_then_earns_tokens_back_at_its_rate() {
        let b = SourceBudget::new(small());
        for _ in 0..3 {
            assert!(b.reserve("10.0.0.1", 0));
        }
        assert!(!b.reserve("10.0.0.1", 0), "the burst is spent");
        assert!(b.reserve("10.0.0.2", 0), "another source has its own budget");
        // 6 per minute: one token every 10 s
        assert!(!b.reserve("10.0.0.1", 9_999));
        assert!(b.reserve("10.0.0.1", 10_000));
        assert!(!b.reserve("10.0.0.1", 10_000));
        // never more than the burst, however long it waited
        for _ in 0..3 {
            assert!(b.reserve("10.0.0.1", 3_600_000));
        }
        assert!(!b.reserve("10.0.0.1", 3_600_000));
    }

    #[test]
    fn genuine_notifications_give_their_token_back() {
        let b = SourceBudget::new(small());
        for _ in 0..100 {
            assert!(b.reserve("provider", 0), "a verified notification costs nothing");
            b.refund("provider", 0);
        }
        assert!(b.reserve("provider", 0));
    }

    #[test]
    fn many_sources_together_spend_the_global_budget() {
        let b = SourceBudget::new(small());
        for i in 0..5 {
            assert!(b.reserve(&format!("10.0.1.{i}"), 0));
        }
        assert!(!b.reserve("10.9.9.9", 0), "a fresh source is held back once all sources spent the global budget");
        assert!(b.reserve("10.9.9.9", 1_000), "60 per minute: one back per second");
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_are_forgotten_first() {
        let b = SourceBudget::new(BudgetPolicy { global_burst: 1_000, ..small() });
        for i in 0..100 {
            b.reserve(&format!("10.0.2.{i}"), i * 1_000);
            assert!(b.sources() <= 4, "{} sources remembered", b.sources());
        }
        // a spent source survives while quieter ones are forgotten
        let b = SourceBudget::new(BudgetPolicy { global_burst: 1_000, ..small() });
        for _ in 0..3 {
            b.reserve("spender", 60_000);
        }
        for i in 0..3 {
            b.reserve(&format!("once-{i}"), 0);
        }
        b.reserve("newcomer", 60_000);
        assert!(!b.reserve("spender", 60_000), "the spender's debt was kept");
    }
}
