//! Payables (C8): what a checkout session pays. A session pays a set of payables of one patient,
//! each with its amount frozen when the session opens; the allocation and ledger rules
//! ([`super::apply`]) are the same for every kind.
//!
//! Today the only kind is a bill. Deposit orders (C7) and an insured patient's share (I3) are the
//! next kinds: each adds a variant here, its id type, the account its money is credited to, and
//! (in the store) the table that holds its status. The database already accepts their kind names
//! (`session_payables.payable_kind`, `payments.payable_kind`), so adding them needs no table
//! rebuild. The compiler points at every `match` that has to learn the new kind.

use crate::billing::BillStatus;
use crate::ids::{BillId, IdError};
use crate::ledger::Account;
use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayableKind {
    /// A bill (B1): paid in full by one session, once.
    Bill,
}

impl PayableKind {
    pub const ALL: [PayableKind; 1] = [PayableKind::Bill];

    pub fn as_str(self) -> &'static str {
        match self {
            PayableKind::Bill => "bill",
        }
    }

    pub fn parse(s: &str) -> Option<PayableKind> {
        PayableKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The account a payment of this kind is credited to (the debit is the channel's clearing
    /// account): a bill's receivable, booked when it was issued.
    pub fn credit_account(self) -> Account {
        match self {
            PayableKind::Bill => Account::PatientReceivable,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            PayableKind::Bill => "账单",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            PayableKind::Bill => "Bill",
        }
    }
}

impl fmt::Display for PayableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::parse_from_string!(PayableKind, "payable kind");

/// Which payable: its kind and its own typed id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum PayableId {
    Bill(BillId),
}

impl PayableId {
    pub fn kind(&self) -> PayableKind {
        match self {
            PayableId::Bill(_) => PayableKind::Bill,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PayableId::Bill(b) => b.as_str(),
        }
    }

    /// The bill, when the payable is one (ledger lines of a bill name it).
    pub fn bill(&self) -> Option<&BillId> {
        match self {
            PayableId::Bill(b) => Some(b),
        }
    }

    /// Rebuilds a payable id from its stored parts.
    pub fn from_parts(kind: PayableKind, id: &str) -> Result<PayableId, IdError> {
        match kind {
            PayableKind::Bill => Ok(PayableId::Bill(BillId::parse(id)?)),
        }
    }
}

impl fmt::Display for PayableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BillId> for PayableId {
    fn from(b: BillId) -> Self {
        PayableId::Bill(b)
    }
}

/// A payable inside a session, with the amount frozen when the session opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenPayable {
    pub id: PayableId,
    pub amount: Money,
}

/// The status words every payable kind uses (a bill's, B1). A payable becomes `paying` when a
/// session takes it, `unpaid` again when that session ends without money, `paid` when it is paid.
pub type PayableStatus = BillStatus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in PayableKind::ALL {
            assert_eq!(PayableKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PayableKind::parse("bitcoin"), None);
        let id = PayableId::Bill(BillId::from_u128(7));
        assert_eq!(PayableId::from_parts(id.kind(), id.as_str()).unwrap(), id);
        assert!(PayableId::from_parts(PayableKind::Bill, "pat_00000000000000000000000007").is_err());
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!({ "kind": "bill", "id": id.as_str() }));
    }
}
