//! Importing departments and the charge-item catalogue from a spreadsheet (issue 15 #5): a CSV
//! file (UTF-8 or GBK from Excel, with or without a BOM) or an XLSX workbook's first sheet, a
//! header row naming the columns in English or Chinese, then one row per entry. The rows become
//! the same inputs the HIS sends ([`DepartmentInput`], [`ChargeItemInput`]) and are checked by the
//! same rules; the file is taken whole or not at all.

use super::{ChargeItemInput, DepartmentInput};
use crate::billing::ItemCategory;
use serde::{Deserialize, Serialize};

/// At most this many rows in one file.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// At most this many bytes in one file.
pub const MAX_IMPORT_BYTES: usize = 1024 * 1024;

/// What is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Departments,
    ChargeItems,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Departments => "departments",
            ImportKind::ChargeItems => "charge_items",
        }
    }

    pub fn parse(s: &str) -> Option<ImportKind> {
        [ImportKind::Departments, ImportKind::ChargeItems].into_iter().find(|k| k.as_str() == s)
    }
}

/// Why a file cannot be read at all (as opposed to a row that is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    pub code: &'static str,
    pub message: String,
}

fn file_error(code: &'static str, message: impl Into<String>) -> FileError {
    FileError { code, message: message.into() }
}

/// A row of the file with its line number (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<T> {
    pub line: usize,
    pub input: T,
}

/// Text of a CSV file: UTF-8 (a BOM is dropped), else GB18030/GBK as Excel saves it in China.
pub fn decode_text(bytes: &[u8]) -> Result<String, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => decode_gbk(bytes),
    }
}

#[cfg(feature = "server")]
fn decode_gbk(bytes: &[u8]) -> Result<String, FileError> {
    let (text, _, bad) = encoding_rs::GB18030.decode(bytes);
    if bad {
        Err(file_error("bad_encoding", "the file is neither UTF-8 nor GBK text"))
    } else {
        Ok(text.into_owned())
    }
}

#[cfg(not(feature = "server"))]
fn decode_gbk(_bytes: &[u8]) -> Result<String, FileError> {
    Err(file_error("bad_encoding", "the file is not UTF-8 text"))
}

/// RFC 4180 CSV: commas, `"` quoting with `""` for a quote, CRLF or LF; blank lines skipped.
/// Each row comes with its line number.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, FileError> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_field_start = true;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                if row.iter().any(|f| !f.trim().is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                } else {
                    row.clear();
                }
                line += 1;
                row_line = line;
                at_field_start = true;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
        if rows.len() > MAX_IMPORT_ROWS + 1 {
            return Err(file_error("too_many_rows", format!("more than {MAX_IMPORT_ROWS} rows in one file")));
        }
    }
    if quoted {
        return Err(file_error("bad_csv", format!("line {row_line}: a quoted field is never closed")));
    }
    row.push(field);
    if row.iter().any(|f| !f.trim().is_empty()) {
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// The columns each kind knows, with the header words accepted for each.
fn columns(kind: ImportKind) -> &'static [(&'static str, &'static [&'static str], bool)] {
    match kind {
        ImportKind::Departments => &[
            ("code", &["code", "编码", "科室编码", "科室代码"], true),
            ("name_zh", &["name_zh", "name", "名称", "科室名称", "中文名称"], true),
            ("name_en", &["name_en", "英文名称", "英文名"], false),
        ],
        ImportKind::ChargeItems => &[
            ("code", &["code", "编码", "项目编码", "收费项目编码"], true),
            ("name", &["name", "名称", "项目名称", "收费项目名称"], true),
            ("category", &["category", "类别", "项目类别", "分类"], true),
            ("unit", &["unit", "单位", "计价单位"], true),
            ("unit_price", &["unit_price", "price", "单价", "价格"], true),
            ("national_code", &["national_code", "国家编码", "国家医保编码", "医疗服务项目编码"], false),
            ("enabled", &["enabled", "启用", "是否启用", "状态"], false),
        ],
    }
}

