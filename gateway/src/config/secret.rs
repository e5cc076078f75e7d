//! Secret references (`env:NAME`, `file:PATH`) resolved at load into values that never print.

use std::path::Path;

use secrecy::SecretString;

/// How to read environment variables; tests pass a map instead of touching the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Resolves a secret reference, or says what is wrong with it. The message names the
/// reference, never the value.
pub fn resolve(reference: &str, env: EnvLookup<'_>, base_dir: &Path) -> Result<SecretString, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err("\"env:\" needs a variable name, as in \"env:GATEWAY_SECRET\"".to_owned());
        }
        return match env(name) {
            Some(v) if !v.is_empty() => Ok(SecretString::from(v)),
            Some(_) => Err(format!("env var {name} is empty")),
            None => Err(format!("env var {name} is not set")),
        };
    }
    if let Some(path) = reference.strip_prefix("file:") {
        if path.is_empty() {
            return Err("\"file:\" needs a path, as in \"file:/run/secrets/gateway\"".to_owned());
        }
        let full = base_dir.join(path);
        return match std::fs::read_to_string(&full) {
            Ok(v) => {
                let v = v.trim_end_matches(['\r', '\n']);
                if v.is_empty() {
                    Err(format!("secret file {path} is empty"))
                } else {
                    Ok(SecretString::from(v.to_owned()))
                }
            }
            Err(e) => Err(format!("cannot read secret file {path}: {e}")),
        };
    }
    Err("must be a secret reference \"env:NAME\" or \"file:PATH\"; secrets are never written in the TOML itself"
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    #[test]
    fn env_reference_resolves_and_missing_one_is_named() {
        let dir = Path::new(".");
        assert_eq!(resolve("env:SET", &env, dir).unwrap().expose_secret(), "value");
        assert_eq!(resolve("env:MISSING", &env, dir).unwrap_err(), "env var MISSING is not set");
    }

    #[test]
    fn literal_secret_is_refused_without_echoing_it() {
        let e = resolve("hunter2-literal", &env, Path::new(".")).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("env:NAME"), "{e}");
    }
}
