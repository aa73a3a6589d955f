//! The command line: `mcpgate serve`, `mcpgate convert` and `mcpgate healthcheck`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::openapi::Spec;
use crate::source::{self, Source};
use crate::tools::{self, Report};

#[derive(Debug, Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "Turns REST APIs described by OpenAPI into protected remote MCP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the hosted MCP servers a configuration file describes.
    Serve(ServeArgs),
    /// Convert an OpenAPI document to MCP tool definitions and print them with a report.
    Convert(ConvertArgs),
    /// Ask the mcpgate a configuration file describes whether it serves (`GET /healthz`); exit
    /// status 0 when it answers 200. For container health checks, where no HTTP client is at hand.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration file (TOML); every key can be overridden by `MCPGATE_...` variables.
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Development mode, on loopback with nothing to install: a built-in identity provider
    /// (dev only: it signs in a dev user without asking), the petstore sample and a sample backend.
    #[arg(long)]
    dev: bool,
    /// The port of development mode.
    #[arg(long, default_value_t = 8080, requires = "dev")]
    port: u16,
    /// Where development mode keeps its store, the sample documents, and the identity provider's
    /// registered clients and signing key (in `dev-idp/`, kept across restarts).
    #[arg(long, default_value = "data-dev", requires = "dev")]
    data_dir: PathBuf,
    /// The user the development identity provider signs in.
    #[arg(long, default_value = "dev-user", requires = "dev")]
    dev_user: String,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// The configuration file of the mcpgate to ask: its `http.listen` (with `MCPGATE_...`
    /// overrides) is asked, on loopback when it is an unspecified address such as `0.0.0.0`.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// A file, an http(s) URL, or `-` for standard input. JSON or YAML; Swagger 2.0, OpenAPI 3.0 or 3.1.
    source: String,
    /// Print `{"tools": [...], "report": {...}}` (compact JSON) instead of a summary.
    #[arg(long)]
    json: bool,
    /// The folder that relative `$ref`s may read files below [default: the document's folder].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Longest tool name, in characters.
    #[arg(long, default_value_t = 64)]
    max_name_len: usize,
    /// Longest tool description, in characters.
    #[arg(long, default_value_t = 1024)]
    max_description_len: usize,
    /// Estimated tokens per tool schema after which referenced schemas are no longer expanded.
    #[arg(long, default_value_t = 6000)]
    max_schema_tokens: usize,
    /// The same for output schemas; 0 leaves them out.
    #[arg(long, default_value_t = 6000)]
    max_output_schema_tokens: usize,
    /// Leave out optional properties of objects nested deeper than this (arguments are depth 0).
    #[arg(long)]
    optional_depth: Option<usize>,
    /// Largest document read, in bytes (all its files together).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_bytes: u64,
    /// Seconds a URL fetch may take.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Allow the URL to point at a loopback or private address (redirects never may).
    #[arg(long)]
    allow_private_url: bool,
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Convert(args) => convert(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let loaded = match &args.config {
        Some(path) => Config::load(path),
        None => Config::for_dev(args.port, &args.data_dir, &args.dev_user),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // After the configuration, which says where traces go.
    let telemetry = crate::telemetry::init(args.log_json, &config.telemetry);
    if config.dev.is_some() {
        let url = config.public_url();
        println!(
            "mcpgate development mode: a dev-only identity provider signs you in as `{}` without asking.",
            args.dev_user
        );
        println!("Do not expose this port. MCP server: {url}/mcp/petstore");
        println!(
            "  MCP Inspector: npx @modelcontextprotocol/inspector, transport Streamable HTTP, URL {url}/mcp/petstore"
        );
        println!(
            "  VS Code: add {{\"servers\": {{\"petstore\": {{\"type\": \"http\", \"url\": \"{url}/mcp/petstore\"}}}}}} to .vscode/mcp.json"
        );
        println!("  Admin UI (import, curate, publish): {url}/admin");
    }
    let listener = match tokio::net::TcpListener::bind(config.http.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", config.http.listen);
            return ExitCode::FAILURE;
        }
    };
    let served = crate::app::run(config, listener, shutdown_signal()).await;
    // The log's last lines first: they come before the error.
    telemetry.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// How long a health check waits for the answer: container runtimes give it 30 s by default.
const HEALTHCHECK_DEADLINE: Duration = Duration::from_secs(5);

async fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = probe_address(config.http.listen);
    match tokio::time::timeout(HEALTHCHECK_DEADLINE, healthz_status(addr)).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("error: http://{addr}/healthz answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("error: cannot ask http://{addr}/healthz: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: http://{addr}/healthz did not answer within {HEALTHCHECK_DEADLINE:?}");
            ExitCode::FAILURE
        }
    }
}

