//! Money in Chinese yuan (CNY), exact to the fen (0.01).
//!
//! `Money` wraps a `rust_decimal::Decimal` that always has scale 2. It converts exactly to and
//! from fen (`i64`, what the database and WeChat Pay's wire use) and to the `"12.34"` strings of
//! Alipay's wire. Nothing here ever touches a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Largest amount we accept anywhere: ten billion yuan. Far above any bill, far below the
/// range where fen would overflow an `i64`.
pub const MAX_ABS_FEN: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty amount")]
    Empty,
    #[error("not a valid amount: {0:?}")]
    Invalid(String),
    #[error("amount has more than two decimal places (below one fen): {0:?}")]
    SubFen(String),
    #[error("amount out of range")]
    OutOfRange,
    #[error("arithmetic overflow")]
    Overflow,
}

/// An exact CNY amount; may be negative (ledger postings, refunds shown as negatives).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Exact conversion from fen. Panics never; values beyond [`MAX_ABS_FEN`] are rejected.
    pub fn from_fen(fen: i64) -> Result<Money, MoneyError> {
        if fen.checked_abs().is_none_or(|a| a > MAX_ABS_FEN) {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Money(Decimal::new(fen, 2)))
    }

    /// Exact conversion to fen.
    pub fn fen(self) -> i64 {
        // Invariant: scale 2 and |value| <= MAX_ABS_FEN, so the mantissa is the fen count.
        let m = self.0.mantissa();
        debug_assert_eq!(self.0.scale(), 2);
        m as i64
    }

    /// From a decimal; rejects anything that is not a whole number of fen.
    pub fn from_decimal(d: Decimal) -> Result<Money, MoneyError> {
        if d.abs() > Decimal::new(MAX_ABS_FEN, 2) {
            return Err(MoneyError::OutOfRange);
        }
        let mut d = d;
        if d.scale() > 2 {
            let n = d.normalize();
            if n.scale() > 2 {
                return Err(MoneyError::SubFen(d.to_string()));
            }
            d = n;
        }
        d.rescale(2);
        if d.mantissa().unsigned_abs() > MAX_ABS_FEN as u128 {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Money(d))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Parses what people and providers write: `1234`, `1234.5`, `1,234.50`, `¥1,234.50`,
    /// `￥12`, `-¥3.00`, `-12.30`. Thousands separators must be well placed; more than two
    /// decimals is an error unless the extra digits are zeros.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        let invalid = || MoneyError::Invalid(input.to_string());
        let (negative, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let rest = rest.strip_prefix('¥').or_else(|| rest.strip_prefix('￥')).unwrap_or(rest);
        let (negative, rest) = match (negative, rest.strip_prefix('-')) {
            (false, Some(r)) => (true, r),
            (true, Some(_)) => return Err(invalid()),
            (n, None) => (n, rest),
        };
        let (int_part, frac_part) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        if int_part.is_empty() {
            return Err(invalid());
        }
        let digits: String = if int_part.contains(',') {
            let groups: Vec<&str> = int_part.split(',').collect();
            let first = groups[0];
            if first.is_empty() || first.len() > 3 || groups[1..].iter().any(|g| g.len() != 3) {
                return Err(invalid());
            }
            groups.concat()
        } else {
            int_part.to_string()
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let frac = match frac_part {
            None => "",
            Some(f) => {
                if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                f
            }
        };
        if frac.len() > 2 && frac[2..].bytes().any(|b| b != b'0') {
            return Err(MoneyError::SubFen(input.to_string()));
        }
        let digits = digits.trim_start_matches('0');
        if digits.len() > 13 {
            return Err(MoneyError::OutOfRange);
        }
        let int_value: i64 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| invalid())? };
        let mut frac2 = String::from(&frac[..frac.len().min(2)]);
        while frac2.len() < 2 {
            frac2.push('0');
        }
        let frac_value: i64 = frac2.parse().map_err(|_| invalid())?;
        let fen = int_value.checked_mul(100).and_then(|v| v.checked_add(frac_value)).ok_or(MoneyError::OutOfRange)?;
        Money::from_fen(if negative { -fen } else { fen })
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let fen = self.fen().checked_add(other.fen()).ok_or(MoneyError::Overflow)?;
        Money::from_fen(fen).map_err(|_| MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let fen = self.fen().checked_sub(other.fen()).ok_or(MoneyError::Overflow)?;
        Money::from_fen(fen).map_err(|_| MoneyError::Overflow)
    }

    /// `self × quantity` (a bill line: unit price × quantity).
    pub fn checked_mul_int(self, quantity: i64) -> Result<Money, MoneyError> {
        let fen = self.fen().checked_mul(quantity).ok_or(MoneyError::Overflow)?;
        Money::from_fen(fen).map_err(|_| MoneyError::Overflow)
    }

    pub fn abs(self) -> Money {
        Money(self.0.abs())
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_positive(self) -> bool {
        self.0.is_sign_positive() && !self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// Sum of many amounts; `None` on overflow.
    pub fn sum<I: IntoIterator<Item = Money>>(items: I) -> Result<Money, MoneyError> {
        items.into_iter().try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }

    /// `"1234.56"`: plain decimal with two places, no symbol and no separators (Alipay's wire,
    /// CSV exports, JSON).
    pub fn plain(self) -> String {
        let fen = self.fen();
        let sign = if fen < 0 { "-" } else { "" };
        let a = fen.unsigned_abs();
        format!("{sign}{}.{:02}", a / 100, a % 100)
    }

    /// `"¥1,234.56"`, `"-¥12.00"`: what people read.
    pub fn display(self) -> String {
        let fen = self.fen();
        let sign = if fen < 0 { "-" } else { "" };
        let a = fen.unsigned_abs();
        let int = (a / 100).to_string();
        let mut grouped = String::with_capacity(int.len() + int.len() / 3);
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}¥{grouped}.{:02}", a % 100)
    }

    /// Splits `self` (≥ 0) into parts proportional to `weights` (each ≥ 0, not all zero), so that
    /// the parts sum exactly to `self`. The remainder fen go, one each, to the parts with the
    /// largest fractional shares; ties go to the earlier part. Deterministic.
    pub fn allocate(self, weights: &[i64]) -> Result<Vec<Money>, MoneyError> {
        let total = self.fen();
        if total < 0 || weights.is_empty() || weights.iter().any(|w| *w < 0) {
            return Err(MoneyError::Invalid("allocation".into()));
        }
        let wsum: i128 = weights.iter().map(|w| *w as i128).sum();
        if wsum == 0 {
            return Err(MoneyError::Invalid("allocation weights sum to zero".into()));
        }
        let mut parts: Vec<i64> = Vec::with_capacity(weights.len());
        let mut rems: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
        for (i, w) in weights.iter().enumerate() {
            let num = total as i128 * *w as i128;
            parts.push((num / wsum) as i64);
            rems.push((num % wsum, i));
        }
        let mut left = total - parts.iter().sum::<i64>();
        rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in rems {
            if left == 0 {
                break;
            }
            parts[i] += 1;
            left -= 1;
        }
        parts.into_iter().map(Money::from_fen).collect()
    }
}

impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({})", self.plain())
    }
}

