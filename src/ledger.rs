//! Double-entry ledger rules (PRODUCT.md L1).
//!
//! A journal entry is a set of postings whose signed amounts sum to zero: debits are positive,
//! credits negative. Account balances derive from postings only. The database checks the same
//! invariant when an entry is sealed (see the migrations), so a bug here cannot unbalance the books.

use crate::checkout::payable::PayableId;
use crate::ids::BillId;
use crate::money::Money;
use crate::payments::Provider;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Asset,
    Liability,
    Income,
    Expense,
}

/// The chart of accounts ClinicPay posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Account {
    /// 银行存款
    Bank,
    /// 支付宝待清算: money Alipay holds for us until settlement.
    AlipayClearing,
    /// 微信支付待清算
    WechatClearing,
    /// 银行卡待清算
    BankCardClearing,
    /// 待处理收款: received but not allocated to a bill (late or duplicate payments).
    UnallocatedReceipts,
    /// 医疗收入
    MedicalIncome,
    /// 支付手续费
    PaymentFees,
}

impl Account {
    pub const ALL: [Account; 7] = [
        Account::Bank,
        Account::AlipayClearing,
        Account::WechatClearing,
        Account::BankCardClearing,
        Account::UnallocatedReceipts,
        Account::MedicalIncome,
        Account::PaymentFees,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Account::Bank => "1002",
            Account::AlipayClearing => "1012.01",
            Account::WechatClearing => "1012.02",
            Account::BankCardClearing => "1012.03",
            Account::UnallocatedReceipts => "2241",
            Account::MedicalIncome => "6001",
            Account::PaymentFees => "6603",
        }
    }

    pub fn parse(code: &str) -> Option<Account> {
        Account::from_code(code)
    }

    pub fn from_code(code: &str) -> Option<Account> {
        Account::ALL.into_iter().find(|a| a.code() == code)
    }

    pub fn kind(self) -> AccountKind {
        match self {
            Account::Bank | Account::AlipayClearing | Account::WechatClearing | Account::BankCardClearing => {
                AccountKind::Asset
            }
            Account::UnallocatedReceipts => AccountKind::Liability,
            Account::MedicalIncome => AccountKind::Income,
            Account::PaymentFees => AccountKind::Expense,
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Account::Bank => "银行存款",
            Account::AlipayClearing => "支付宝待清算",
            Account::WechatClearing => "微信支付待清算",
            Account::BankCardClearing => "银行卡待清算",
            Account::UnallocatedReceipts => "待处理收款",
            Account::MedicalIncome => "医疗收入",
            Account::PaymentFees => "支付手续费",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Account::Bank => "Bank deposits",
            Account::AlipayClearing => "Alipay clearing",
            Account::WechatClearing => "WeChat Pay clearing",
            Account::BankCardClearing => "Bank card clearing",
            Account::UnallocatedReceipts => "Unallocated receipts",
            Account::MedicalIncome => "Medical service income",
            Account::PaymentFees => "Payment fees",
        }
    }

    /// Where a provider's money sits until it settles to our bank account.
    pub fn clearing_for(p: Provider) -> Account {
        match p {
            Provider::Alipay => Account::AlipayClearing,
            Provider::WechatPay => Account::WechatClearing,
            Provider::Bank => Account::BankCardClearing,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A session paid: clearing ← income per bill.
    Payment,
    /// Money that could not be allocated (late payment, bills already paid).
    UnallocatedReceipt,
    /// Unallocated money sent back to the payer.
    UnallocatedRefund,
    /// A refund of a paid bill.
    Refund,
}

impl EntryKind {
    pub const ALL: [EntryKind; 4] =
        [EntryKind::Payment, EntryKind::UnallocatedReceipt, EntryKind::UnallocatedRefund, EntryKind::Refund];

    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Payment => "payment",
            EntryKind::UnallocatedReceipt => "unallocated_receipt",
            EntryKind::UnallocatedRefund => "unallocated_refund",
            EntryKind::Refund => "refund",
        }
    }
}

