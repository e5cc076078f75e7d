//! The `gateway` command line (docs/architecture.md#cli): check-config on the shipped reference
//! config, `--version`, and exit code 2 for bad usage. Runs the built binary.

use std::process::{Command, Output};

use gateway_tests::config::{SECRET_ENV, TEST_SECRET};
use gateway_tests::process::{gateway_binary, workspace_root};
use gateway_tests::TempDir;

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_config_accepts_the_annotated_reference_config() -> anyhow::Result<()> {
    // config/gateway.toml names certs/localhost.pem relative to the working directory.
    let dir = TempDir::new("cli")?;
    gateway::tls::write_dev_certs(&dir.join("certs"))?;
    let config = workspace_root().join("config").join("gateway.toml");

    let output = Command::new(gateway_binary()?)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env(SECRET_ENV, TEST_SECRET)
        .env("ENTRA_CLIENT_SECRET", "placeholder-entra-secret")
        .env("PARTNER_CLIENT_SECRET", "placeholder-partner-secret")
        .output()?;

    assert!(output.status.success(), "check-config {}: {}", config.display(), describe(&output));
    Ok(())
}

#[test]
fn version_flag_prints_the_version() -> anyhow::Result<()> {
    let output = Command::new(gateway_binary()?).arg("--version").output()?;

    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{}", describe(&output));
    Ok(())
}

#[test]
fn unknown_subcommand_exits_2() -> anyhow::Result<()> {
    let output = Command::new(gateway_binary()?).arg("frobnicate").output()?;

    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    Ok(())
}

#[test]
fn check_config_refuses_a_multi_tenant_entra_provider_without_allowed_tenants_with_exit_2() -> anyhow::Result<()> {
    let config = workspace_root().join("tests/fixtures/config/bad/30-multi-tenant-entra-without-allowed-tenants.toml");
    let output = Command::new(gateway_binary()?)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env(SECRET_ENV, TEST_SECRET)
        .output()?;

    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("providers.entra.allowed_tenants: is required"), "{}", describe(&output));
    Ok(())
}

/// Every environment variable a shipped config's `env:` references name (each file's comments
/// and the README's Configure section document them), with placeholder values.
const SHIPPED_CONFIG_ENV: [(&str, &str); 6] = [
    (SECRET_ENV, TEST_SECRET),
    ("ENTRA_CLIENT_SECRET", "placeholder"),
    ("GOOGLE_CLIENT_SECRET", "placeholder"),
    ("GITHUB_CLIENT_SECRET", "placeholder"),
    ("OIDC_CLIENT_SECRET", "placeholder"),
    ("PARTNER_CLIENT_SECRET", "placeholder"),
];

/// A copy of `config/` in a new directory, as a fresh clone has it (no `certs/*.pem`).
fn fresh_checkout() -> anyhow::Result<(TempDir, Vec<String>)> {
    let dir = TempDir::new("fresh")?;
    std::fs::create_dir(dir.join("config"))?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("config"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = format!("config/{}", path.file_name().unwrap_or_default().to_string_lossy());
            std::fs::copy(&path, dir.join(&name))?;
            names.push(name);
        }
    }
    names.sort();
    anyhow::ensure!(names.len() >= 5, "only {} shipped configs", names.len());
    Ok((dir, names))
}

fn check_config(dir: &TempDir, config: &str) -> anyhow::Result<Output> {
    Ok(Command::new(gateway_binary()?)
        .args(["check-config", "--config", config])
        .current_dir(dir.path())
        .envs(SHIPPED_CONFIG_ENV)
        .output()?)
}

#[test]
fn every_shipped_config_passes_in_a_fresh_checkout_after_gateway_certs() -> anyhow::Result<()> {
    let (dir, configs) = fresh_checkout()?;
    let certs = Command::new(gateway_binary()?).args(["certs", "--out", "certs"]).current_dir(dir.path()).output()?;
    assert!(certs.status.success(), "gateway certs: {}", describe(&certs));

    for config in &configs {
        let output = check_config(&dir, config)?;
        assert!(output.status.success(), "check-config {config}: {}", describe(&output));
    }
    Ok(())
}

#[test]
fn missing_certificates_give_one_error_saying_how_to_make_them() -> anyhow::Result<()> {
    let (dir, configs) = fresh_checkout()?;

    for config in &configs {
        let output = check_config(&dir, config)?;
        assert_eq!(output.status.code(), Some(2), "check-config {config}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        // The dev provider of demo.toml listens on loopback: no "non-loopback" follow-on.
        assert_eq!(lines.len(), 1, "check-config {config}: {}", describe(&output));
        assert!(
            lines[0].starts_with(&format!("{config}: server.tls_cert: "))
                && lines[0].contains("run `gateway certs --out certs`"),
            "check-config {config}: {}",
            describe(&output)
        );
    }
    Ok(())
}

#[test]
fn run_upgrade_without_an_upgrade_socket_exits_2_before_listening() -> anyhow::Result<()> {
    let dir = TempDir::new("cli")?;
    let config = dir.join("gateway.toml");
    let toml = gateway_tests::GatewayConfig::on_free_port(&["127.0.0.1:9".parse()?])?.to_toml();
    std::fs::write(&config, toml)?;

    let output = Command::new(gateway_binary()?)
        .args(["run", "--upgrade", "--config"])
        .arg(&config)
        .env(SECRET_ENV, TEST_SECRET)
        .output()?;

    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.upgrade_socket"), "{}", describe(&output));
    Ok(())
}
