//! The owner table as a picture: buckets grouped into cells so that a table of any size
//! fits a number of columns and lines, each cell standing for the node that owns most of
//! its buckets. `farm buckets --map` draws it in letters on 64 x 32 (a terminal), the
//! agent's status page in colours on 64 x 64 (a bucket a cell up to 4,096 buckets).
use farm_common::NO_OWNER;

const COLUMNS: usize = 64;
/// Lines of a terminal's picture.
const TERMINAL_LINES: usize = 32;

/// A row of the owner table laid out in cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Buckets per cell.
    pub group: usize,
    /// Cells per line.
    pub columns: usize,
    /// Each cell's owner (`NO_OWNER` for none), line after line.
    pub cells: Vec<u16>,
}

impl Grid {
    /// `row` on 64 columns and at most 32 lines.
    pub fn of(row: &[u16]) -> Grid {
        Grid::fit(row, TERMINAL_LINES)
    }

    /// `row` on 64 columns and at most `lines` lines.
    pub fn fit(row: &[u16], lines: usize) -> Grid {
        let (group, columns) = layout(row.len(), lines);
        Grid { group, columns, cells: row.chunks(group).map(majority).collect() }
    }

    /// The lines of cells, each with the first bucket it shows.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &[u16])> {
        let per_line = self.group * self.columns;
        self.cells.chunks(self.columns).enumerate().map(move |(i, cells)| (i * per_line, cells))
    }
}

/// Buckets per cell and cells per line for a table of `buckets` on `lines` at most.
fn layout(buckets: usize, lines: usize) -> (usize, usize) {
    let group = buckets.div_ceil(COLUMNS * lines).max(1);
    (group, buckets.div_ceil(group).clamp(1, COLUMNS))
}

/// The owner of most of `buckets` (ties to the lower id; `NO_OWNER` is the highest).
fn majority(buckets: &[u16]) -> u16 {
    let mut sorted = buckets.to_vec();
    sorted.sort_unstable();
    let runs = sorted.chunk_by(|a, b| a == b);
    // max_by_key keeps the last of equals: reversed, that is the lowest id.
    runs.rev().max_by_key(|run| run.len()).map_or(NO_OWNER, |run| run[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_64_columns_and_the_lines_given() {
        assert_eq!(layout(1, 32), (1, 1));
        assert_eq!(layout(100, 32), (1, 64));
        assert_eq!(layout(2048, 32), (1, 64));
        assert_eq!(layout(4096, 32), (2, 64));
        assert_eq!(layout(4096, 64), (1, 64));
        assert_eq!(layout(65536, 32), (32, 64));
        for lines in [32, 64] {
            for buckets in [1, 5, 63, 64, 65, 2047, 2049, 4095, 10_000, 65_536] {
                let (group, columns) = layout(buckets, lines);
                assert!(
                    columns <= COLUMNS && buckets.div_ceil(group * columns) <= lines,
                    "{buckets} on {lines} lines"
                );
            }
        }
    }

    #[test]
    fn a_group_shows_its_majority_owner() {
        assert_eq!(majority(&[2, 1, 2]), 2);
        assert_eq!(majority(&[2, 1]), 1, "ties go to the lower id");
        assert_eq!(majority(&[NO_OWNER, NO_OWNER, 3]), NO_OWNER);
        assert_eq!(majority(&[NO_OWNER, 3]), 3);
    }

    #[test]
    fn lines_start_at_their_first_bucket() {
        let row: Vec<u16> = (0..4096).map(|b| if b < 2048 { 1 } else { 7 }).collect();
        let grid = Grid::of(&row);
        let lines: Vec<(usize, usize, u16)> =
            grid.lines().map(|(first, cells)| (first, cells.len(), cells[0])).collect();
        assert_eq!(lines.len(), 32);
        assert_eq!((lines[0], lines[16], lines[31]), ((0, 64, 1), (2048, 64, 7), (3968, 64, 7)));
    }
}
