//! Shift handover (PRODUCT.md L3, 交班): a cashier opens a shift with the cash float in the
//! drawer, takes payments and refunds, and closes it by counting the drawer. The sheet shows the
//! shift's payments and refunds by channel and the cash expected beside the cash counted; a
//! difference needs a note. The next cashier or finance confirms the sheet — never the cashier
//! who closed it.
//!
//! The rules here are the only copy: the store calls [`close_figures`] inside the transaction
//! that closes the shift, over the figures it reads under the same lock.

use crate::money::Money;
use crate::payments::Provider;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftStatus {
    /// The cashier is at the desk.
    Open,
    /// Counted and handed over; waiting for the next cashier or finance.
    Closed,
    /// The sheet was checked and signed by someone else.
    Confirmed,
}

impl ShiftStatus {
    pub const ALL: [ShiftStatus; 3] = [ShiftStatus::Open, ShiftStatus::Closed, ShiftStatus::Confirmed];

    pub fn as_str(self) -> &'static str {
        match self {
            ShiftStatus::Open => "open",
            ShiftStatus::Closed => "closed",
            ShiftStatus::Confirmed => "confirmed",
        }
    }

    pub fn parse(s: &str) -> Option<ShiftStatus> {
        ShiftStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ShiftStatus::Open => "当班中",
            ShiftStatus::Closed => "已交班，待确认",
            ShiftStatus::Confirmed => "已确认",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            ShiftStatus::Open => "On shift",
            ShiftStatus::Closed => "Handed over, to confirm",
            ShiftStatus::Confirmed => "Confirmed",
        }
    }
}

crate::parse_from_string!(ShiftStatus, "shift status");

/// One channel's line on the sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftLine {
    pub provider: Provider,
    /// Payments (one per QR paid, whatever the number of bills).
    pub payments: i64,
    pub received: Money,
    /// Refunds the cashier asked for that went back during the shift.
    pub refunds: i64,
    pub refunded: Money,
}

impl ShiftLine {
    pub fn net(&self) -> Money {
        self.received.checked_sub(self.refunded).unwrap_or(Money::ZERO)
    }
}

/// A shift and its sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftView {
    pub id: String,
    pub cashier_id: String,
    pub cashier_name: String,
    pub status: ShiftStatus,
    pub opened_at_ms: Millis,
    /// The cash in the drawer when the shift began (备用金).
    pub float: Money,
    pub closed_at_ms: Option<Millis>,
    /// By channel; while open, up to now; once closed, frozen as handed over.
    pub lines: Vec<ShiftLine>,
    pub expected_cash: Money,
    pub counted_cash: Option<Money>,
    /// Counted less expected (negative: cash is missing).
    pub difference: Option<Money>,
    pub note: String,
    pub confirmed_by_name: Option<String>,
    pub confirmed_at_ms: Option<Millis>,
}

impl ShiftView {
    pub fn received(&self) -> Money {
        Money::sum(self.lines.iter().map(|l| l.received)).unwrap_or(Money::ZERO)
    }

    pub fn refunded(&self) -> Money {
        Money::sum(self.lines.iter().map(|l| l.refunded)).unwrap_or(Money::ZERO)
    }
}

/// What the shift page shows one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftBoard {
    /// The caller's open shift.
    pub mine: Option<ShiftView>,
    /// Shifts handed over by others, waiting for a confirmation.
    pub to_confirm: Vec<ShiftView>,
    /// Recent shifts, newest first.
    pub recent: Vec<ShiftView>,
}

/// The cash the drawer should hold: the float, plus cash taken at the counter (C9), less cash
/// paid back at the counter (a cash payment's refund goes back in cash). Every other channel's
/// money never passes through the drawer.
pub fn expected_cash(float: Money, lines: &[ShiftLine]) -> Money {
    lines
        .iter()
        .filter(|l| l.provider == Provider::Cash)
        .try_fold(float, |at, l| at.checked_add(l.received)?.checked_sub(l.refunded))
        .unwrap_or(float)
}