/// The header words a kind accepts, for the page's help text.
pub fn header_help(kind: ImportKind) -> Vec<(&'static str, &'static [&'static str], bool)> {
    columns(kind).to_vec()
}

fn header_key(w: &str) -> String {
    w.trim().trim_start_matches('\u{feff}').to_lowercase().replace([' ', '（', '）', '(', ')'], "")
}

/// Maps the header to columns: every required one present, no unknown or repeated one.
fn map_header(kind: ImportKind, header: &[String]) -> Result<Vec<Option<&'static str>>, FileError> {
    let cols = columns(kind);
    let mut out = Vec::with_capacity(header.len());
    for h in header {
        let k = header_key(h);
        if k.is_empty() {
            out.push(None);
            continue;
        }
        let Some((name, _, _)) = cols.iter().find(|(_, words, _)| words.iter().any(|w| header_key(w) == k)) else {
            return Err(file_error("unknown_column", format!("unknown column {:?} in the header", h.trim())));
        };
        if out.contains(&Some(*name)) {
            return Err(file_error("duplicate_column", format!("column {:?} appears twice", h.trim())));
        }
        out.push(Some(*name));
    }
    for (name, words, required) in cols {
        if *required && !out.contains(&Some(*name)) {
            return Err(file_error(
                "missing_column",
                format!("the header has no {} column ({})", name, words.join(" / ")),
            ));
        }
    }
    Ok(out)
}

fn cell<'a>(map: &[Option<&'static str>], row: &'a [String], name: &str) -> &'a str {
    map.iter().position(|m| *m == Some(name)).and_then(|i| row.get(i)).map(|s| s.trim()).unwrap_or("")
}

fn optional(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A category by its word or its Chinese label (`lab`, `化验`); anything else goes to the
/// rules as written, which refuse it with `bad_category`.
fn category_word(s: &str) -> String {
    ItemCategory::ALL
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s) || c.label_zh() == s)
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| s.to_string())
}

/// `是/否`, `启用/停用`, `true/false`, `1/0`, `y/n`; empty is yes. `Err` for anything else.
fn yes_no(s: &str) -> Result<Option<bool>, ()> {
    match s.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "是" | "启用" | "true" | "1" | "y" | "yes" => Ok(Some(true)),
        "否" | "停用" | "false" | "0" | "n" | "no" => Ok(Some(false)),
        _ => Err(()),
    }
}

/// What an import came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub kind: ImportKind,
    pub file_name: String,
    pub rows: usize,
    /// True when the file was written; false when any row was refused (nothing written).
    pub applied: bool,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Every refused row, in file order.
    pub refused: Vec<RowError>,
}

/// A refused row: its line, the entry's code and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: usize,
    pub code: String,
    pub error_code: String,
    pub field: String,
    pub message: String,
}

/// The rows of a table as departments; the header is the first row.
pub fn department_rows(table: &[(usize, Vec<String>)]) -> Result<Vec<Row<DepartmentInput>>, FileError> {
    let (header, body) = split(table)?;
    let map = map_header(ImportKind::Departments, header)?;
    Ok(body
        .iter()
        .map(|(line, r)| Row {
            line: *line,
            input: DepartmentInput {
                code: cell(&map, r, "code").to_string(),
                name_zh: cell(&map, r, "name_zh").to_string(),
                name_en: optional(cell(&map, r, "name_en")),
            },
        })
        .collect())
}

/// The rows of a table as catalogue items; a row whose `enabled` cell is not a yes or no is
/// refused here (its line and `bad_enabled`), the rest go to the rules.
pub fn charge_item_rows(
    table: &[(usize, Vec<String>)],
) -> Result<(Vec<Row<ChargeItemInput>>, Vec<RowError>), FileError> {
    let (header, body) = split(table)?;
    let map = map_header(ImportKind::ChargeItems, header)?;
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for (line, r) in body {
        let code = cell(&map, r, "code").to_string();
        let enabled = match yes_no(cell(&map, r, "enabled")) {
            Ok(e) => e,
            Err(()) => {
                refused.push(RowError {
                    line: *line,
                    code,
                    error_code: "bad_enabled".into(),
                    field: "enabled".into(),
                    message: "enabled is 是/否 (yes/no)".into(),
                });
                continue;
            }
        };
        rows.push(Row {
            line: *line,
            input: ChargeItemInput {
                code,
                name: cell(&map, r, "name").to_string(),
                category: category_word(cell(&map, r, "category")),
                unit: cell(&map, r, "unit").to_string(),
                unit_price: cell(&map, r, "unit_price").trim_start_matches(['¥', '￥']).replace(',', ""),
                national_code: optional(cell(&map, r, "national_code")),
                enabled,
            },
        });
    }
    Ok((rows, refused))
}

