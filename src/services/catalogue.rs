//! Departments and the charge-item catalogue kept by an administrator (issue 15 #5): one item
//! edited in a form, or a whole CSV/XLSX file imported — checked by the same rules as the HIS's
//! intake, taken whole or not at all, audited.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{CurrentUser, Role};
use crate::ids::DepartmentId;
use crate::intake::import::{
    charge_item_rows, decode_text, department_rows, parse_csv, read_xlsx, FileError, ImportKind, ImportReport,
    RowError, MAX_IMPORT_BYTES,
};
use crate::intake::{CatalogueItem, ChargeItemInput, DepartmentData, FieldError};
use crate::ports::Upsert;
use sha2::{Digest, Sha256};

fn require_admin(actor: &CurrentUser) -> ServiceResult<()> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

fn file_refused(e: FileError) -> ServiceError {
    ServiceError::invalid(e.code, e.message)
}

fn row_error(line: usize, code: &str, e: FieldError) -> RowError {
    RowError { line, code: code.to_string(), error_code: e.code.to_string(), field: e.field, message: e.message }
}

fn duplicate(line: usize, code: &str, first: usize) -> RowError {
    RowError {
        line,
        code: code.to_string(),
        error_code: "duplicate_code".into(),
        field: "code".into(),
        message: format!("the same code as line {first}"),
    }
}

/// The file's rows as a table: an XLSX workbook (by its name or its zip signature) or CSV text.
fn table(file_name: &str, bytes: &[u8]) -> Result<Vec<(usize, Vec<String>)>, FileError> {
    let lower = file_name.to_lowercase();
    if lower.ends_with(".xls") {
        return Err(FileError {
            code: "bad_xlsx",
            message: "the old .xls format cannot be read: save the sheet as .xlsx or .csv".into(),
        });
    }
    if lower.ends_with(".xlsx") || bytes.starts_with(b"PK\x03\x04") {
        read_xlsx(bytes)
    } else {
        parse_csv(&decode_text(bytes)?)
    }
}

impl Services {
    /// The catalogue as an administrator sees it: disabled items too, at most 200.
    pub async fn catalogue(&self, actor: &CurrentUser, q: Option<&str>) -> ServiceResult<Vec<CatalogueItem>> {
        require_admin(actor)?;
        let q = q.map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 40 || q.chars().any(char::is_control)) {
            return Err(ServiceError::invalid("bad_query", "search for at most 40 characters"));
        }
        Ok(self.store.search_charge_items(q, 200).await?)
    }

    /// One catalogue item created or changed by an administrator (the HIS's rules), audited
    /// with what it was before.
    pub async fn save_charge_item(
        &self,
        actor: &CurrentUser,
        ip: &str,
        input: &ChargeItemInput,
    ) -> ServiceResult<Upsert> {
        require_admin(actor)?;
        let item = input.check().map_err(|e| ServiceError::invalid(e.code, format!("{}: {}", e.field, e.message)))?;
        let before = self.store.charge_items(std::slice::from_ref(&item.code)).await?.into_iter().next();
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "charge_item_saved",
            "charge_item",
            &item.code,
            serde_json::json!({ "before": before, "after": item }),
        );
        let out = self.store.upsert_charge_items(std::slice::from_ref(&item), self.now(), Some(&audit)).await?;
        Ok(out.into_iter().next().unwrap_or(Upsert::Unchanged))
    }

    /// Imports departments or catalogue items from a CSV or XLSX file. Every row is checked
    /// first; one refused row refuses the file (each refused row is listed with its line) and
    /// nothing is written. Otherwise all rows are written in one transaction with one audit
    /// line naming the file, its SHA-256 and the counts.
    pub async fn import_catalogue(
        &self,
        actor: &CurrentUser,
        ip: &str,
        kind: ImportKind,
        file_name: &str,
        bytes: &[u8],
    ) -> ServiceResult<ImportReport> {
        require_admin(actor)?;
        let file_name: String = file_name.chars().filter(|c| !c.is_control()).take(120).collect();
        if bytes.is_empty() {
            return Err(ServiceError::invalid("empty_file", "the file is empty"));
        }
        if bytes.len() > MAX_IMPORT_BYTES {
            return Err(ServiceError::invalid(
                "file_too_large",
                format!("the file is larger than {} KiB", MAX_IMPORT_BYTES / 1024),
            ));
        }
        let table = table(&file_name, bytes).map_err(file_refused)?;
        let mut report = ImportReport {
            kind,
            file_name: file_name.clone(),
            rows: 0,
            applied: false,
            created: 0,
            updated: 0,
            unchanged: 0,
            refused: Vec::new(),
        };
        let digest = hex::encode(Sha256::digest(bytes));
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let outcomes = match kind {
            ImportKind::Departments => {
                let rows = department_rows(&table).map_err(file_refused)?;
                report.rows = rows.len();
                let mut valid: Vec<DepartmentData> = Vec::new();
                for r in &rows {
                    match r.input.check() {
                        Ok(d) => match seen.get(&d.code) {
                            Some(first) => report.refused.push(duplicate(r.line, &d.code, *first)),
                            None => {
                                seen.insert(d.code.clone(), r.line);
                                valid.push(d);
                            }
                        },
                        Err(e) => report.refused.push(row_error(r.line, &r.input.code, e)),
                    }
                }
                if !report.refused.is_empty() {
                    return Ok(report);
                }
                let ids: Vec<DepartmentId> = valid.iter().map(|_| self.ids.new_id::<DepartmentId>()).collect();
                let audit = self.import_audit(actor, ip, kind, &file_name, &digest, valid.len());
                self.store.upsert_departments(&valid, &ids, Some(&audit)).await?
            }
            ImportKind::ChargeItems => {
                let (rows, refused) = charge_item_rows(&table).map_err(file_refused)?;
                report.rows = rows.len() + refused.len();
                report.refused = refused;
                let mut valid: Vec<CatalogueItem> = Vec::new();
                for r in &rows {
                    match r.input.check() {
                        Ok(it) => match seen.get(&it.code) {
                            Some(first) => report.refused.push(duplicate(r.line, &it.code, *first)),
                            None => {
                                seen.insert(it.code.clone(), r.line);
                                valid.push(it);
                            }
                        },
                        Err(e) => report.refused.push(row_error(r.line, &r.input.code, e)),
                    }
                }
                report.refused.sort_by_key(|e| e.line);
                if !report.refused.is_empty() {
                    return Ok(report);
                }
                let audit = self.import_audit(actor, ip, kind, &file_name, &digest, valid.len());
                self.store.upsert_charge_items(&valid, self.now(), Some(&audit)).await?
            }
        };
        for o in outcomes {
            match o {
                Upsert::Created => report.created += 1,
                Upsert::Updated => report.updated += 1,
                Upsert::Unchanged => report.unchanged += 1,
            }
        }
        report.applied = true;
        tracing::info!(
            kind = kind.as_str(),
            rows = report.rows,
            created = report.created,
            updated = report.updated,
            "catalogue imported"
        );
        Ok(report)
    }

    fn import_audit(
        &self,
        actor: &CurrentUser,
        ip: &str,
        kind: ImportKind,
        file_name: &str,
        digest: &str,
        rows: usize,
    ) -> crate::ports::AuditInput {
        self.audit_input(
            &Actor::user(actor, ip),
            "catalogue_imported",
            kind.as_str(),
            file_name,
            serde_json::json!({ "file": file_name, "sha256": digest, "rows": rows }),
        )
    }
}