/// Why a shift step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftRefusal {
    /// The cashier already has an open shift.
    AlreadyOpen,
    /// The shift is not open (closed already, or never was).
    NotOpen,
    /// Only the cashier who opened a shift closes it.
    NotYours,
    /// Only a closed shift is confirmed.
    NotClosed,
    /// The cashier who closed a shift does not confirm it.
    OwnShift,
    /// Counted differs from expected and no note says why.
    DifferenceNeedsNote,
}

impl ShiftRefusal {
    pub fn code(self) -> &'static str {
        match self {
            ShiftRefusal::AlreadyOpen => "shift_already_open",
            ShiftRefusal::NotOpen => "shift_not_open",
            ShiftRefusal::NotYours => "shift_not_yours",
            ShiftRefusal::NotClosed => "shift_not_closed",
            ShiftRefusal::OwnShift => "shift_own_confirm",
            ShiftRefusal::DifferenceNeedsNote => "shift_difference_needs_note",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ShiftRefusal::AlreadyOpen => "you have an open shift already: close it first",
            ShiftRefusal::NotOpen => "this shift is not open",
            ShiftRefusal::NotYours => "only the cashier who opened a shift closes it",
            ShiftRefusal::NotClosed => "only a shift that was closed can be confirmed",
            ShiftRefusal::OwnShift => "the next cashier or finance confirms a handover, not the cashier who closed it",
            ShiftRefusal::DifferenceNeedsNote => "the cash counted differs from what is expected: say why in the note",
        }
    }
}

/// What a close records: the cash expected and the difference, or why it cannot close.
pub fn close_figures(
    float: Money,
    lines: &[ShiftLine],
    counted: Money,
    note: &str,
) -> Result<(Money, Money), ShiftRefusal> {
    let expected = expected_cash(float, lines);
    let difference = counted.checked_sub(expected).unwrap_or(Money::ZERO);
    if difference != Money::ZERO && note.trim().is_empty() {
        return Err(ShiftRefusal::DifferenceNeedsNote);
    }
    Ok((expected, difference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn a_difference_needs_a_note() {
        let lines = vec![ShiftLine {
            provider: Provider::Alipay,
            payments: 2,
            received: m("120.00"),
            refunds: 1,
            refunded: m("5.00"),
        }];
        assert_eq!(lines[0].net(), m("115.00"));
        assert_eq!(close_figures(m("500"), &lines, m("500"), ""), Ok((m("500"), m("0"))));
        assert_eq!(close_figures(m("500"), &lines, m("480"), " "), Err(ShiftRefusal::DifferenceNeedsNote));
        assert_eq!(
            close_figures(m("500"), &lines, m("480"), "找零错误"),
            Ok((m("500"), Money::from_fen(-2000).unwrap()))
        );
        assert_eq!(close_figures(m("500"), &lines, m("510.50"), "多收"), Ok((m("500"), m("10.50"))));
    }

    #[test]
    fn the_drawer_holds_the_float_and_the_cash_taken_less_cash_paid_back() {
        let line = |provider, received: &str, refunded: &str| ShiftLine {
            provider,
            payments: 1,
            received: m(received),
            refunds: 1,
            refunded: m(refunded),
        };
        let lines = vec![
            line(Provider::Alipay, "900.00", "100.00"),
            line(Provider::Cash, "256.50", "20.00"),
            line(Provider::Pos, "1000.00", "0"),
        ];
        assert_eq!(expected_cash(m("500"), &lines), m("736.50"));
        assert_eq!(close_figures(m("500"), &lines, m("736.50"), ""), Ok((m("736.50"), m("0"))));
        assert_eq!(close_figures(m("500"), &lines, m("500"), ""), Err(ShiftRefusal::DifferenceNeedsNote));
    }

    #[test]
    fn statuses_read_back() {
        for s in ShiftStatus::ALL {
            assert_eq!(ShiftStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ShiftStatus::parse("gone"), None);
    }
}
