//! The owner table as a picture: buckets grouped into cells so that a table of any size
//! fits 64 columns and 32 lines, each cell standing for the node that owns most of its
//! buckets. `farm buckets --map` draws it in letters, the agent's status page in colours.
use farm_common::NO_OWNER;

const MAX_COLUMNS: usize = 64;
const MAX_ROWS: usize = 32;

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
    pub fn of(row: &[u16]) -> Grid {
        let (group, columns) = layout(row.len());
        Grid { group, columns, cells: row.chunks(group).map(majority).collect() }
    }

    /// The lines of cells, each with the first bucket it shows.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &[u16])> {
        let per_line = self.group * self.columns;
        self.cells.chunks(self.columns).enumerate().map(move |(i, cells)| (i * per_line, cells))
    }
}

/// Buckets per cell and cells per line for a table of `buckets`.
fn layout(buckets: usize) -> (usize, usize) {
    let group = buckets.div_ceil(MAX_COLUMNS * MAX_ROWS).max(1);
    (group, buckets.div_ceil(group).clamp(1, MAX_COLUMNS))
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
    fn tables_fit_64_columns_and_32_lines() {
        assert_eq!(layout(1), (1, 1));
        assert_eq!(layout(100), (1, 64));
        assert_eq!(layout(2048), (1, 64));
        assert_eq!(layout(4096), (2, 64));
        assert_eq!(layout(65536), (32, 64));
        for buckets in [1, 5, 63, 64, 65, 2047, 2049, 4095, 10_000, 65_536] {
            let (group, columns) = layout(buckets);
            assert!(
                columns <= MAX_COLUMNS && buckets.div_ceil(group * columns) <= MAX_ROWS,
                "{buckets}"
            );
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
