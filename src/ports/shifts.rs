//! Shift handover (L3): the store keeps shifts and reads a cashier's figures for a span of time.

use super::{AuditInput, StoreResult};
use crate::money::Money;
use crate::shifts::{ShiftRefusal, ShiftStatus, ShiftView};
use crate::time::Millis;
use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct NewShift {
    pub id: String,
    pub cashier_id: String,
    pub cashier_name: String,
    pub float: Money,
    pub at_ms: Millis,
    pub audit: AuditInput,
}

#[async_trait]
pub trait ShiftStore: Send + Sync {
    /// Opens a shift; refused when the cashier has one open (a unique index).
    async fn open_shift(&self, s: &NewShift) -> StoreResult<Result<ShiftView, ShiftRefusal>>;
    /// A shift, its lines up to now while open.
    async fn shift(&self, id: &str, now_ms: Millis) -> StoreResult<Option<ShiftView>>;
    /// The cashier's open shift, if any.
    async fn open_shift_of(&self, cashier_id: &str, now_ms: Millis) -> StoreResult<Option<ShiftView>>;
    /// Shifts newest first, in some states (all when empty).
    async fn shifts(&self, statuses: &[ShiftStatus], limit: i64, now_ms: Millis) -> StoreResult<Vec<ShiftView>>;
    /// Closes an open shift of `cashier_id`: the figures are read and frozen in the same
    /// transaction, and the rules (`shifts::close_figures`) decide.
    async fn close_shift(
        &self,
        id: &str,
        cashier_id: &str,
        counted: Money,
        note: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<Result<ShiftView, ShiftRefusal>>;
    /// Confirms a closed shift (compare-and-set closed → confirmed; never by its cashier).
    async fn confirm_shift(
        &self,
        id: &str,
        by: &str,
        by_name: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<Result<ShiftView, ShiftRefusal>>;
}
