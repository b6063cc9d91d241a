//! Shift handover (L3, 交班): open with the float, close by counting the drawer, confirmed by the
//! next cashier or finance. Every step is in the audit log with before and after.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Access, CurrentUser};
use crate::ids::ShiftId;
use crate::money::Money;
use crate::ports::NewShift;
use crate::shifts::{ShiftBoard, ShiftRefusal, ShiftStatus, ShiftView};

fn require(caller: &CurrentUser, access: Access) -> ServiceResult<()> {
    if access.allows(Some(caller.role)) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

fn refusal(r: ShiftRefusal) -> ServiceError {
    ServiceError::conflict(r.code(), r.message())
}

/// Cash as typed at the desk: yuan, not negative, at most ¥10,000,000.
fn cash(input: &str, code: &'static str) -> ServiceResult<Money> {
    let m = Money::parse(input.trim()).map_err(|e| ServiceError::invalid(code, format!("amount: {e}")))?;
    if m < Money::ZERO || m.fen() > 1_000_000_000 {
        return Err(ServiceError::invalid(code, "the amount must be between ¥0.00 and ¥10,000,000.00"));
    }
    Ok(m)
}

fn shift_id(id: &str) -> ServiceResult<String> {
    ShiftId::parse(id.trim())
        .map(|i| i.to_string())
        .map_err(|_| ServiceError::invalid("bad_shift_id", "not a shift id"))
}

impl Services {
    pub async fn open_shift(&self, caller: &CurrentUser, ip: &str, float: &str) -> ServiceResult<ShiftView> {
        require(caller, Access::MoneyDesk)?;
        let float = cash(float, "bad_float")?;
        let id = self.ids.new_id::<ShiftId>().to_string();
        let detail = serde_json::json!({
            "float": float.plain(),
            "before": { "status": null },
            "after": { "status": "open" },
        });
        let audit = self.audit_input(&Actor::user(caller, ip), "shift_opened", "shift", &id, detail);
        let s = NewShift {
            id,
            cashier_id: caller.id.clone(),
            cashier_name: caller.display_name.clone(),
            float,
            at_ms: self.now(),
            audit,
        };
        self.store.open_shift(&s).await?.map_err(refusal)
    }

    pub async fn shift(&self, caller: &CurrentUser, id: &str) -> ServiceResult<ShiftView> {
        require(caller, Access::Billing)?;
        let id = shift_id(id)?;
        // the desk's sheets are open to the desk: the next cashier confirms them
        let s = self.store.shift(&id, self.now()).await?.ok_or(ServiceError::NotFound("shift"))?;
        Ok(s)
    }

    pub async fn shift_board(&self, caller: &CurrentUser) -> ServiceResult<ShiftBoard> {
        require(caller, Access::Billing)?;
        let now = self.now();
        let mine = self.store.open_shift_of(&caller.id, now).await?;
        let to_confirm = self
            .store
            .shifts(&[ShiftStatus::Closed], 100, now)
            .await?
            .into_iter()
            .filter(|s| s.cashier_id != caller.id)
            .collect();
        let recent = self
            .store
            .shifts(&[ShiftStatus::Closed, ShiftStatus::Confirmed], 30, now)
            .await?
            .into_iter()
            .filter(|s| caller.role != crate::auth::Role::Cashier || s.cashier_id == caller.id)
            .collect();
        Ok(ShiftBoard { mine, to_confirm, recent })
    }

    pub async fn close_shift(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        counted: &str,
        note: &str,
    ) -> ServiceResult<ShiftView> {
        require(caller, Access::MoneyDesk)?;
        let id = shift_id(id)?;
        let counted = cash(counted, "bad_counted_cash")?;
        let note = note.trim();
        if note.chars().count() > 500 || note.chars().any(char::is_control) {
            return Err(ServiceError::invalid("bad_note", "the note must be at most 500 characters of text"));
        }
        let detail = serde_json::json!({
            "counted": counted.plain(),
            "note": note,
            "before": { "status": "open" },
            "after": { "status": "closed" },
        });
        let audit = self.audit_input(&Actor::user(caller, ip), "shift_closed", "shift", &id, detail);
        self.store.close_shift(&id, &caller.id, counted, note, self.now(), &audit).await?.map_err(refusal)
    }

    pub async fn confirm_shift(&self, caller: &CurrentUser, ip: &str, id: &str) -> ServiceResult<ShiftView> {
        require(caller, Access::MoneyDesk)?;
        let id = shift_id(id)?;
        let detail = serde_json::json!({
            "before": { "status": "closed" },
            "after": { "status": "confirmed" },
        });
        let audit = self.audit_input(&Actor::user(caller, ip), "shift_confirmed", "shift", &id, detail);
        self.store.confirm_shift(&id, &caller.id, &caller.display_name, self.now(), &audit).await?.map_err(refusal)
    }
}
