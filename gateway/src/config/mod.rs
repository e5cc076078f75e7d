//! Loads the TOML config: text → [`raw::RawConfig`] (serde) → [`validate`] → [`Config`].
//!
//! ```text
//!  file ──read──▶ text ──toml + serde_path_to_error──▶ RawConfig ──validate──▶ Config
//!                   │ syntax / type / unknown key:             │ every semantic problem,
//!                   ▼ FILE:LINE:COL: key: message               ▼ FILE: key.path: message
//! ```
//! Every problem is collected before returning, so a user fixes a file in one pass.

pub mod defaults;
mod error;
mod model;
pub mod raw;
pub mod secret;
pub mod telemetry;
pub mod types;
mod upgrade;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, Location};
pub use model::*;
pub use secret::EnvLookup;

/// Reads and validates the file at `path`, resolving `env:` secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        errors: vec![ConfigError { location: Location::File, problem: format!("cannot read the file: {e}") }],
    })?;
    let env = |name: &str| std::env::var(name).ok();
    load_str(&text, &origin, &env)
}

/// Validates config `text`; `origin` names it in messages and `env` resolves `env:` secrets.
/// Relative paths in the file are relative to the working directory.
pub fn load_str(text: &str, origin: &str, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors { origin: origin.to_owned(), errors };
    let raw = parse(text).map_err(|e| fail(vec![e]))?;
    let ctx = validate::Context { env, base_dir: Path::new("") };
    validate::validate(raw, origin, &ctx).map_err(fail)
}

/// TOML syntax and schema (types, unknown keys) in one pass; the error carries line and column.
fn parse(text: &str) -> Result<raw::RawConfig, ConfigError> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| toml_error(text, &e, String::new()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        toml_error(text, e.inner(), key)
    })
}

fn toml_error(text: &str, e: &toml::de::Error, key: String) -> ConfigError {
    let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
    let mut problem = e.message().trim_end_matches('.').replace('\n', " ");
    if key.is_empty() {
        if let Some(table) = problem.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            problem = format!("missing table [{table}]");
        }
    }
    if let Some(hint) = did_you_mean(&problem) {
        problem.push_str(&format!("; did you mean `{hint}`?"));
    }
    ConfigError { location: Location::Position { line, column, key }, problem }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (strsim::jaro_winkler(unknown, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests;
