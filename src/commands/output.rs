//! Rendering of rows for humans (aligned table) and programs (JSON).

use crate::cli::OutputFormat;
use crate::model::UserRow;
use crate::model::row::COLUMNS;

/// Cell width cap, so a long address doesn't push the table off screen.
const MAX_CELL: usize = 48;

pub fn print_users(rows: &[UserRow], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        OutputFormat::Table => {
            let cells: Vec<Vec<String>> = rows.iter().map(|r| r.values().to_vec()).collect();
            print_table(&COLUMNS, &cells);
        }
    }
    Ok(())
}

pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let clip = |s: &str| -> String {
        let flat = s.replace(['\n', '\r'], " ");
        if flat.chars().count() > MAX_CELL {
            flat.chars().take(MAX_CELL - 1).chain(['…']).collect()
        } else {
            flat
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clip(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    println!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}
