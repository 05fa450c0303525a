//! Where each field of the file is: serde_yaml keeps no spans, so validation errors get
//! their line from a second, event-level read of the text with yaml-rust2, whose events
//! carry position markers. Paths use the same spelling as the error fields
//! (`services[1].ports[0]`, `static_owners.2`).
use std::collections::{HashMap, HashSet};

use yaml_rust2::{
    parser::{Event, MarkedEventReceiver, Parser},
    scanner::Marker,
};

pub(super) struct Lines {
    lines: HashMap<String, usize>,
    /// The first key that repeats a key of its mapping, and its line: serde_yaml lets
    /// a later `weights` or `static_owners` entry silently replace an earlier one.
    duplicate: Option<(String, usize)>,
}

impl Lines {
    /// Best effort: text that yaml-rust2 cannot read keeps the lines seen before the
    /// error, and the rest fall back to their ancestors.
    pub(super) fn of(text: &str) -> Lines {
        let mut builder = Builder::default();
        // A read error only shortens the map; serde_yaml has already accepted the text.
        let _ = Parser::new_from_str(text).load(&mut builder, false);
        Lines { lines: builder.lines, duplicate: builder.duplicate }
    }

    /// The line of `path`, else of its nearest ancestor that has one, else 1.
    pub(super) fn line(&self, path: &str) -> usize {
        let mut path = path;
        loop {
            if let Some(&line) = self.lines.get(path) {
                return line;
            }
            match parent(path) {
                Some(up) => path = up,
                None => return 1,
            }
        }
    }

    pub(super) fn duplicate_key(&self) -> Option<(&str, usize)> {
        self.duplicate.as_ref().map(|(path, line)| (path.as_str(), *line))
    }
}

/// `a.b[2]` -> `a.b` -> `a` -> `` -> None.
pub(super) fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(path.rfind(['.', '[']).map_or("", |cut| &path[..cut]))
}

enum Frame {
    /// `key` is the path of the key just read, until its value arrives.
    Map {
        path: String,
        key: Option<String>,
        seen: HashSet<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    lines: HashMap<String, usize>,
    stack: Vec<Frame>,
    duplicate: Option<(String, usize)>,
}

impl Builder {
    /// The path of the node that starts now, advancing the enclosing container.
    fn place(&mut self, scalar: Option<&str>, line: usize) -> String {
        let Some(frame) = self.stack.last_mut() else {
            return String::new();
        };
        match frame {
            Frame::Seq { path, next } => {
                *next += 1;
                format!("{path}[{}]", *next - 1)
            }
            Frame::Map { path, key, seen } => match key.take() {
                Some(value) => value,
                None => {
                    // A key that is itself a collection has no name to put in a path.
                    let name = scalar.unwrap_or("?");
                    let full =
                        if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
                    if !seen.insert(name.to_owned()) {
                        self.duplicate.get_or_insert((full.clone(), line));
                    }
                    *key = Some(full.clone());
                    full
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let path = match &event {
            Event::Scalar(text, ..) => self.place(Some(text), mark.line()),
            Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                self.place(None, mark.line())
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                return;
            }
            _ => return,
        };
        // A value keeps the line of its key, which is where the reader looks for it.
        self.lines.entry(path.clone()).or_insert(mark.line());
        match event {
            Event::MappingStart(..) => {
                self.stack.push(Frame::Map { path, key: None, seen: HashSet::new() })
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, next: 0 }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
cluster:
  name: demo
  peers:
    - id: 1
      address: x
    - {id: 2, address: y}
weights: {1: 2}
";

    #[test]
    fn finds_keys_items_and_flow_entries() {
        let lines = Lines::of(TEXT);
        assert_eq!(lines.line("cluster"), 1);
        assert_eq!(lines.line("cluster.name"), 2);
        assert_eq!(lines.line("cluster.peers[0]"), 4);
        assert_eq!(lines.line("cluster.peers[0].address"), 5);
        assert_eq!(lines.line("cluster.peers[1].id"), 6);
        assert_eq!(lines.line("weights.1"), 7);
        assert_eq!(lines.duplicate_key(), None);
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let lines = Lines::of(TEXT);
        assert_eq!(lines.line("cluster.peers[1].weight"), 6);
        assert_eq!(lines.line("cluster.peers[7]"), 3);
        assert_eq!(lines.line("nowhere"), 1);
    }

    #[test]
    fn reports_a_repeated_key() {
        let lines = Lines::of("a: 1\nb:\n  1: x\n  1: y\n");
        assert_eq!(lines.duplicate_key(), Some(("b.1", 4)));
        assert_eq!(lines.line("b.1"), 3);
    }

    #[test]
    fn parent_walks_up_to_the_root() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
