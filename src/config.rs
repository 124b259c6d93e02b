//! Loads `config/switchboard.toml` and `config/agents.toml`, then applies the environment
//! (SPEC §2), into the engine's plain config structs.
//!
//! A bad file stops start-up with the file, the key and what was expected; secrets come
//! from the environment or the file and are wrapped in [`Secret`] at once.

use std::path::{Path, PathBuf};

use actors::config::{EngineConfig, Secret};
use actors::domain::agents::AgentsConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
}

/// Everything read from the configuration folder.
#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: EngineConfig,
    pub agents: AgentsConfig,
    /// Folder of the demo business data (`catalog/*.json`).
    pub catalog_dir: PathBuf,
}

/// Reads the configuration file `path` (its folder also holds `agents.toml`, `catalog/` and
/// `prompts/`), then the process environment.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with_env(path, |name| std::env::var(name).ok())
}

/// As [`load`], with the environment supplied by `env` (tests pass a map).
pub fn load_with_env(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut engine: EngineConfig = parse_toml(path)?;
    engine
        .voice
        .check()
        .map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
    apply_env(&mut engine, &env)?;
    if engine.voice.prompts_dir.is_relative() {
        engine.voice.prompts_dir = dir.join(&engine.voice.prompts_dir);
    }
    let agents_path = dir.join("agents.toml");
    let agents: AgentsConfig = parse_toml(&agents_path)?;
    agents.validate().map_err(|err| ConfigError::Invalid {
        path: agents_path.clone(),
        message: err.to_string(),
    })?;
    Ok(Settings {
        engine,
        agents,
        catalog_dir: dir.join("catalog"),
    })
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| ConfigError::Invalid {
        path: path.to_path_buf(),
        // toml's message names the key and the line, and what was expected there.
        message: err.to_string().trim().replace('\n', " "),
    })
}

/// The documented variables override the files (SPEC §2).
fn apply_env(
    config: &mut EngineConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = get("TWILIO_ACCOUNT_SID") {
        config.twilio.account_sid = Some(v);
    }
    if let Some(v) = get("TWILIO_AUTH_TOKEN") {
        config.twilio.auth_token = Some(Secret::new(v));
    }
    if let Some(v) = get("TWILIO_API_BASE") {
        config.twilio.api_base = v;
    }
    if let Some(v) = get("TWILIO_CONVERSATIONS_API_BASE") {
        config.twilio.conversations_api_base = v;
    }
    if let Some(v) = get("TWILIO_PHONE_NUMBER") {
        config.twilio.phone_number = Some(v);
    }
    if let Some(v) = get("TWILIO_MESSAGING_SERVICE_SID") {
        config.twilio.messaging_service_sid = Some(v);
    }
    if let Some(v) = get("OPENAI_API_KEY") {
        config.openai.api_key = Some(Secret::new(v));
    }
    if let Some(v) = get("OPENAI_BASE_URL") {
        config.openai.base_url = v;
    }
    if let Some(v) = get("PUBLIC_URL") {
        config.server.public_url = v;
    }
    if let Some(v) = get("SWITCHBOARD_ADMIN_TOKEN") {
        config.admin.token = Some(Secret::new(v));
    }
    if let Some(v) = get("SWITCHBOARD_DATA_DIR") {
        config.storage.data_dir = PathBuf::from(v);
    }
    if let Some(v) = get("SWITCHBOARD_BIND") {
        config.server.bind = v;
    }
    if let Some(v) = get("DATABASE_URL") {
        config.storage.database_url = Some(Secret::new(v));
    }
    if let Some(v) = get("REDIS_URL") {
        config.limits.redis_url = Some(Secret::new(v));
    }
    if let Some(v) = get("SWITCHBOARD_NODE_ID") {
        config.cluster.node_id = v;
    }
    for (name, url, schemes) in [
        (
            "DATABASE_URL",
            config.storage.database_url.as_ref(),
            &["postgres", "postgresql"][..],
        ),
        (
            "REDIS_URL",
            config.limits.redis_url.as_ref(),
            &["redis", "rediss"][..],
        ),
    ] {
        let Some(url) = url else { continue };
        let scheme = url::Url::parse(url.expose())
            .map(|u| u.scheme().to_owned())
            .map_err(|err| ConfigError::Env {
                name,
                message: format!("not a URL ({err})"),
            })?;
        if !schemes.contains(&scheme.as_str()) {
            return Err(ConfigError::Env {
                name,
                message: format!("must start with {}://", schemes.join(":// or ")),
            });
        }
    }
    for (name, url) in [
        ("PUBLIC_URL", &config.server.public_url),
        ("OPENAI_BASE_URL", &config.openai.base_url),
    ] {
        let parsed = url::Url::parse(url).map_err(|err| ConfigError::Env {
            name,
            message: format!("'{url}' is not a URL ({err})"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Env {
                name,
                message: format!("'{url}' must start with http:// or https://"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn repo_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml")
    }

    #[test]
    fn the_shipped_configuration_loads() {
        let settings = load_with_env(&repo_config(), |_| None).expect("config loads");
        assert!(settings.engine.twilio.auth_token.is_none());
        assert!(settings
            .agents
            .agent(&settings.agents.default_agent)
            .is_some());
        assert!(settings
            .engine
            .voice
            .prompts_dir
            .ends_with("config/prompts"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let env: HashMap<&str, &str> = [
            ("OPENAI_BASE_URL", "http://127.0.0.1:9100/v1"),
            ("PUBLIC_URL", "https://abc.example.com"),
            ("TWILIO_AUTH_TOKEN", "tok"),
        ]
        .into();
        let settings = load_with_env(&repo_config(), |k| env.get(k).map(|v| v.to_string()))
            .expect("config loads");
        assert_eq!(settings.engine.openai.base_url, "http://127.0.0.1:9100/v1");
        assert_eq!(
            settings.engine.server.public_ws_url("/twilio/media"),
            "wss://abc.example.com/twilio/media"
        );
        assert_eq!(
            settings
                .engine
                .twilio
                .auth_token
                .as_ref()
                .map(Secret::expose),
            Some("tok")
        );
    }

    #[test]
    fn a_bad_key_names_the_file_and_the_key() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("switchboard.toml");
        std::fs::write(&path, "[voice]\nhold_after_ms = \"soon\"\n").expect("write");
        let err = load_with_env(&path, |_| None).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("switchboard.toml"), "{text}");
        assert!(text.contains("hold_after_ms"), "{text}");
        std::fs::write(&path, "[voice]\nhold_after = 3\n").expect("write");
        let text = load_with_env(&path, |_| None)
            .expect_err("must fail")
            .to_string();
        assert!(text.contains("hold_after"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_turn_detection_the_engine_cannot_honour_stops_start_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "[voice]\nturn_detection = { type = \"server_vad\", create_response = false }\n",
        )
        .expect("write");
        let text = load_with_env(&path, |_| None)
            .expect_err("must fail")
            .to_string();
        assert!(text.contains("switchboard.toml"), "{text}");
        assert!(
            text.contains("voice.turn_detection.create_response"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_url_in_the_environment_is_refused() {
        let err = load_with_env(&repo_config(), |k| {
            (k == "PUBLIC_URL").then(|| "ftp://x".to_string())
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("PUBLIC_URL"));
    }
}
