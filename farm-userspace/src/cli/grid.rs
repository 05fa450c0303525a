//! `farm buckets --map`: the owner table as a picture (`picture::Grid`), a letter per
//! node.
use farm_userspace::picture::Grid;

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// For the nodes beyond the letters: a farm that large is read from the counts.
const OVERFLOW: char = '?';
const EMPTY: char = '.';
/// ANSI foreground colours, cycled over the nodes.
const COLOURS: [u8; 12] = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/// The character of the `i`-th node of the legend.
fn letter(i: usize) -> char {
    LETTERS.get(i).map_or(OVERFLOW, |&b| b as char)
}

/// The picture of `row`, whose nodes are `nodes` (sorted; they get letters in that
/// order), with a legend; in ANSI colours when `colour`.
pub fn draw(row: &[u16], nodes: &[u16], colour: bool) -> String {
    let grid = Grid::of(row);
    let paint = |owner: u16| -> String {
        let Some(i) = nodes.iter().position(|&n| n == owner) else { return EMPTY.to_string() };
        match colour {
            true => format!("\x1b[{}m{}\x1b[0m", COLOURS[i % COLOURS.len()], letter(i)),
            false => letter(i).to_string(),
        }
    };
    let label_width = row.len().saturating_sub(1).to_string().len();
    let mut out = String::new();
    for (first, cells) in grid.lines() {
        let cells: String = cells.iter().map(|&owner| paint(owner)).collect();
        out.push_str(&format!("{first:>label_width$} {cells}\n"));
    }
    out.push_str(&legend(row, nodes, grid.group, &paint));
    out
}

fn legend(row: &[u16], nodes: &[u16], group: usize, paint: &dyn Fn(u16) -> String) -> String {
    let owned = |node: u16| row.iter().filter(|&&o| o == node).count();
    let mut keys: Vec<String> =
        nodes.iter().map(|&n| format!("{} node {n} ({})", paint(n), owned(n))).collect();
    keys.push(format!(
        "{EMPTY} no owner ({})",
        row.iter().filter(|&&o| !nodes.contains(&o)).count()
    ));
    let each = match group {
        1 => "one bucket".to_string(),
        g => format!("{g} buckets, shown as the node owning most of them"),
    };
    format!(
        "{}\neach character is {each}; each line starts with its first bucket\n",
        keys.join("  ")
    )
}

#[cfg(test)]
mod tests {
    use farm_common::NO_OWNER;

    use super::*;

    #[test]
    fn small_table_picture() {
        let row = [1, 1, 1, 1, 2, 2, 2, NO_OWNER, 3, 3];
        let want = "0 AAAABBB.CC\n\
                    A node 1 (4)  B node 2 (3)  C node 3 (2)  . no owner (1)\n\
                    each character is one bucket; each line starts with its first bucket\n";
        assert_eq!(draw(&row, &[1, 2, 3], false), want);
    }

    #[test]
    fn large_table_is_grouped_and_lines_are_labelled() {
        let row: Vec<u16> = (0..4096).map(|b| if b < 2048 { 1 } else { 7 }).collect();
        let picture = draw(&row, &[1, 7], false);
        let lines: Vec<&str> = picture.lines().collect();
        assert_eq!(lines.len(), 32 + 2);
        assert_eq!(lines[0], format!("   0 {}", "A".repeat(64)));
        assert_eq!(lines[16], format!("2048 {}", "B".repeat(64)));
        assert!(lines[33].starts_with("each character is 2 buckets"));
    }

    #[test]
    fn colour_wraps_each_letter_in_its_node_colour() {
        let picture = draw(&[1, 2], &[1, 2], true);
        assert!(picture.starts_with("0 \x1b[31mA\x1b[0m\x1b[32mB\x1b[0m\n"), "{picture:?}");
    }
}
