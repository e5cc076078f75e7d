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
    let config = workspace_root().join("tests/fixtures/config/bad/27-multi-tenant-entra-without-allowed-tenants.toml");
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
