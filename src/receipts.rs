//! Receipt numbers (PRODUCT.md F4): printable, numbered per hospital-local year without gaps.
//!
//! A payment's receipt is `R2026-00000001`; the negative (red, 冲红) receipt of a refund that
//! went back is `H2026-00000001`, in its own series, linked to the payment it reverses. The
//! store takes numbers from a per-(series, year) counter in the transaction that books the
//! money, so a booking that rolls back gives its number back and one that commits never loses
//! it: the numbers of a year are 1, 2, 3, … with none missing and none twice.

use crate::time::{to_beijing, Millis};
use chrono::Datelike;

/// Which run of numbers a receipt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiptSeries {
    /// A payment (收据).
    Payment,
    /// A refund's negative receipt (红字收据).
    Refund,
}

impl ReceiptSeries {
    pub const ALL: [ReceiptSeries; 2] = [ReceiptSeries::Payment, ReceiptSeries::Refund];

    /// The letter the number starts with, and the counter's key in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptSeries::Payment => "R",
            ReceiptSeries::Refund => "H",
        }
    }

    pub fn parse(s: &str) -> Option<ReceiptSeries> {
        ReceiptSeries::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The hospital-local year a receipt issued at this instant is numbered in.
pub fn receipt_year(at_ms: Millis) -> i32 {
    to_beijing(at_ms).map(|t| t.year()).unwrap_or(1970)
}

/// The printed number: series letter, year, eight digits.
pub fn receipt_number(series: ReceiptSeries, year: i32, no: u64) -> String {
    format!("{}{year:04}-{no:08}", series.as_str())
}

/// A receipt number read back: its series, year and number. Numbers written before F4
/// (`R20261122-01JD3K8X5Q7M`) are not in a series and read as `None`.
pub fn parse_receipt_number(s: &str) -> Option<(ReceiptSeries, i32, u64)> {
    let series = ReceiptSeries::parse(s.get(..1)?)?;
    let (year, no) = s.get(1..)?.split_once('-')?;
    if year.len() != 4
        || no.len() < 8
        || !year.bytes().all(|b| b.is_ascii_digit())
        || !no.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let no: u64 = no.parse().ok()?;
    if no == 0 {
        return None;
    }
    Some((series, year.parse().ok()?, no))
}

/// Hands out numbers from first numbers per year the store has reserved, in order. A booking
/// asks for as many as it needs and the store reserves them all at once.
#[derive(Debug, Default)]
pub struct ReceiptBook {
    next: std::collections::BTreeMap<(ReceiptSeries, i32), u64>,
}

impl ReceiptBook {
    /// `first` is the first number reserved for (series, year).
    pub fn new(first: impl IntoIterator<Item = ((ReceiptSeries, i32), u64)>) -> ReceiptBook {
        ReceiptBook { next: first.into_iter().collect() }
    }

    /// The next number for a receipt issued at `at_ms`; `None` when none was reserved for its
    /// year (a store defect: the count it reserved was too small).
    pub fn take(&mut self, series: ReceiptSeries, at_ms: Millis) -> Option<String> {
        let year = receipt_year(at_ms);
        let n = self.next.get_mut(&(series, year))?;
        let no = *n;
        *n += 1;
        Some(receipt_number(series, year, no))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back() {
        let r = receipt_number(ReceiptSeries::Payment, 2026, 42);
        assert_eq!(r, "R2026-00000042");
        assert_eq!(parse_receipt_number(&r), Some((ReceiptSeries::Payment, 2026, 42)));
        let h = receipt_number(ReceiptSeries::Refund, 2027, 123_456_789);
        assert_eq!(h, "H2027-123456789");
        assert_eq!(parse_receipt_number(&h), Some((ReceiptSeries::Refund, 2027, 123_456_789)));
        for bad in [
            "",
            "R",
            "R2026",
            "R2026-",
            "R2026-0000001",
            "X2026-00000001",
            "R20261122-01JD3K8X5Q7M",
            "R2026-00000000",
            "R2026-0000000a",
        ] {
            assert_eq!(parse_receipt_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_year_is_the_hospitals() {
        // 2026-12-31 16:30 UTC is 2027-01-01 00:30 in Beijing
        let ms = chrono::DateTime::parse_from_rfc3339("2026-12-31T16:30:00Z").unwrap().timestamp_millis();
        assert_eq!(receipt_year(ms), 2027);
        assert_eq!(receipt_year(ms - 3_600_000), 2026);
    }

    #[test]
    fn a_book_hands_out_what_was_reserved_in_order() {
        let ms = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().timestamp_millis();
        let mut book = ReceiptBook::new([((ReceiptSeries::Payment, 2026), 7)]);
        assert_eq!(book.take(ReceiptSeries::Payment, ms).as_deref(), Some("R2026-00000007"));
        assert_eq!(book.take(ReceiptSeries::Payment, ms).as_deref(), Some("R2026-00000008"));
        assert_eq!(book.take(ReceiptSeries::Refund, ms), None);
    }
}
