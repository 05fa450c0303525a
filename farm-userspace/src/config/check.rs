//! The checks every part of the file shares, and the context that turns a refusal into a
//! `ConfigError` with the file and the line of the field it is about.
use std::{collections::HashMap, fmt::Display, hash::Hash, net::SocketAddr, ops::RangeInclusive};

use super::{ConfigError, lines::Lines};

/// Longest cluster or service name: one rule for both, so a name that is valid in one
/// place is valid in the other.
const MAX_NAME: usize = 32;

pub(super) struct Ctx<'a> {
    pub file: &'a str,
    pub lines: Lines,
}

impl Ctx<'_> {
    pub fn error(&self, field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, self.lines.line(field), field, reason.into())
    }

    /// `value` as a `T` within `range`: the wide raw number narrowed to the model's type.
    pub fn number<T>(
        &self,
        field: &str,
        value: u64,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<u64> + PartialOrd + Display,
    {
        T::try_from(value).ok().filter(|v| range.contains(v)).ok_or_else(|| {
            self.error(
                field,
                format!("{value} is out of range; use {}..={}", range.start(), range.end()),
            )
        })
    }

    /// An optional number: `default` when absent, else checked like `number`.
    pub fn optional<T>(
        &self,
        field: &str,
        value: Option<u64>,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: TryFrom<u64> + PartialOrd + Display,
    {
        value.map_or(Ok(default), |v| self.number(field, v, range))
    }

    pub fn count(
        &self,
        field: &str,
        len: usize,
        range: RangeInclusive<u32>,
    ) -> Result<(), ConfigError> {
        if u32::try_from(len).is_ok_and(|n| range.contains(&n)) {
            return Ok(());
        }
        let (min, max) = (range.start(), range.end());
        Err(self.error(field, format!("has {len} entries; give {min} to {max}")))
    }

    /// A name made of `[A-Za-z0-9_-]`, at most `MAX_NAME` bytes.
    pub fn name(&self, field: &str, name: String) -> Result<String, ConfigError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if (1..=MAX_NAME).contains(&name.len()) && name.chars().all(allowed) {
            return Ok(name);
        }
        Err(self.error(
            field,
            format!(
                "{name:?} is not a valid name; use 1 to {MAX_NAME} of A-Z a-z 0-9 _ -, e.g. \"web-1\""
            ),
        ))
    }

    /// An `address:port` with a port other than 0; `purpose` says what the port is for.
    pub fn socket_address(
        &self,
        field: &str,
        text: &str,
        purpose: &str,
    ) -> Result<SocketAddr, ConfigError> {
        match text.parse::<SocketAddr>() {
            Ok(address) if address.port() != 0 => Ok(address),
            Ok(_) => {
                Err(self.error(field, format!("{text}: port 0 cannot {purpose}; use 1..=65535")))
            }
            Err(_) => Err(self.error(
                field,
                format!(
                    "{text:?} is not an address:port; write e.g. 198.18.0.11:7400 or [2001:db8::11]:7400"
                ),
            )),
        }
    }

    /// Refuses the second of two entries of `list` whose `key` is equal.
    pub fn unique<T: Eq + Hash + Display>(
        &self,
        list: &str,
        key: &str,
        values: impl IntoIterator<Item = T>,
    ) -> Result<(), ConfigError> {
        let mut first = HashMap::new();
        for (i, value) in values.into_iter().enumerate() {
            if let Some(earlier) = first.get(&value) {
                return Err(self.error(
                    &format!("{list}[{i}].{key}"),
                    format!("{value} is already the {key} of {list}[{earlier}]; each {key} must be unique"),
                ));
            }
            first.insert(value, i);
        }
        Ok(())
    }
}
