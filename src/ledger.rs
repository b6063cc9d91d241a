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

impl AccountKind {
    pub fn label_zh(self) -> &'static str {
        match self {
            AccountKind::Asset => "资产",
            AccountKind::Liability => "负债",
            AccountKind::Income => "收入",
            AccountKind::Expense => "费用",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            AccountKind::Asset => "Asset",
            AccountKind::Liability => "Liability",
            AccountKind::Income => "Income",
            AccountKind::Expense => "Expense",
        }
    }
}

/// The chart of accounts ClinicPay posts to. Income is kept per department as an auxiliary
/// dimension (辅助核算): each income posting names its bill, and the bill its department.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Account {
    /// 库存现金: cash taken at the counter.
    Cash,
    /// 银行存款
    Bank,
    /// 支付宝待清算: money Alipay holds for us until settlement.
    AlipayClearing,
    /// 微信支付待清算
    WechatClearing,
    /// 银行卡待清算
    BankCardClearing,
    /// POS 刷卡待清算: card payments on the counter's POS terminal, until the acquirer settles.
    PosClearing,
    /// 应收医疗款: bills issued and not yet paid.
    PatientReceivable,
    /// 应收保险公司款: the insurers' shares the hospital advanced.
    InsurerReceivable,
    /// 应付退款: refunds approved and not yet paid back.
    RefundsPayable,
    /// 预收医疗款: patients' deposits (预交金) held.
    DepositsHeld,
    /// 保险公司预存款: what insurers prepaid as credit for advances.
    InsurerCredit,
    /// 待处理收款: received but not allocated to a bill (late or duplicate payments).
    UnallocatedReceipts,
    /// 医疗收入
    MedicalIncome,
    /// 支付手续费
    PaymentFees,
}