crate::parse_from_string!(EntryKind, "journal entry kind");
crate::parse_from_string!(Account, "account code");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    /// Debit positive, credit negative.
    pub amount: Money,
    /// The bill this line allocates to, when it does.
    pub bill_id: Option<BillId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a journal entry needs at least two postings")]
    TooFewPostings,
    #[error("a posting of zero")]
    ZeroPosting,
    #[error("postings do not balance: off by {0}")]
    Unbalanced(Money),
    #[error("amount overflow")]
    Overflow,
}

/// Validated postings of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Postings(Vec<Posting>);

impl Postings {
    pub fn new(postings: Vec<Posting>) -> Result<Postings, LedgerError> {
        if postings.len() < 2 {
            return Err(LedgerError::TooFewPostings);
        }
        if postings.iter().any(|p| p.amount.is_zero()) {
            return Err(LedgerError::ZeroPosting);
        }
        let sum = Money::sum(postings.iter().map(|p| p.amount)).map_err(|_| LedgerError::Overflow)?;
        if !sum.is_zero() {
            return Err(LedgerError::Unbalanced(sum));
        }
        Ok(Postings(postings))
    }

    pub fn lines(&self) -> &[Posting] {
        &self.0
    }

    /// A payment of several payables through one provider: one debit to the clearing account,
    /// one credit per payable to the account its kind is credited to (income for a bill).
    pub fn payment(provider: Provider, allocations: &[(PayableId, Money)]) -> Result<Postings, LedgerError> {
        let total = Money::sum(allocations.iter().map(|(_, m)| *m)).map_err(|_| LedgerError::Overflow)?;
        let mut lines = vec![Posting { account: Account::clearing_for(provider), amount: total, bill_id: None }];
        lines.extend(allocations.iter().map(|(payable, m)| Posting {
            account: payable.kind().credit_account(),
            amount: -*m,
            bill_id: payable.bill().cloned(),
        }));
        Postings::new(lines)
    }

    /// Money received that belongs to no bill (yet).
    pub fn unallocated_receipt(provider: Provider, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::clearing_for(provider), amount, bill_id: None },
            Posting { account: Account::UnallocatedReceipts, amount: -amount, bill_id: None },
        ])
    }

    /// Part of a paid bill returned to the payer: the income is reversed against the account
    /// the money leaves from (the provider's clearing account, or the bank for a refund paid by
    /// hand).
    pub fn bill_refund(from: Account, bill_id: &BillId, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::MedicalIncome, amount, bill_id: Some(bill_id.clone()) },
            Posting { account: from, amount: -amount, bill_id: None },
        ])
    }

    /// Unallocated money returned to the payer.
    pub fn unallocated_refund(provider: Provider, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::UnallocatedReceipts, amount, bill_id: None },
            Posting { account: Account::clearing_for(provider), amount: -amount, bill_id: None },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn payment_entry_balances() {
        let bill = |n| PayableId::Bill(BillId::from_u128(n));
        let p = Postings::payment(Provider::Alipay, &[(bill(1), m("320")), (bill(2), m("980")), (bill(3), m("200"))])
            .unwrap();
        assert_eq!(p.lines()[1].bill_id, Some(BillId::from_u128(1)));
        assert_eq!(p.lines()[1].account, Account::MedicalIncome);
        assert_eq!(p.lines().len(), 4);
        assert_eq!(p.lines()[0].amount, m("1500"));
        assert_eq!(Money::sum(p.lines().iter().map(|l| l.amount)).unwrap(), Money::ZERO);
    }

    #[test]
    fn rejects_unbalanced() {
        let err = Postings::new(vec![
            Posting { account: Account::Bank, amount: m("1"), bill_id: None },
            Posting { account: Account::MedicalIncome, amount: m("-0.99"), bill_id: None },
        ])
        .unwrap_err();
        assert_eq!(err, LedgerError::Unbalanced(m("0.01")));
        assert_eq!(
            Postings::new(vec![Posting { account: Account::Bank, amount: m("1"), bill_id: None }]),
            Err(LedgerError::TooFewPostings)
        );
    }

    #[test]
    fn codes_round_trip() {
        for a in Account::ALL {
            assert_eq!(Account::from_code(a.code()), Some(a));
        }
    }
}