/// Stored amounts are fen.
impl TryFrom<i64> for Money {
    type Error = MoneyError;
    fn try_from(fen: i64) -> Result<Money, MoneyError> {
        Money::from_fen(fen)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

/// JSON carries money as a string `"1234.56"`, never as a number.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.plain())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(m("1234.5").fen(), 123_450);
        assert_eq!(m("¥1,234.50").fen(), 123_450);
        assert_eq!(m("￥1234").fen(), 123_400);
        assert_eq!(m("0.01").fen(), 1);
        assert_eq!(m("-¥3.00").fen(), -300);
        assert_eq!(m("¥-3").fen(), -300);
        assert_eq!(m(" 12.30 ").fen(), 1230);
        assert_eq!(m("1,000,000").fen(), 100_000_000);
        assert_eq!(m("12.300").fen(), 1230);
        assert_eq!(m("007.10").fen(), 710);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "", " ", "abc", "1.2.3", "1,23.00", "12,3456", ",123", "1e5", "NaN", ".5", "5.", "+5", "--5", "-¥-5", "¥",
            "1 000", "12.3a", "１２",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Money::parse("1.005"), Err(MoneyError::SubFen("1.005".into())));
        assert_eq!(Money::parse("99999999999999"), Err(MoneyError::OutOfRange));
    }

    #[test]
    fn formats() {
        assert_eq!(m("1234.56").display(), "¥1,234.56");
        assert_eq!(m("0").display(), "¥0.00");
        assert_eq!(m("-1234567.8").display(), "-¥1,234,567.80");
        assert_eq!(m("999").display(), "¥999.00");
        assert_eq!(m("1000").display(), "¥1,000.00");
        assert_eq!(m("88.8").plain(), "88.80");
        assert_eq!(m("-0.05").plain(), "-0.05");
        assert_eq!(Money::ZERO.plain(), "0.00");
    }

    #[test]
    fn decimal_conversion_is_exact() {
        use rust_decimal::Decimal;
        assert_eq!(Money::from_decimal(Decimal::new(12345, 3)).unwrap_err(), MoneyError::SubFen("12.345".into()));
        assert_eq!(Money::from_decimal(Decimal::new(12340, 3)).unwrap().fen(), 1234);
        assert_eq!(Money::from_decimal(Decimal::new(5, 0)).unwrap().fen(), 500);
        assert!(Money::from_fen(i64::MIN).is_err());
        assert!(Money::from_fen(MAX_ABS_FEN + 1).is_err());
    }

    #[test]
    fn serde_as_string() {
        let v = serde_json::to_string(&m("12.5")).unwrap();
        assert_eq!(v, "\"12.50\"");
        let back: Money = serde_json::from_str("\"¥1,000.00\"").unwrap();
        assert_eq!(back.fen(), 100_000);
        assert!(serde_json::from_str::<Money>("12.5").is_err());
        assert!(serde_json::from_str::<Money>("\"1.001\"").is_err());
    }

    #[test]
    fn allocation_sums_exactly() {
        let parts = m("100.00").allocate(&[1, 1, 1]).unwrap();
        assert_eq!(parts.iter().map(|p| p.fen()).collect::<Vec<_>>(), vec![3334, 3333, 3333]);
        let parts = m("0.05").allocate(&[3, 0, 7]).unwrap();
        assert_eq!(parts.iter().map(|p| p.fen()).collect::<Vec<_>>(), vec![2, 0, 3]);
        assert!(m("1").allocate(&[]).is_err());
        assert!(m("1").allocate(&[0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn fen_round_trip(fen in -MAX_ABS_FEN..=MAX_ABS_FEN) {
            let money = Money::from_fen(fen).unwrap();
            prop_assert_eq!(money.fen(), fen);
            prop_assert_eq!(Money::from_decimal(money.as_decimal()).unwrap(), money);
        }

        #[test]
        fn display_and_plain_round_trip(fen in -MAX_ABS_FEN..=MAX_ABS_FEN) {
            let money = Money::from_fen(fen).unwrap();
            prop_assert_eq!(Money::parse(&money.display()).unwrap(), money);
            prop_assert_eq!(Money::parse(&money.plain()).unwrap(), money);
            prop_assert_eq!(money.to_string(), money.display());
        }

        #[test]
        fn add_sub_inverse(a in -MAX_ABS_FEN/2..=MAX_ABS_FEN/2, b in -MAX_ABS_FEN/2..=MAX_ABS_FEN/2) {
            let (x, y) = (Money::from_fen(a).unwrap(), Money::from_fen(b).unwrap());
            let s = x.checked_add(y).unwrap();
            prop_assert_eq!(s.fen(), a + b);
            prop_assert_eq!(s.checked_sub(y).unwrap(), x);
            prop_assert_eq!(x.checked_add(y).unwrap(), y.checked_add(x).unwrap());
        }

        #[test]
        fn decimal_arithmetic_agrees(a in -MAX_ABS_FEN/2..=MAX_ABS_FEN/2, b in -MAX_ABS_FEN/2..=MAX_ABS_FEN/2) {
            let (x, y) = (Money::from_fen(a).unwrap(), Money::from_fen(b).unwrap());
            prop_assert_eq!(x.checked_add(y).unwrap().as_decimal(), x.as_decimal() + y.as_decimal());
        }

        #[test]
        fn allocation_is_exact(total in 0i64..10_000_000, weights in proptest::collection::vec(0i64..100_000, 1..8)) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = Money::from_fen(total).unwrap().allocate(&weights).unwrap();
            prop_assert_eq!(parts.iter().map(|p| p.fen()).sum::<i64>(), total);
            for (p, w) in parts.iter().zip(&weights) {
                if *w == 0 { prop_assert_eq!(p.fen(), 0); }
                prop_assert!(p.fen() >= 0);
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,24}") {
            let _ = Money::parse(&s);
        }
    }
}