impl Account {
    pub const ALL: [Account; 14] = [
        Account::Cash,
        Account::Bank,
        Account::AlipayClearing,
        Account::WechatClearing,
        Account::BankCardClearing,
        Account::PosClearing,
        Account::PatientReceivable,
        Account::InsurerReceivable,
        Account::RefundsPayable,
        Account::DepositsHeld,
        Account::InsurerCredit,
        Account::UnallocatedReceipts,
        Account::MedicalIncome,
        Account::PaymentFees,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Account::Cash => "1001",
            Account::Bank => "1002",
            Account::AlipayClearing => "1012.01",
            Account::WechatClearing => "1012.02",
            Account::BankCardClearing => "1012.03",
            Account::PosClearing => "1012.04",
            Account::PatientReceivable => "1221",
            Account::InsurerReceivable => "1222",
            Account::RefundsPayable => "2203",
            Account::DepositsHeld => "2204",
            Account::InsurerCredit => "2205",
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
            Account::Cash
            | Account::Bank
            | Account::AlipayClearing
            | Account::WechatClearing
            | Account::BankCardClearing
            | Account::PosClearing
            | Account::PatientReceivable
            | Account::InsurerReceivable => AccountKind::Asset,
            Account::RefundsPayable | Account::DepositsHeld | Account::InsurerCredit | Account::UnallocatedReceipts => {
                AccountKind::Liability
            }
            Account::MedicalIncome => AccountKind::Income,
            Account::PaymentFees => AccountKind::Expense,
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Account::Cash => "库存现金",
            Account::Bank => "银行存款",
            Account::AlipayClearing => "支付宝待清算",
            Account::WechatClearing => "微信支付待清算",
            Account::BankCardClearing => "银行卡待清算",
            Account::PosClearing => "POS 刷卡待清算",
            Account::PatientReceivable => "应收医疗款",
            Account::InsurerReceivable => "应收保险公司款",
            Account::RefundsPayable => "应付退款",
            Account::DepositsHeld => "预收医疗款",
            Account::InsurerCredit => "保险公司预存款",
            Account::UnallocatedReceipts => "待处理收款",
            Account::MedicalIncome => "医疗收入",
            Account::PaymentFees => "支付手续费",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Account::Cash => "Cash on hand",
            Account::Bank => "Bank deposits",
            Account::AlipayClearing => "Alipay clearing",
            Account::WechatClearing => "WeChat Pay clearing",
            Account::BankCardClearing => "Bank card clearing",
            Account::PosClearing => "POS card clearing",
            Account::PatientReceivable => "Patient receivables",
            Account::InsurerReceivable => "Insurer receivables",
            Account::RefundsPayable => "Refunds payable",
            Account::DepositsHeld => "Patient deposits held",
            Account::InsurerCredit => "Insurer prepaid credit",
            Account::UnallocatedReceipts => "Unallocated receipts",
            Account::MedicalIncome => "Medical service income",
            Account::PaymentFees => "Payment fees",
        }
    }

    /// Is this one of the providers' clearing accounts?
    pub fn is_clearing(self) -> bool {
        matches!(
            self,
            Account::AlipayClearing | Account::WechatClearing | Account::BankCardClearing | Account::PosClearing
        )
    }

    /// The provider whose clearing account this is.
    pub fn clearing_provider(self) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| Account::clearing_for(*p) == self)
    }

    /// Where a provider's money sits until it settles to our bank account (cash taken at the
    /// counter sits in the drawer: 库存现金).
    pub fn clearing_for(p: Provider) -> Account {
        match p {
            Provider::Alipay => Account::AlipayClearing,
            Provider::WechatPay => Account::WechatClearing,
            Provider::Bank => Account::BankCardClearing,
            Provider::Cash => Account::Cash,
            Provider::Pos => Account::PosClearing,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A bill issued: receivable ← income (accrual: income is earned when the bill is issued).
    BillIssued,
    /// A bill voided before payment: the issue reversed.
    BillVoided,
    /// A session paid: clearing ← receivable per bill.
    Payment,
    /// Money that could not be allocated (late payment, bills already paid).
    UnallocatedReceipt,
    /// Unallocated money sent back to the payer.
    UnallocatedRefund,
    /// A refund of a paid bill approved: income ← refunds payable.
    RefundApproved,
    /// A refund of a paid bill paid back: refunds payable ← clearing (or bank).
    Refund,
    /// A correction entered by finance (dated the day it is made).
    Adjustment,
}

impl EntryKind {
    pub const ALL: [EntryKind; 8] = [
        EntryKind::BillIssued,
        EntryKind::BillVoided,
        EntryKind::Payment,
        EntryKind::UnallocatedReceipt,
        EntryKind::UnallocatedRefund,
        EntryKind::RefundApproved,
        EntryKind::Refund,
        EntryKind::Adjustment,
    ];

    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::BillIssued => "bill_issued",
            EntryKind::BillVoided => "bill_voided",
            EntryKind::Payment => "payment",
            EntryKind::UnallocatedReceipt => "unallocated_receipt",
            EntryKind::UnallocatedRefund => "unallocated_refund",
            EntryKind::RefundApproved => "refund_approved",
            EntryKind::Refund => "refund",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            EntryKind::BillIssued => "开单",
            EntryKind::BillVoided => "作废",
            EntryKind::Payment => "收款",
            EntryKind::UnallocatedReceipt => "待处理收款",
            EntryKind::UnallocatedRefund => "退回待处理款",
            EntryKind::RefundApproved => "退款批准",
            EntryKind::Refund => "退款支付",
            EntryKind::Adjustment => "调整",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            EntryKind::BillIssued => "Bill issued",
            EntryKind::BillVoided => "Bill voided",
            EntryKind::Payment => "Payment",
            EntryKind::UnallocatedReceipt => "Unallocated receipt",
            EntryKind::UnallocatedRefund => "Unallocated money returned",
            EntryKind::RefundApproved => "Refund approved",
            EntryKind::Refund => "Refund paid",
            EntryKind::Adjustment => "Adjustment",
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

    /// A bill issued: the patient owes it, the department earned it.
    pub fn bill_issued(bill_id: &BillId, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::PatientReceivable, amount, bill_id: Some(bill_id.clone()) },
            Posting { account: Account::MedicalIncome, amount: -amount, bill_id: Some(bill_id.clone()) },
        ])
    }

    /// A bill voided before it was paid: its issue reversed.
    pub fn bill_voided(bill_id: &BillId, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::MedicalIncome, amount, bill_id: Some(bill_id.clone()) },
            Posting { account: Account::PatientReceivable, amount: -amount, bill_id: Some(bill_id.clone()) },
        ])
    }

    /// Part of a paid bill approved for refund: the income is reversed and owed to the payer.
    pub fn refund_approved(bill_id: &BillId, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::MedicalIncome, amount, bill_id: Some(bill_id.clone()) },
            Posting { account: Account::RefundsPayable, amount: -amount, bill_id: Some(bill_id.clone()) },
        ])
    }

    /// An approved refund paid back, from the account the money leaves (the provider's clearing
    /// account, or the bank for a refund paid by hand).
    pub fn bill_refund(from: Account, bill_id: &BillId, amount: Money) -> Result<Postings, LedgerError> {
        Postings::new(vec![
            Posting { account: Account::RefundsPayable, amount, bill_id: Some(bill_id.clone()) },
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
        assert_eq!(p.lines()[1].account, Account::PatientReceivable);
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
    fn a_bill_issued_paid_refunded_in_part_leaves_income_net_of_the_refund() {
        let b = BillId::from_u128(7);
        let entries = [
            Postings::bill_issued(&b, m("300")).unwrap(),
            Postings::payment(Provider::WechatPay, &[(PayableId::Bill(b.clone()), m("300"))]).unwrap(),
            Postings::refund_approved(&b, m("120")).unwrap(),
            Postings::bill_refund(Account::WechatClearing, &b, m("120")).unwrap(),
        ];
        let balance = |a: Account| {
            Money::sum(entries.iter().flat_map(|e| e.lines()).filter(|l| l.account == a).map(|l| l.amount)).unwrap()
        };
        assert_eq!(balance(Account::PatientReceivable), Money::ZERO);
        assert_eq!(balance(Account::RefundsPayable), Money::ZERO);
        assert_eq!(balance(Account::MedicalIncome), m("-180"));
        assert_eq!(balance(Account::WechatClearing), m("180"));
    }

    #[test]
    fn codes_round_trip() {
        for a in Account::ALL {
            assert_eq!(Account::from_code(a.code()), Some(a));
        }
    }
}
