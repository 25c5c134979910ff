//! Runtime settings of the server: `Leptos.toml` (every key documented there)
//! overlaid with `OPSHUB_<KEY>` environment variables.

use crate::server::store::Backend;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// A setting that stops start-up; the message names the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The longest finite retention (100 years); `0` means forever.
const MAX_RETENTION_DAYS: u64 = 36_500;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: String,
    /// Where `GET /metrics` is served; empty: not at all.
    pub metrics_listen: String,
    pub database_url: String,
    pub database_max_connections: u32,
    pub seed_demo_when_empty: bool,
    pub log: String,
    pub secure_cookies: bool,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    pub sign_in_max_failures: u32,
    pub sign_in_window_secs: u64,
    pub sign_in_max_concurrent_hashes: u32,
    pub trusted_proxies: crate::server::auth::TrustedProxies,
    pub workers: usize,
    pub worker_lease_secs: u64,
    pub worker_rescue_interval_secs: u64,
    pub worker_poll_interval_ms: u64,
    pub worker_shutdown_grace_secs: u64,
    pub stall_floor_secs: u64,
    pub stall_ceiling_secs: u64,
    /// A test hook: while this file exists, workers hold their runs
    /// between batches. Empty: never.
    pub engine_pause_file: String,
    pub import_max_bytes: u64,
    pub retain_succeeded_runs_days: u64,
    pub retain_partial_runs_days: u64,
    pub retain_failed_runs_days: u64,
    pub retain_read_notifications_days: u64,
    pub retain_unread_notifications_days: u64,
    pub retain_acknowledged_findings_days: u64,
    pub retain_audit_days: u64,
    pub retain_unused_syncs_days: u64,
    pub retain_rollups_days: u64,
    pub prune_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".into(),
            metrics_listen: String::new(),
            database_url: "sqlite://data/opshub.db".into(),
            database_max_connections: 8,
            seed_demo_when_empty: false,
            log: "info".into(),
            secure_cookies: false,
            session_idle_minutes: 12 * 60,
            session_absolute_hours: 7 * 24,
            sign_in_max_failures: 5,
            sign_in_window_secs: 300,
            // Each argon2 hash holds ~19 MiB: at most ~150 MiB at once.
            sign_in_max_concurrent_hashes: 8,
            trusted_proxies: Default::default(),
            workers: 4,
            worker_lease_secs: 30,
            worker_rescue_interval_secs: 5,
            worker_poll_interval_ms: 1_000,
            worker_shutdown_grace_secs: 20,
            stall_floor_secs: 120,
            stall_ceiling_secs: 3_600,
            engine_pause_file: String::new(),
            import_max_bytes: 64 * 1024 * 1024,
            retain_succeeded_runs_days: 90,
            retain_partial_runs_days: 180,
            retain_failed_runs_days: 180,
            retain_read_notifications_days: 30,
            retain_unread_notifications_days: 90,
            retain_acknowledged_findings_days: 180,
            retain_audit_days: 365,
            retain_unused_syncs_days: 90,
            retain_rollups_days: 400,
            prune_interval_secs: 300,
        }
    }
}

/// Applies `OPSHUB_<KEY>` overrides for each listed field.
macro_rules! env_overrides {
    ($settings:ident, $lookup:ident: $($field:ident),+) => {$(
        let key = concat!("OPSHUB_", stringify!($field)).to_ascii_uppercase();
        if let Some(value) = $lookup(&key) {
            $settings.$field = value.parse().map_err(|_| {
                ConfigError(format!("{key}={value:?} is not a valid value for `{}`", stringify!($field)))
            })?;
        }
    )+};
}