fn split(table: &[(usize, Vec<String>)]) -> Result<(&[String], &[(usize, Vec<String>)]), FileError> {
    let Some(((_, header), body)) = table.split_first() else {
        return Err(file_error("empty_file", "the file has no header row"));
    };
    if body.is_empty() {
        return Err(file_error("empty_file", "the file has a header and no rows"));
    }
    if body.len() > MAX_IMPORT_ROWS {
        return Err(file_error("too_many_rows", format!("more than {MAX_IMPORT_ROWS} rows in one file")));
    }
    Ok((header, body))
}

#[cfg(feature = "server")]
pub use xlsx::read_xlsx;

#[cfg(feature = "server")]
mod xlsx {
    //! The first sheet of an XLSX workbook as rows of text: shared strings, inline strings and
    //! numbers (a price Excel stored as 18.600000000000001 reads as 18.60).

    use super::{file_error, FileError, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS};
    use std::io::Read;

    fn entry(zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str) -> Result<Option<String>, FileError> {
        let Ok(mut f) = zip.by_name(name) else { return Ok(None) };
        if f.size() > (MAX_IMPORT_BYTES * 8) as u64 {
            return Err(file_error("file_too_large", "the workbook unpacks to more than 8 MiB"));
        }
        let mut s = String::new();
        f.by_ref()
            .take((MAX_IMPORT_BYTES * 8) as u64)
            .read_to_string(&mut s)
            .map_err(|_| file_error("bad_xlsx", format!("{name} in the workbook cannot be read")))?;
        Ok(Some(s))
    }

