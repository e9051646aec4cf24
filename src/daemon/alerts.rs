//! Alerts: a JSON POST to webhooks, an email over SMTP (STARTTLS or implicit TLS), or a command — whichever `[alerts]` names.
//! Each channel is tried independently; a failing channel is reported, never fatal. Secrets (SMTP password)
//! come from `env:`/`file:` references and never appear in messages.

use std::io::Write;
use std::process::Stdio;

use serde::Serialize;

use crate::children::ChildEnv;
use crate::config::AlertsConfig;

/// One alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// `backup_failed`, `backup_stale`, `check_failed`, `test_restore_failed`, `recovered`, `test`.
    pub kind: String,
    /// The job the alert is about (`-` for a test alert).
    pub job: String,
    /// `critical`, `warning` or `healthy`.
    pub severity: String,
    /// One line for people.
    pub message: String,
    /// When the alert was raised (for a run, when the run ended).
    pub time: jiff::Timestamp,
    /// The machine that sends the alert.
    pub host: String,
}

impl Alert {
    /// An alert sent from this machine (its host name is filled in).
    pub fn new(kind: &str, job: &str, severity: &str, message: String, time: jiff::Timestamp) -> Alert {
        Alert { kind: kind.into(), job: job.into(), severity: severity.into(), message, time, host: crate::hostname() }
    }

    fn subject(&self) -> String {
        format!("[gumvault {}] {}: {}", self.severity, self.job, self.kind.replace('_', " "))
    }
}

/// Why one channel could not deliver an alert, in words for the daemon's log (never holding a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(String);

impl From<String> for ChannelError {
    fn from(s: String) -> ChannelError {
        ChannelError(s)
    }
}

/// Sends an alert to every configured channel; returns one message per channel that failed. `child_env` is the
/// environment of the programs gumvault starts for this config (`Config::child_env`): the alert command gets it,
/// plus the variables `command_env` names.
pub fn send(config: &AlertsConfig, child_env: &ChildEnv, alert: &Alert) -> Vec<String> {
    let mut failures = Vec::new();
    let body = serde_json::to_vec(alert).expect("alerts serialize");
    for url in &config.webhooks {
        if let Err(e) = post_json(url, &body) {
            failures.push(format!("webhook {}: {e}", redact_url(url)));
        }
    }
    let command_env = child_env.clone().passing(&config.command_env);
    if let Some(cmd) = &config.command
        && let Err(e) = run_command(cmd, &command_env, alert, &body)
    {
        failures.push(format!("alert command: {e}"));
    }
    if let Some(email) = &config.email
        && let Err(e) = send_email(email, alert)
    {
        failures.push(format!("email via {}: {e}", email.server));
    }
    failures
}

/// True when some channel is configured.
pub fn any_channel(config: &AlertsConfig) -> bool {
    !config.webhooks.is_empty() || config.command.is_some() || config.email.is_some()
}

fn post_json(url: &str, body: &[u8]) -> Result<(), ChannelError> {
    // Built inside the runtime: it installs the TLS crypto provider the client needs.
    let send = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| ChannelError(e.to_string()))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| ChannelError(e.to_string()))?;
        if response.status().is_success() { Ok(()) } else { Err(ChannelError(format!("HTTP {}", response.status()))) }
    };
    crate::runtime::block_on(send).map_err(|e| ChannelError(e.to_string()))?
}

/// Runs `sh -c CMD` with the alert as JSON on stdin and its fields in GUMVAULT_ALERT_* variables, in `env`: no
/// repository password, no secret of the config but those `command_env` names.
fn run_command(cmd: &str, env: &ChildEnv, alert: &Alert, body: &[u8]) -> Result<(), ChannelError> {
    let mut child = env
        .command("sh")
        .arg("-c")
        .arg(cmd)
        .env("GUMVAULT_ALERT_KIND", &alert.kind)
        .env("GUMVAULT_ALERT_JOB", &alert.job)
        .env("GUMVAULT_ALERT_SEVERITY", &alert.severity)
        .env("GUMVAULT_ALERT_MESSAGE", &alert.message)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| ChannelError(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body);
    }
    let status = child.wait().map_err(|e| ChannelError(e.to_string()))?;
    if status.success() { Ok(()) } else { Err(ChannelError(format!("exited with {status}"))) }
}