/// Where a process listening on `listen` can be reached from the same host: an unspecified
/// address (`0.0.0.0`, `[::]`) listens on loopback too.
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The status of `GET /healthz` at `addr`, over a plain HTTP/1.1 connection: no proxy, no
/// redirect, no TLS, and at most the first kilobyte of the answer read.
async fn healthz_status(addr: SocketAddr) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(1024);
    stream.take(1024).read_to_end(&mut head).await?;
    let status = head
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok());
    status.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "the answer is not HTTP/1.1"))
}

async fn convert(args: ConvertArgs) -> ExitCode {
    let limits = source::Limits {
        max_bytes: args.max_bytes,
        timeout: Duration::from_secs(args.timeout),
        allow_private_url: args.allow_private_url,
        root: args.root.clone(),
    };
    let spec = match source::load(&Source::parse(&args.source), &limits).await {
        Ok(loaded) => loaded.spec,
        Err(err) => {
            eprintln!("error: {err}");
            if matches!(
                err,
                source::Error::TooLarge { .. } | source::Error::Fetch(source::fetch::Error::TooLarge { .. })
            ) {
                eprintln!("hint: raise the limit with --max-bytes (now {} bytes)", args.max_bytes);
            }
            return ExitCode::FAILURE;
        }
    };
    let options = tools::Options {
        max_name_len: args.max_name_len,
        max_description_len: args.max_description_len,
        max_schema_tokens: args.max_schema_tokens,
        max_output_schema_tokens: args.max_output_schema_tokens,
        optional_depth: args.optional_depth,
        per_operation: std::collections::HashMap::new(),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = if args.json {
        write_json(&mut out, &spec, &options)
    } else {
        let report = tools::generate_each(&spec, &options, drop);
        write_summary(&mut out, &spec, &report)
    };
    let result = written.and_then(|()| out.flush());
    // The process is about to exit: freeing a large document's millions of allocations one by
    // one would cost a tenth of the run.
    std::mem::forget(spec);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not worth a message.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the output: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `{"tools": [...], "report": {...}}`, each tool as soon as it is generated, so that a
/// large catalog is never held in memory at once.
fn write_json(out: &mut impl Write, spec: &Spec, options: &tools::Options) -> std::io::Result<()> {
    out.write_all(b"{\n\"tools\": [")?;
    let mut written = Ok(());
    let mut first = true;
    let report = tools::generate_each(spec, options, |tool| {
        if written.is_ok() {
            let separator: &[u8] = if std::mem::take(&mut first) { b"\n" } else { b",\n" };
            written = out
                .write_all(separator)
                .and_then(|()| Ok(serde_json::to_writer(&mut *out, &crate::mcp::tool_definition(&tool))?));
        }
    });
    written?;
    out.write_all(b"\n],\n\"report\": ")?;
    serde_json::to_writer(&mut *out, &report)?;
    out.write_all(b"\n}\n")
}

fn write_summary(out: &mut impl Write, spec: &Spec, report: &Report) -> std::io::Result<()> {
    let doc = &report.document;
    let files = if doc.files > 1 { format!(", {} files", doc.files) } else { String::new() };
    writeln!(
        out,
        "{} {} ({} {}, {}{files})",
        doc.title,
        doc.version,
        version_name(spec),
        doc.spec_version,
        doc.format
    )?;
    writeln!(
        out,
        "{} operations: {} tools, {} skipped, {} warnings; about {} tokens of tool definitions",
        report.operations,
        report.tools,
        report.skipped.len(),
        report.warnings.len(),
        report.tokens.total
    )?;
    let tools = &report.tokens.per_tool;
    if !tools.is_empty() {
        writeln!(out)?;
        let width = tools.iter().map(|it| it.name.len()).max().unwrap_or(4).max(4);
        writeln!(out, "{:<width$}  {:>6}  OPERATION", "TOOL", "TOKENS")?;
        for tool in tools {
            writeln!(out, "{:<width$}  {:>6}  {}", tool.name, tool.tokens, tool.operation)?;
        }
    }
    if !report.skipped.is_empty() {
        writeln!(out, "\nSkipped:")?;
        for it in &report.skipped {
            writeln!(out, "  {} ({}): {}", it.operation, it.location, it.reason)?;
        }
    }
    if !report.warnings.is_empty() {
        writeln!(out, "\nWarnings:")?;
        for it in &report.warnings {
            let operation = it.operation.as_deref().map(|it| format!("{it}: ")).unwrap_or_default();
            writeln!(out, "  {operation}{} ({})", it.message, it.location)?;
        }
    }
    Ok(())
}

fn version_name(spec: &Spec) -> &'static str {
    match spec.version {
        crate::openapi::Version::Swagger2 => "Swagger",
        _ => "OpenAPI",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_check_asks_an_unspecified_address_on_loopback() {
        let probe = |listen: &str| probe_address(listen.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probe("[::]:9000"), "[::1]:9000");
        assert_eq!(probe("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
