//! Counter payments (PRODUCT.md C9): the payer hands the cashier cash, or has a card swiped on
//! the counter's own POS terminal, and the cashier records it on the charge screen.
//!
//! A counter payment is a checkout session on one of the two built-in counter channels, opened
//! and paid in one transaction by the same payment rules as a QR payment ([`super::apply`]): one
//! payment per bill, one balanced entry (cash into 库存现金, a card slip into POS 刷卡待清算), the
//! receipts numbered, the outbox told. What the cashier typed is checked here, once.

use crate::ids::SessionId;
use crate::money::Money;
use crate::payments::{PayMethod, Provider};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// More than this above the amount due is taken for a typing slip, not a payer's banknotes.
pub const MAX_CHANGE_FEN: i64 = 1_000_000;

/// What the cashier recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CounterTender {
    /// Banknotes handed over: at least the amount due; the change is the rest.
    Cash { tendered: Money },
    /// A POS slip: the reference number (参考号) printed on it, the terminal (终端号) and the
    /// card's last four digits where the cashier has them.
    Pos { reference: String, terminal: Option<String>, card_last4: Option<String> },
}

/// Why a tender is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TenderError {
    #[error("the cash tendered is not an amount in yuan, such as 200 or 200.50")]
    BadTendered,
    #[error("the cash tendered ({tendered}) is less than the amount due ({due})")]
    TooLittle { due: Money, tendered: Money },
    #[error("the cash tendered ({tendered}) is far above the amount due ({due}): check the figure")]
    Implausible { due: Money, tendered: Money },
    #[error("the POS slip's reference number is 6–32 letters or digits")]
    BadReference,
    #[error("the POS terminal number is 1–16 letters or digits")]
    BadTerminal,
    #[error("the card's last four digits are four digits")]
    BadLast4,
}

impl TenderError {
    pub fn code(&self) -> &'static str {
        match self {
            TenderError::BadTendered => "bad_tendered",
            TenderError::TooLittle { .. } => "tendered_too_little",
            TenderError::Implausible { .. } => "tendered_implausible",
            TenderError::BadReference => "bad_pos_reference",
            TenderError::BadTerminal => "bad_pos_terminal",
            TenderError::BadLast4 => "bad_card_last4",
        }
    }
}

fn alnum(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl CounterTender {
    /// Cash, from the figure the cashier typed.
    pub fn cash(tendered: &str) -> Result<CounterTender, TenderError> {
        let tendered = Money::parse(tendered.trim()).map_err(|_| TenderError::BadTendered)?;
        if !tendered.is_positive() {
            return Err(TenderError::BadTendered);
        }
        Ok(CounterTender::Cash { tendered })
    }

    /// A POS slip, from what the cashier typed (blank optional fields are absent).
    pub fn pos(reference: &str, terminal: &str, card_last4: &str) -> Result<CounterTender, TenderError> {
        let reference = reference.trim().to_ascii_uppercase();
        if !alnum(&reference, 6..=32) {
            return Err(TenderError::BadReference);
        }
        let terminal = terminal.trim().to_ascii_uppercase();
        if !terminal.is_empty() && !alnum(&terminal, 1..=16) {
            return Err(TenderError::BadTerminal);
        }
        let last4 = card_last4.trim();
        let four_digits = last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit());
        if !last4.is_empty() && !four_digits {
            return Err(TenderError::BadLast4);
        }
        Ok(CounterTender::Pos {
            reference,
            terminal: (!terminal.is_empty()).then_some(terminal),
            card_last4: (!last4.is_empty()).then(|| last4.to_string()),
        })
    }

    pub fn provider(&self) -> Provider {
        match self {
            CounterTender::Cash { .. } => Provider::Cash,
            CounterTender::Pos { .. } => Provider::Pos,
        }
    }

    pub fn method(&self) -> PayMethod {
        match self {
            CounterTender::Cash { .. } => PayMethod::Cash,
            CounterTender::Pos { .. } => PayMethod::PosCard,
        }
    }

    /// The change to hand back for `due` (none for a card), or why the tender cannot pay it.
    pub fn change_for(&self, due: Money) -> Result<Option<Money>, TenderError> {
        match self {
            CounterTender::Cash { tendered } => {
                let change = tendered.checked_sub(due).map_err(|_| TenderError::BadTendered)?;
                if change.is_negative() {
                    return Err(TenderError::TooLittle { due, tendered: *tendered });
                }
                if change.fen() > MAX_CHANGE_FEN {
                    return Err(TenderError::Implausible { due, tendered: *tendered });
                }
                Ok(Some(change))
            }
            CounterTender::Pos { .. } => Ok(None),
        }
    }

    /// The transaction id the payment is booked under. A POS slip's is its reference number,
    /// so one slip pays one session: the payment rules see a second use as the same
    /// transaction reported for another order and book nothing.
    pub fn txn_id(&self, session: &SessionId) -> String {
        match self {
            CounterTender::Cash { .. } => format!("cash-{session}"),
            CounterTender::Pos { reference, .. } => format!("pos-{reference}"),
        }
    }

    /// Part of the request's fingerprint (a retry with the same key must be the same tender).
    pub fn fingerprint(&self) -> String {
        match self {
            CounterTender::Cash { tendered } => format!("cash:{}", tendered.fen()),
            CounterTender::Pos { reference, terminal, card_last4 } => {
                format!("pos:{reference}:{}:{}", terminal.as_deref().unwrap_or(""), card_last4.as_deref().unwrap_or(""))
            }
        }
    }
}

