//! Config errors: each names the file, the key path (or line and column) and what is wrong.

use std::fmt;

/// Where in the file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A key path such as `providers.entra.client_secret`.
    Key(String),
    /// A 1-based line and column, with the key path when known (syntax and type errors).
    Position {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Key path, empty when unknown.
        key: String,
    },
    /// The file as a whole (unreadable, empty).
    File,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it is.
    pub location: Location,
    /// What is wrong, lower-case, no final period.
    pub problem: String,
}

impl ConfigError {
    /// A problem at a key path.
    pub fn at(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { location: Location::Key(key.into()), problem: problem.into() }
    }
}

/// Every problem found in one file; `Display` prints one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file name as given by the user.
    pub origin: String,
    /// The problems, in file order where known.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let origin = &self.origin;
            match &e.location {
                Location::Key(key) => write!(f, "{origin}: {key}: {}", e.problem)?,
                Location::Position { line, column, key } if key.is_empty() => {
                    write!(f, "{origin}:{line}:{column}: {}", e.problem)?
                }
                Location::Position { line, column, key } => {
                    write!(f, "{origin}:{line}:{column}: {key}: {}", e.problem)?
                }
                Location::File => write!(f, "{origin}: {}", e.problem)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