fn send_email(cfg: &crate::config::EmailConfig, alert: &Alert) -> Result<(), ChannelError> {
    use crate::config::SmtpTls;
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{SmtpTransport, Transport};

    let from: Mailbox = cfg.from.parse().map_err(|e| ChannelError(format!("from address {:?}: {e}", cfg.from)))?;
    let mut builder = lettre::Message::builder().from(from).subject(alert.subject());
    for to in &cfg.to {
        builder = builder.to(to.parse().map_err(|e| ChannelError(format!("to address {to:?}: {e}")))?);
    }
    let text = format!(
        "{}\n\njob: {}\nkind: {}\nseverity: {}\nhost: {}\ntime: {}\n",
        alert.message, alert.job, alert.kind, alert.severity, alert.host, alert.time
    );
    let message = builder.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| ChannelError(e.to_string()))?;
    let default_port = if cfg.tls() == SmtpTls::Implicit { 465 } else { 587 };
    let (host, port) = match cfg.server.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| format!("bad port in {:?}", cfg.server))?),
        None => (cfg.server.clone(), default_port),
    };
    let mut transport = SmtpTransport::builder_dangerous(&host).port(port);
    if cfg.tls() != SmtpTls::None {
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(path) = &cfg.ca_file {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|e| ChannelError(format!("cannot read ca_file {shown}: {e}")))?;
            // lettre accepts a file without certificates; say so here rather than as a TLS failure later.
            if CertificateDer::pem_slice_iter(&pem).filter(Result::is_ok).count() == 0 {
                return Err(ChannelError(format!(
                    "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
            let cert = lettre::transport::smtp::client::Certificate::from_pem(&pem)
                .map_err(|e| ChannelError(format!("ca_file {shown}: {e}")))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build_rustls().map_err(|e| match &cfg.ca_file {
            Some(path) => format!("ca_file {}: {e}", path.display()),
            None => e.to_string(),
        })?;
        transport = transport.tls(match cfg.tls() {
            SmtpTls::Implicit => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        let user = user.resolve().map_err(|e| ChannelError(e.to_string()))?;
        let pass = pass.resolve().map_err(|e| ChannelError(e.to_string()))?;
        transport = transport.credentials(Credentials::new(user, pass));
    }
    let sent = transport.timeout(Some(std::time::Duration::from_secs(30))).build().send(&message);
    sent.map_err(|e| explain_smtp_error(e, &host, cfg.ca_file.as_deref()))?;
    Ok(())
}

/// lettre's message, with what to do about the mistakes people make when setting up a relay.
fn explain_smtp_error(e: lettre::transport::smtp::Error, host: &str, ca_file: Option<&std::path::Path>) -> String {
    let text = e.to_string();
    let hint = if text.contains("certificate") {
        match ca_file {
            None => " (the server's TLS certificate is not trusted: if it comes from a private CA, name its PEM \
                     file in [alerts.email] ca_file)"
                .to_string(),
            Some(p) => format!(
                " (the server's certificate is not signed by a CA in ca_file {} or not issued for {host})",
                p.display()
            ),
        }
    } else if e.status().is_some_and(|code| code.to_string() == "535") {
        " (the server refused the login: check username and password in [alerts.email])".to_string()
    } else if e.is_timeout() {
        " (no answer within 30 s: check server and port in [alerts.email])".to_string()
    } else {
        String::new()
    };
    format!("{text}{hint}")
}

/// A URL without credentials or query, for messages (webhook URLs often carry a secret token).
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(invalid URL)".into(),
    }
}
