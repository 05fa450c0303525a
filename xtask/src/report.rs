//! The one line setup prints per thing it checks: shared by setup and each of its parts.

/// Prints what setup found and did. Quiet about what was already in place unless
/// `verbose`, so tasks that run setup first stay quiet.
pub struct Report {
    pub verbose: bool,
}

impl Report {
    pub fn ok(&self, thing: &str, detail: &str) {
        if self.verbose {
            match detail {
                "" => println!("{thing}: ok"),
                _ => println!("{thing}: ok ({detail})"),
            }
        }
    }

    /// Announces an install, which may take a while, before it starts.
    pub fn doing(&self, thing: &str, what: &str) {
        println!("{thing}: {what}...");
    }

    /// `outcome` is what changed: "installed", "mounted".
    pub fn done(&self, thing: &str, outcome: &str) {
        println!("{thing}: {outcome}");
    }
}