impl Settings {
    /// Reads `path` (a missing default file means defaults) and the process
    /// environment.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
        };
        Self::from_sources(&text, &path.display().to_string(), |key| {
            std::env::var(key).ok()
        })
    }

    pub fn from_sources(
        toml_text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut settings: Settings = toml::from_str(toml_text)
            .map_err(|e| ConfigError(format!("{origin}: {}", e.to_string().trim_end())))?;
        env_overrides!(
            settings,
            env: listen,
            metrics_listen,
            database_url,
            database_max_connections,
            seed_demo_when_empty,
            log,
            secure_cookies,
            session_idle_minutes,
            session_absolute_hours,
            sign_in_max_failures,
            sign_in_window_secs,
            sign_in_max_concurrent_hashes,
            trusted_proxies,
            workers,
            worker_lease_secs,
            worker_rescue_interval_secs,
            worker_poll_interval_ms,
            worker_shutdown_grace_secs,
            stall_floor_secs,
            stall_ceiling_secs,
            engine_pause_file,
            import_max_bytes,
            retain_succeeded_runs_days,
            retain_partial_runs_days,
            retain_failed_runs_days,
            retain_read_notifications_days,
            retain_unread_notifications_days,
            retain_acknowledged_findings_days,
            retain_audit_days,
            retain_unused_syncs_days,
            retain_rollups_days,
            prune_interval_secs
        );
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.metrics_listen_addr()?;
        Backend::from_url(&self.database_url)
            .map_err(|e| ConfigError(format!("`database_url` (OPSHUB_DATABASE_URL): {e}")))?;
        for (value, key) in [
            (self.session_idle_minutes, "session_idle_minutes"),
            (self.session_absolute_hours, "session_absolute_hours"),
            (u64::from(self.sign_in_max_failures), "sign_in_max_failures"),
            (self.sign_in_window_secs, "sign_in_window_secs"),
            (
                u64::from(self.sign_in_max_concurrent_hashes),
                "sign_in_max_concurrent_hashes",
            ),
            (self.worker_lease_secs, "worker_lease_secs"),
            (
                self.worker_rescue_interval_secs,
                "worker_rescue_interval_secs",
            ),
            (self.worker_poll_interval_ms, "worker_poll_interval_ms"),
            (self.import_max_bytes, "import_max_bytes"),
            (self.prune_interval_secs, "prune_interval_secs"),
            (self.stall_floor_secs, "stall_floor_secs"),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "`{key}` (OPSHUB_{}) must be at least 1",
                    key.to_ascii_uppercase()
                )));
            }
        }
        for (days, key) in [
            (
                self.retain_succeeded_runs_days,
                "retain_succeeded_runs_days",
            ),
            (self.retain_partial_runs_days, "retain_partial_runs_days"),
            (self.retain_failed_runs_days, "retain_failed_runs_days"),
            (
                self.retain_read_notifications_days,
                "retain_read_notifications_days",
            ),
            (
                self.retain_unread_notifications_days,
                "retain_unread_notifications_days",
            ),
            (
                self.retain_acknowledged_findings_days,
                "retain_acknowledged_findings_days",
            ),
            (self.retain_audit_days, "retain_audit_days"),
            (self.retain_unused_syncs_days, "retain_unused_syncs_days"),
            (self.retain_rollups_days, "retain_rollups_days"),
        ] {
            if days > MAX_RETENTION_DAYS {
                return Err(ConfigError(format!(
                    "`{key}` (OPSHUB_{}) = {days} is more than {MAX_RETENTION_DAYS} days; use 0 to keep forever",
                    key.to_ascii_uppercase()
                )));
            }
        }
        if self.stall_ceiling_secs < self.stall_floor_secs {
            return Err(ConfigError(format!(
                "`stall_ceiling_secs` (OPSHUB_STALL_CEILING_SECS) = {} is below `stall_floor_secs` = {}",
                self.stall_ceiling_secs, self.stall_floor_secs
            )));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError(
                "`database_max_connections` (OPSHUB_DATABASE_MAX_CONNECTIONS) must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// When a running run counts as stalled.
    pub fn stall_policy(&self) -> crate::domain::StallPolicy {
        let millis = |secs: u64| i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        crate::domain::StallPolicy::new(
            millis(self.stall_floor_secs),
            millis(self.stall_ceiling_secs),
        )
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError(format!(
                "`listen` (OPSHUB_LISTEN) = {:?} is not an address like 127.0.0.1:3000",
                self.listen
            ))
        })
    }

    /// The metrics listener's address; `None` when metrics are off.
    pub fn metrics_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let address = self.metrics_listen.trim();
        if address.is_empty() {
            return Ok(None);
        }
        address.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "`metrics_listen` (OPSHUB_METRICS_LISTEN) = {:?} is not an address like 127.0.0.1:9184 (leave it empty for no metrics)",
                self.metrics_listen
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn file_values_and_env_overrides() {
        let s = Settings::from_sources("listen = \"0.0.0.0:8080\"", "t", no_env).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8080");
        let env =
            |key: &str| (key == "OPSHUB_DATABASE_URL").then(|| "postgres://x@h/db".to_string());
        let s = Settings::from_sources("", "t", env).unwrap();
        assert_eq!(s.database_url, "postgres://x@h/db");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = Settings::from_sources("listen = \"nowhere\"", "t", no_env).unwrap_err();
        assert!(err.0.contains("listen"), "{err}");
        let err = Settings::from_sources("database_url = \"mysql://x\"", "t", no_env).unwrap_err();
        assert!(err.0.contains("database_url"), "{err}");
        let err = Settings::from_sources("colour = \"red\"", "t", no_env).unwrap_err();
        assert!(err.0.contains("colour"), "{err}");
        let env =
            |key: &str| (key == "OPSHUB_DATABASE_MAX_CONNECTIONS").then(|| "many".to_string());
        let err = Settings::from_sources("", "t", env).unwrap_err();
        assert!(err.0.contains("OPSHUB_DATABASE_MAX_CONNECTIONS"), "{err}");
        let env = |key: &str| (key == "OPSHUB_TRUSTED_PROXIES").then(|| "10.0.0.0/99".to_string());
        let err = Settings::from_sources("", "t", env).unwrap_err();
        assert!(err.0.contains("OPSHUB_TRUSTED_PROXIES"), "{err}");
        let err = Settings::from_sources("trusted_proxies = [\"x\"]", "t", no_env).unwrap_err();
        assert!(err.0.contains("trusted_proxies"), "{err}");
        let err = Settings::from_sources("retain_audit_days = 40000", "t", no_env).unwrap_err();
        assert!(err.0.contains("OPSHUB_RETAIN_AUDIT_DAYS"), "{err}");
        let env = |key: &str| (key == "OPSHUB_RETAIN_FAILED_RUNS_DAYS").then(|| "-1".to_string());
        let err = Settings::from_sources("", "t", env).unwrap_err();
        assert!(err.0.contains("OPSHUB_RETAIN_FAILED_RUNS_DAYS"), "{err}");
        let err = Settings::from_sources("prune_interval_secs = 0", "t", no_env).unwrap_err();
        assert!(err.0.contains("prune_interval_secs"), "{err}");
        let s = Settings::from_sources("retain_succeeded_runs_days = 0", "t", no_env).unwrap();
        assert_eq!(s.retain_succeeded_runs_days, 0);
    }

    #[test]
    fn metrics_are_off_unless_an_address_is_given() {
        assert_eq!(Settings::default().metrics_listen_addr().unwrap(), None);
        let s = Settings::from_sources("metrics_listen = \"\"", "t", no_env).unwrap();
        assert_eq!(s.metrics_listen_addr().unwrap(), None);
        let s = Settings::from_sources("metrics_listen = \"127.0.0.1:9184\"", "t", no_env).unwrap();
        assert_eq!(
            s.metrics_listen_addr().unwrap(),
            Some("127.0.0.1:9184".parse().unwrap())
        );
        let env = |key: &str| (key == "OPSHUB_METRICS_LISTEN").then(|| "[::1]:0".to_string());
        let s = Settings::from_sources("metrics_listen = \"127.0.0.1:9184\"", "t", env).unwrap();
        assert_eq!(
            s.metrics_listen_addr().unwrap(),
            Some("[::1]:0".parse().unwrap())
        );
        let err =
            Settings::from_sources("metrics_listen = \"localhost\"", "t", no_env).unwrap_err();
        assert!(err.0.contains("metrics_listen"), "{err}");
        let env = |key: &str| (key == "OPSHUB_METRICS_LISTEN").then(|| "9184".to_string());
        let err = Settings::from_sources("", "t", env).unwrap_err();
        assert!(err.0.contains("OPSHUB_METRICS_LISTEN"), "{err}");
    }

    #[test]
    fn trusted_proxies_from_a_list_or_the_environment() {
        let s = Settings::from_sources("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]", "t", no_env)
            .unwrap();
        assert!(s.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
        assert!(s.trusted_proxies.contains("::1".parse().unwrap()));
        let env = |key: &str| {
            (key == "OPSHUB_TRUSTED_PROXIES").then(|| "192.0.2.1, 192.0.2.2".to_string())
        };
        let s = Settings::from_sources("", "t", env).unwrap();
        assert!(s.trusted_proxies.contains("192.0.2.2".parse().unwrap()));
        assert!(Settings::default().trusted_proxies.is_empty());
    }
}
