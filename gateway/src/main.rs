//! The `gateway` command: run | check-config | demo | certs.
//!
//! Exit codes (`docs/architecture.md#cli`): 0 ok, 2 bad config or usage, 1 runtime failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::logging::{self, LogFormat};

/// With the `mimalloc` feature, mimalloc instead of the system allocator: glibc's malloc and free
/// are about a sixth of the gateway's CPU per request (`benches/run --perf`), and mimalloc cuts the
/// authenticated route's cost by about a sixth, but an idle status socket keeps about twice the
/// memory resident (mimalloc touches the zeroed buffers it hands out). The default build keeps
/// glibc, for gateways that hold one socket per open task pane.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gateway", version, about = "Authentication gateway for Office add-in and Teams app servers")]
struct Cli {
    /// Config file (same as `gateway run --config FILE`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Take the listening sockets over from the running gateway (zero-downtime upgrade): wait
        /// on `server.upgrade_socket` until it is sent SIGQUIT and hands them over.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file and exit: 0 when valid, 2 with every problem listed.
    CheckConfig,
    /// Run the demo: gateway, sample add-in upstream and dev provider, no accounts needed
    /// (`--config FILE` runs another file shaped like config/demo.toml).
    Demo {
        /// Plain HTTP on http://localhost:3001 instead of HTTPS.
        #[arg(long)]
        http: bool,
    },
    /// Write a development CA and a localhost certificate (PEM) into DIR.
    Certs {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // docs/architecture.md#cli: usage errors exit 2 (help and version exit 0)
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let code = match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Run { upgrade } => run(cli.config, cli.log_format, upgrade),
        Command::CheckConfig => check_config(cli.config),
        Command::Certs { out } => certs(&out),
        Command::Demo { http } => {
            logging::init(cli.log_format);
            match gateway::demo::run(http, cli.config.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    logging::flush();
                    eprintln!("gateway demo: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    };
    logging::flush();
    code
}

fn load(config: Option<PathBuf>) -> Result<gateway::config::Config, ExitCode> {
    let Some(path) = config else {
        eprintln!("gateway: --config FILE is required");
        return Err(ExitCode::from(2));
    };
    gateway::config::load(&path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

fn run(path: Option<PathBuf>, log_format: LogFormat, upgrade: bool) -> ExitCode {
    logging::init(log_format);
    let config = match load(path.clone()) {
        Ok(c) => c,
        Err(code) => {
            logging::flush();
            return code;
        }
    };
    let upgradable = config.server.upgrade_socket.is_some();
    if upgrade && !upgradable {
        logging::flush();
        eprintln!("gateway: --upgrade needs server.upgrade_socket in the config (the running gateway's)");
        return ExitCode::from(2);
    }
    match gateway::app::run(config, path.as_deref(), gateway::signals::run_args(upgradable), upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::flush();
            eprintln!(
                "gateway: {}",
                anyhow::Error::from(e).chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
            );
            ExitCode::from(1)
        }
    }
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    let path = config.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    match load(config) {
        Ok(_) => {
            println!("{path}: ok");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn certs(out: &std::path::Path) -> ExitCode {
    match gateway::tls::write_dev_certs(out) {
        Ok(p) => {
            println!(
                "wrote {}, {} (CA) and {}, {} (localhost)",
                p.ca_cert.display(),
                p.ca_key.display(),
                p.cert.display(),
                p.key.display()
            );
            println!("trust {} to use https://localhost without warnings (see certs/README.md)", p.ca_cert.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let chain: Vec<String> = anyhow::Error::from(e).chain().map(|c| c.to_string()).collect();
            eprintln!("gateway: {}", chain.join(": "));
            ExitCode::from(1)
        }
    }
}
