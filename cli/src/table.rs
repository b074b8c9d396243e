//! Human-readable tables: a header row and aligned columns separated by two
//! spaces, no trailing whitespace. Widths count characters, which is right
//! for the ASCII names and URLs these tables mostly hold.

use std::fmt::Write as _;

/// A table to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(headers: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Appends a row; missing cells are empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).take(self.headers.len()).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let width = |cell: &String| cell.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(width).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                widths[column] = widths[column].max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<width$}", width = widths[column]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_without_trailing_spaces() {
        let mut table = Table::new(["ID", "NAME", "URL"]);
        table.row(["1", "api", "https://api.example.com/health"]);
        table.row(["12", "db", ""]);
        assert_eq!(
            table.render(),
            "ID  NAME  URL\n\
             1   api   https://api.example.com/health\n\
             12  db\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header_and_rows_are_padded_to_the_header() {
        let mut table = Table::new(["A", "B"]);
        assert!(table.is_empty());
        assert_eq!(table.render(), "A  B\n");
        table.row(["only"]);
        table.row(["x", "y", "dropped"]);
        assert_eq!(table.render(), "A     B\nonly\nx     y\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(["NAME", "X"]);
        table.row(["café", "1"]);
        assert_eq!(table.render(), "NAME  X\ncafé  1\n");
    }
}