/// A counter payment as recorded (the receipt prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRecord {
    pub session_id: SessionId,
    pub provider: Provider,
    pub amount: Money,
    pub tendered: Option<Money>,
    pub change: Option<Money>,
    pub pos_reference: Option<String>,
    pub pos_terminal: Option<String>,
    pub card_last4: Option<String>,
    pub cashier_name: String,
    pub shift_id: Option<String>,
    pub recorded_at_ms: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn cash_gives_change_and_refuses_too_little() {
        let t = CounterTender::cash(" 500 ").unwrap();
        assert_eq!(t.provider(), Provider::Cash);
        assert_eq!(t.method(), PayMethod::Cash);
        assert_eq!(t.change_for(m("404.50")), Ok(Some(m("95.50"))));
        assert_eq!(t.change_for(m("500")), Ok(Some(m("0"))));
        assert_eq!(t.change_for(m("500.01")), Err(TenderError::TooLittle { due: m("500.01"), tendered: m("500") }));
        assert_eq!(
            CounterTender::cash("5000000").unwrap().change_for(m("50")).unwrap_err().code(),
            "tendered_implausible"
        );
        for bad in ["", "abc", "-5", "0", "1.234", "1e3"] {
            assert_eq!(CounterTender::cash(bad), Err(TenderError::BadTendered), "{bad:?}");
        }
    }

    #[test]
    fn a_pos_slip_is_checked_and_named_by_its_reference() {
        let t = CounterTender::pos(" 240312345678 ", "t01", "6217").unwrap();
        assert_eq!(
            t,
            CounterTender::Pos {
                reference: "240312345678".into(),
                terminal: Some("T01".into()),
                card_last4: Some("6217".into())
            }
        );
        assert_eq!(t.change_for(m("1")), Ok(None));
        let s = SessionId::from_u128(7);
        assert_eq!(t.txn_id(&s), "pos-240312345678");
        assert_eq!(CounterTender::cash("1").unwrap().txn_id(&s), format!("cash-{s}"));
        assert_eq!(CounterTender::pos("12345", "", ""), Err(TenderError::BadReference));
        assert_eq!(CounterTender::pos("123456'--", "", ""), Err(TenderError::BadReference));
        assert_eq!(CounterTender::pos("123456", "终端", ""), Err(TenderError::BadTerminal));
        assert_eq!(CounterTender::pos("123456", "", "62a7"), Err(TenderError::BadLast4));
        assert_eq!(CounterTender::pos("123456", "", "").unwrap().fingerprint(), "pos:123456::");
    }
}
