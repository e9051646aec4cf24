//! `[alerts]` (webhooks, a command, e-mail) and `[http]` (the status endpoint).

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Duration, Secret};

/// `[alerts]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// URLs that receive each alert as a JSON POST (Slack, PagerDuty, your own).
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// A shell command run for each alert, with the alert as JSON on standard input.
    pub command: Option<String>,
    /// Variables the alert command gets although gumvault withholds them from its children (AWS keys for
    /// `aws sns publish`, a token that is an `env:` reference elsewhere). Never the repository password.
    #[serde(default)]
    pub command_env: Vec<String>,
    /// `[alerts.email]`.
    pub email: Option<EmailConfig>,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (submission, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: only for a relay on loopback.
    None,
}

/// `[alerts.email]`: SMTP, by default with STARTTLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the SMTP server (port 587 when left out, 465 with `tls = "implicit"`).
    pub server: String,
    /// See [`EmailConfig::tls`].
    #[serde(rename = "tls")]
    pub tls_mode: Option<SmtpTls>,
    /// The older spelling: `starttls = false` is `tls = "none"`.
    pub starttls: Option<bool>,
    /// The SMTP login user, or a reference to it (no login when left out).
    pub username: Option<Secret>,
    /// The SMTP login password, or a reference to it.
    pub password: Option<Secret>,
    /// A PEM file of root certificates to trust besides the public ones (a relay with a private CA).
    pub ca_file: Option<PathBuf>,
    /// The sender address of the alert mails.
    pub from: String,
    /// The addresses every alert is mailed to.
    pub to: Vec<String>,
}

impl EmailConfig {
    /// How the connection is protected: `tls`, else the older `starttls`, else STARTTLS.
    pub fn tls(&self) -> SmtpTls {
        match (self.tls_mode, self.starttls) {
            (Some(mode), _) => mode,
            (None, Some(false)) => SmtpTls::None,
            (None, _) => SmtpTls::Starttls,
        }
    }
}

/// `[http]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default 127.0.0.1:8330).
    pub listen: Option<String>,
    /// A bearer token that /status and /metrics need (/healthz and the dashboard page do not).
    pub token: Option<Secret>,
    /// Without a token, the host names (besides IP addresses, `localhost` and the listen address) a request's
    /// `Host` may carry to see /status and /metrics: the names the endpoint is reached by, e.g. through a
    /// proxy. Any other name is refused, so a page whose name was re-pointed at this machine (DNS rebinding)
    /// cannot read the status.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How often what the endpoint serves is recomputed in the background (default 60s): requests never touch
    /// storage, so the repository is listed at most once per interval.
    pub refresh: Option<Duration>,
}
