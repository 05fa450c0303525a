//! Aligned text columns, the layout every read command prints in.

/// `header` and `rows` as columns two spaces apart, each as wide as its widest cell. The
/// first `left` columns (names) align left, the others (numbers) right.
pub fn render(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let lines: Vec<Vec<&str>> = std::iter::once(header.to_vec())
        .chain(rows.iter().map(|r| r.iter().map(String::as_str).collect()))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            lines.iter().filter_map(|l| l.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(
                |(c, (cell, &w))| {
                    if c < left { format!("{cell:<w$}") } else { format!("{cell:>w$}") }
                },
            )
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_align_left_and_numbers_right() {
        let rows = vec![vec!["web".to_string(), "7".into()], vec!["a".into(), "1365".into()]];
        assert_eq!(render(&["NAME", "OWNED"], &rows, 1), "NAME  OWNED\nweb       7\na      1365\n");
    }
}