    /// Rows of the first worksheet, each with its row number.
    pub fn read_xlsx(bytes: &[u8]) -> Result<Vec<(usize, Vec<String>)>, FileError> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|_| file_error("bad_xlsx", "not an XLSX workbook (save it as .xlsx or .csv)"))?;
        let shared = match entry(&mut zip, "xl/sharedStrings.xml")? {
            Some(x) => shared_strings(&x),
            None => Vec::new(),
        };
        let mut sheets: Vec<String> = zip
            .file_names()
            .filter(|n| n.starts_with("xl/worksheets/") && n.ends_with(".xml"))
            .map(String::from)
            .collect();
        sheets.sort_by_key(|n| (n.len(), n.clone()));
        let first = sheets.first().ok_or_else(|| file_error("bad_xlsx", "the workbook has no worksheet"))?.clone();
        let sheet = entry(&mut zip, &first)?.unwrap_or_default();
        sheet_rows(&sheet, &shared)
    }

    /// `&amp;` and friends, and numeric references.
    fn unescape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let Some(end) = rest.find(';') else { break };
            let ent = &rest[1..end];
            let ch = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
                _ => None,
            };
            match ch {
                Some(c) => {
                    out.push(c);
                    rest = &rest[end + 1..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Tags and the text between them.
    enum Tok<'a> {
        Open { name: &'a str, attrs: &'a str, empty: bool },
        Close(&'a str),
        Text(&'a str),
    }

    fn tokens(x: &str) -> impl Iterator<Item = Tok<'_>> {
        let mut rest = x;
        std::iter::from_fn(move || loop {
            if rest.is_empty() {
                return None;
            }
            if let Some(after) = rest.strip_prefix('<') {
                let end = after.find('>')?;
                let tag = &after[..end];
                rest = &after[end + 1..];
                if tag.starts_with('?') || tag.starts_with('!') {
                    continue;
                }
                if let Some(name) = tag.strip_prefix('/') {
                    return Some(Tok::Close(local(name.trim())));
                }
                let empty = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
                return Some(Tok::Open { name: local(name), attrs, empty });
            }
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            rest = &rest[end..];
            return Some(Tok::Text(text));
        })
    }

    fn local(name: &str) -> &str {
        name.rsplit(':').next().unwrap_or(name)
    }

    fn attr<'a>(attrs: &'a str, key: &str) -> Option<&'a str> {
        let mut rest = attrs;
        while let Some(i) = rest.find('=') {
            let k = rest[..i].trim();
            let after = rest[i + 1..].trim_start();
            let q = after.chars().next()?;
            let body = &after[1..];
            let end = body.find(q)?;
            if local(k) == key {
                return Some(&body[..end]);
            }
            rest = &body[end + 1..];
        }
        None
    }

    fn shared_strings(x: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur: Option<String> = None;
        let mut in_t = false;
        let mut in_rph = false;
        for t in tokens(x) {
            match t {
                Tok::Open { name: "si", .. } => cur = Some(String::new()),
                Tok::Close("si") => out.push(cur.take().unwrap_or_default()),
                Tok::Open { name: "rPh", empty: false, .. } => in_rph = true,
                Tok::Close("rPh") => in_rph = false,
                Tok::Open { name: "t", empty: false, .. } => in_t = true,
                Tok::Close("t") => in_t = false,
                Tok::Text(s) if in_t && !in_rph => {
                    if let Some(c) = cur.as_mut() {
                        c.push_str(&unescape(s));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// "C12" → column 2 (0-based).
    fn column_of(r: &str) -> Option<usize> {
        let letters: String = r.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        if letters.is_empty() {
            return None;
        }
        letters
            .chars()
            .try_fold(0usize, |n, c| Some(n * 26 + (c.to_ascii_uppercase() as usize - 'A' as usize + 1)))
            .map(|n| n - 1)
    }

    /// A number cell as the text a person typed: at most two decimals when the float is within
    /// a millionth of them (Excel's 18.600000000000001).
    fn number_text(v: &str) -> String {
        match v.parse::<rust_decimal::Decimal>() {
            Ok(d) if d.scale() > 2 => {
                let r = d.round_dp(2);
                if (r - d).abs() < rust_decimal::Decimal::new(1, 6) {
                    r.normalize().to_string()
                } else {
                    v.to_string()
                }
            }
            Ok(d) => d.normalize().to_string(),
            Err(_) => v.to_string(),
        }
    }

    fn sheet_rows(x: &str, shared: &[String]) -> Result<Vec<(usize, Vec<String>)>, FileError> {
        let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
        let mut row: Option<(usize, Vec<String>)> = None;
        let mut cell: Option<(usize, String)> = None; // (column, type)
        let mut text = String::new();
        let mut in_value = false;
        let mut next_col = 0usize;
        for t in tokens(x) {
            match t {
                Tok::Open { name: "row", attrs, empty } => {
                    let n = attr(attrs, "r").and_then(|r| r.parse().ok()).unwrap_or(rows.len() + 1);
                    next_col = 0;
                    if empty {
                        continue;
                    }
                    row = Some((n, Vec::new()));
                }
                Tok::Close("row") => {
                    if let Some(r) = row.take() {
                        if r.1.iter().any(|c| !c.trim().is_empty()) {
                            rows.push(r);
                            if rows.len() > MAX_IMPORT_ROWS + 1 {
                                return Err(file_error(
                                    "too_many_rows",
                                    format!("more than {MAX_IMPORT_ROWS} rows in one file"),
                                ));
                            }
                        }
                    }
                }
                Tok::Open { name: "c", attrs, empty } => {
                    let col = attr(attrs, "r").and_then(column_of).unwrap_or(next_col);
                    next_col = col + 1;
                    if empty || col > 64 {
                        continue;
                    }
                    cell = Some((col, attr(attrs, "t").unwrap_or("n").to_string()));
                    text.clear();
                }
                Tok::Open { name: "v" | "t", empty: false, .. } if cell.is_some() => in_value = true,
                Tok::Close("v" | "t") => in_value = false,
                Tok::Text(s) if in_value => text.push_str(&unescape(s)),
                Tok::Close("c") => {
                    let (Some((col, ty)), Some((_, cells))) = (cell.take(), row.as_mut()) else { continue };
                    let value = match ty.as_str() {
                        "s" => {
                            text.trim().parse::<usize>().ok().and_then(|i| shared.get(i)).cloned().unwrap_or_default()
                        }
                        "n" => number_text(text.trim()),
                        "b" => {
                            if text.trim() == "1" {
                                "TRUE".into()
                            } else {
                                "FALSE".into()
                            }
                        }
                        _ => text.clone(),
                    };
                    if cells.len() <= col {
                        cells.resize(col + 1, String::new());
                    }
                    cells[col] = value;
                }
                _ => {}
            }
        }
        Ok(rows)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_shared_inline_and_numbers() {
            let shared = shared_strings(
                r#"<?xml version="1.0"?><sst xmlns="x"><si><t>code</t></si><si><r><t>血</t></r><r><t xml:space="preserve">常规</t></r></si><si><t>A&amp;B</t></si></sst>"#,
            );
            assert_eq!(shared, vec!["code", "血常规", "A&B"]);
            let sheet = r#"<worksheet><sheetData>
                <row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="inlineStr"><is><t>价格</t></is></c></row>
                <row r="2"/>
                <row r="3"><c r="A3" t="s"><v>1</v></c><c r="B3" t="s"><v>2</v></c><c r="C3"><v>18.600000000000001</v></c></row>
                <row r="4"><c r="C4"><v>25</v></c><c r="AA4" t="b"><v>1</v></c></row>
            </sheetData></worksheet>"#;
            let rows = sheet_rows(sheet, &shared).unwrap();
            assert_eq!(rows[0], (1, vec!["code".to_string(), String::new(), "价格".to_string()]));
            assert_eq!(rows[1], (3, vec!["血常规".to_string(), "A&B".to_string(), "18.6".to_string()]));
            assert_eq!(rows[2].1[2], "25");
            assert_eq!(rows[2].1[26], "TRUE");
            assert_eq!(number_text("0.30000000000000004"), "0.3");
            assert_eq!(number_text("1.234"), "1.234", "a real third decimal stays for the rules to refuse");
        }

        #[test]
        fn a_file_that_is_not_a_workbook_is_refused() {
            assert_eq!(read_xlsx(b"code,name\n").unwrap_err().code, "bad_xlsx");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Vec<(usize, Vec<String>)> {
        parse_csv(text).unwrap()
    }

    #[test]
    fn csv_quotes_newlines_and_blank_lines() {
        let rows = table("code,name\r\nA,\"血常规, 五分类\"\r\n\r\nB,\"say \"\"hi\"\"\nnext\"\nC,x");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1], (2, vec!["A".to_string(), "血常规, 五分类".to_string()]));
        assert_eq!(rows[2], (4, vec!["B".to_string(), "say \"hi\"\nnext".to_string()]));
        assert_eq!(rows[3].0, 6);
        assert_eq!(parse_csv("a,\"b\n").unwrap_err().code, "bad_csv");
    }

    #[test]
    fn gbk_from_excel_and_a_bom_are_read() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFcode").unwrap(), "code");
        #[cfg(feature = "server")]
        assert_eq!(decode_text(&[0xB1, 0xE0, 0xC2, 0xEB]).unwrap(), "编码");
    }

    #[test]
    fn headers_in_chinese_or_english_map_to_the_inputs() {
        let t = table("项目编码,项目名称,类别,单位,单价,国家编码,启用\nLAB-1,血常规,化验,次,¥25.00,250101015,是\nLAB-2,尿常规,lab,次,\"1,200.50\",,否\nLAB-3,x,lab,次,1,,也许");
        let (rows, refused) = charge_item_rows(&t).unwrap();
        assert_eq!(rows.len(), 2);
        let a = &rows[0].input;
        assert_eq!((a.category.as_str(), a.unit_price.as_str(), a.enabled), ("lab", "25.00", Some(true)));
        assert_eq!(a.national_code.as_deref(), Some("250101015"));
        assert_eq!((rows[1].input.unit_price.as_str(), rows[1].input.enabled), ("1200.50", Some(false)));
        assert_eq!((refused[0].line, refused[0].error_code.as_str()), (4, "bad_enabled"));
        let d = department_rows(&table("科室编码,科室名称,英文名称\nCARD,心内科,Cardiology\nORTH,骨科,")).unwrap();
        assert_eq!((d[1].input.code.as_str(), d[1].input.name_en.clone()), ("ORTH", None));
    }

    #[test]
    fn a_header_that_cannot_be_read_refuses_the_file() {
        let code = |t: &str| charge_item_rows(&table(t)).unwrap_err().code;
        assert_eq!(code("code,name,category,unit\nA,b,lab,次"), "missing_column");
        assert_eq!(code("code,name,category,unit,unit_price,colour\nA,b,lab,次,1,red"), "unknown_column");
        assert_eq!(code("code,编码,name,category,unit,unit_price\nA,A,b,lab,次,1"), "duplicate_column");
        assert_eq!(code("code,name,category,unit,unit_price\n"), "empty_file");
        assert_eq!(charge_item_rows(&[]).unwrap_err().code, "empty_file");
    }
}
