//! Loads the configuration — `switchboard.toml`, `agents.toml`, `catalog/*.json` and
//! `prompts/*` — then applies the environment (SPEC §2), into the engine's plain config
//! structs.
//!
//! Every piece is built into the binary ([`crate::defaults`]); the configuration folder
//! overrides them piece by piece, as a user editing one file expects:
//! * the folder is the one of `--config FILE` / `SWITCHBOARD_CONFIG`, else `./config`;
//! * `switchboard.toml`: its keys override the built-in file's key by key (tables merge,
//!   any other value — a list too — replaces); a missing file in the default folder means
//!   the built-in one, a missing `--config FILE` is an error;
//! * `agents.toml`: replaces the built-in agents and tools as a whole (agents name each
//!   other's tools and handoffs, so halves of two files would not fit together);
//! * `catalog/<name>.json` and `prompts/<name>.wav` (`voice.prompts_dir`): each file present
//!   replaces the built-in one of that name, the others stay built in.
//!
//! A bad file stops start-up with the file, the key and what was expected — every such
//! problem, not just the first. Secrets come from the environment or the file and are
//! wrapped in [`Secret`] at once.

use std::path::{Path, PathBuf};

use actors::config::{EngineConfig, Secret, ServerConfig};
use actors::domain::agents::AgentsConfig;

use crate::defaults::{self, Source};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("{0}")]
    Catalog(#[from] actors::domain::catalog::CatalogError),
    #[error("{0}")]
    Prompt(#[from] actors::audio::AudioError),
    #[error("{} problems in the configuration:\n  {}", .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// One error as itself, several as [`ConfigError::Several`].
    fn from_list(mut errors: Vec<ConfigError>) -> ConfigError {
        if errors.len() == 1 {
            errors.swap_remove(0)
        } else {
            ConfigError::Several(errors)
        }
    }

    /// Every single problem this error stands for.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(errors) => errors.iter().collect(),
            one => vec![one],
        }
    }
}

/// Everything read from the configuration folder.
#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: EngineConfig,
    pub agents: AgentsConfig,
    /// Folder of the demo business data (`catalog/*.json`); files missing there are built in.
    pub catalog_dir: PathBuf,
}

/// Where each piece of the configuration came from, for `check-config`.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The configuration folder.
    pub dir: PathBuf,
    /// `switchboard.toml` over the built-in one, if there is one.
    pub switchboard: Source,
    pub agents: Source,
    /// `catalog/*.json`, by name.
    pub catalog: Vec<(&'static str, Source)>,
    /// `prompts/*.wav` the server plays, by name.
    pub prompts: Vec<(&'static str, Source)>,
    /// Environment variables that overrode the files (names only).
    pub env: Vec<&'static str>,
}

/// The prompts the server plays (`caller.wav` is the load generator's).
pub const SERVER_PROMPTS: [&str; 3] = ["hold.wav", "fallback.wav", "goodbye.wav"];

/// Reads the configuration file `path` (its folder also holds `agents.toml`, `catalog/` and
/// `prompts/`), then the process environment. The file must exist.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    load_with_env(path, |name| std::env::var(name).ok())
}

/// As [`load`], with the environment supplied by `env` (tests pass a map).
pub fn load_with_env(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    load_from(Some(path), env)
}

/// `--config FILE` when given (it must exist), else `./config/switchboard.toml` when it
/// exists, else the built-in configuration; then the environment.
pub fn load_from(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    read(file, &env, false).map(|(settings, _)| settings)
}

/// What `switchboard check-config` checks: [`load_from`], and also that the catalog and
/// the prompts in force load. Every problem found is reported.
pub fn check(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Settings, Sources), ConfigError> {
    read(file, &env, true)
}

/// The folder `check-config`, `serve` and `init` use when given no `--config`.
pub const DEFAULT_DIR: &str = "config";

fn read(
    file: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
    thorough: bool,
) -> Result<(Settings, Sources), ConfigError> {
    let (dir, path, required) = match file {
        Some(file) => (
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            file.to_path_buf(),
            true,
        ),
        None => (
            PathBuf::from(DEFAULT_DIR),
            Path::new(DEFAULT_DIR).join("switchboard.toml"),
            false,
        ),
    };
    let mut errors = Vec::new();

    // switchboard.toml: the file's keys over the built-in ones.
    let built_in_path = PathBuf::from("built-in switchboard.toml");
    let mut table =
        parse_table(defaults::SWITCHBOARD_TOML, &built_in_path, &mut errors).unwrap_or_default();
    let switchboard = if required || path.is_file() {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Some(user) = parse_table(&text, &path, &mut errors) {
                    errors.extend(key_errors(&path, &user));
                    merge(&mut table, user);
                }
            }
            Err(source) => errors.push(ConfigError::Read {
                path: path.clone(),
                source,
            }),
        }
        Source::File(path.clone())
    } else {
        Source::BuiltIn
    };
    let shown = match &switchboard {
        Source::File(path) => path.clone(),
        Source::BuiltIn => built_in_path,
    };
    let mut engine = EngineConfig::default();
    if errors.is_empty() {
        match table.try_into::<EngineConfig>() {
            Ok(parsed) => engine = parsed,
            Err(err) => errors.push(ConfigError::Invalid {
                path: shown.clone(),
                message: one_line(&err.to_string()),
            }),
        }
        if let Err(message) = ServerConfig::check_threads(engine.server.threads) {
            errors.push(ConfigError::Key {
                path: shown.clone(),
                key: "server.threads".into(),
                message,
            });
        }
        if let Err(message) = engine.voice.check() {
            errors.push(ConfigError::Invalid {
                path: shown,
                message,
            });
        }
    }
    let applied = apply_env(&mut engine, env, &mut errors);
    if engine.voice.prompts_dir.is_relative() {
        engine.voice.prompts_dir = dir.join(&engine.voice.prompts_dir);
    }
    // A consent notice in a file of the prompts folder is read once, here.
    let notice = engine.voice.consent_notice.trim();
    if actors::config::is_prompt_audio(notice) {
        let path = engine.voice.prompts_dir.join(notice);
        if let Err(source) = std::fs::metadata(&path) {
            errors.push(ConfigError::Read { path, source });
        }
    } else if notice.ends_with(".txt") {
        let path = engine.voice.prompts_dir.join(notice);
        match std::fs::read_to_string(&path) {
            Ok(text) => engine.voice.consent_text = Some(text),
            Err(source) => errors.push(ConfigError::Read { path, source }),
        }
    }

    // agents.toml: the file, or the built-in one, as a whole.
    let agents_source = defaults::source_of(&dir.join("agents.toml"));
    let (agents_path, agents_text) = match &agents_source {
        Source::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => (path.clone(), Some(text)),
            Err(source) => {
                errors.push(ConfigError::Read {
                    path: path.clone(),
                    source,
                });
                (path.clone(), None)
            }
        },
        Source::BuiltIn => (
            PathBuf::from("built-in agents.toml"),
            Some(defaults::AGENTS_TOML.to_owned()),
        ),
    };
    let agents = agents_text.and_then(|text| {
        let agents: AgentsConfig = toml::from_str(&text)
            .map_err(|err| {
                errors.push(ConfigError::Invalid {
                    path: agents_path.clone(),
                    message: one_line(&err.to_string()),
                })
            })
            .ok()?;
        agents
            .validate()
            .map_err(|err| {
                errors.push(ConfigError::Invalid {
                    path: agents_path.clone(),
                    message: err.to_string(),
                })
            })
            .ok()?;
        Some(agents)
    });

    let catalog_dir = dir.join("catalog");
    let prompts_dir = engine.voice.prompts_dir.clone();
    if thorough {
        if let Err(problems) = defaults::catalog(&catalog_dir) {
            errors.extend(problems.into_iter().map(ConfigError::from));
        }
        for name in SERVER_PROMPTS {
            if let Err(err) = defaults::prompt(&prompts_dir, name) {
                errors.push(err.into());
            }
        }
    }
    let sources = Sources {
        switchboard,
        agents: agents_source,
        catalog: actors::domain::catalog::FILES
            .iter()
            .map(|name| (*name, defaults::source_of(&catalog_dir.join(name))))
            .collect(),
        prompts: SERVER_PROMPTS
            .iter()
            .map(|name| (*name, defaults::source_of(&prompts_dir.join(name))))
            .collect(),
        env: applied,
        dir,
    };
    match agents {
        Some(agents) if errors.is_empty() => Ok((
            Settings {
                engine,
                agents,
                catalog_dir,
            },
            sources,
        )),
        _ => Err(ConfigError::from_list(errors)),
    }
}

fn one_line(message: &str) -> String {
    // toml's message names the key and the line, and what was expected there.
    message.trim().replace('\n', " ")
}

fn parse_table(text: &str, path: &Path, errors: &mut Vec<ConfigError>) -> Option<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|err| {
            errors.push(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: one_line(&err.to_string()),
            })
        })
        .ok()
}

/// Every key of `user` that the configuration does not take, each with what was expected:
/// each key is tried on its own, so one mistake does not hide the next.
fn key_errors(path: &Path, user: &toml::Table) -> Vec<ConfigError> {
    let try_alone = |section: &str, key: Option<(&str, &toml::Value)>, value: &toml::Value| {
        let mut probe = toml::Table::new();
        let inner = match key {
            Some((key, value)) => {
                let mut table = toml::Table::new();
                table.insert(key.to_owned(), value.clone());
                toml::Value::Table(table)
            }
            None => value.clone(),
        };
        probe.insert(section.to_owned(), inner);
        probe.try_into::<EngineConfig>().err()
    };
    let mut errors = Vec::new();
    for (section, value) in user {
        let Some(err) = try_alone(section, None, value) else {
            continue;
        };
        let empty = toml::Value::Table(toml::Table::new());
        let known_section = try_alone(section, None, &empty).is_none();
        match value.as_table().filter(|_| known_section) {
            Some(keys) if !keys.is_empty() => {
                for (key, inner) in keys {
                    if let Some(err) = try_alone(section, Some((key, inner)), value) {
                        errors.push(ConfigError::Key {
                            path: path.to_path_buf(),
                            key: format!("{section}.{key}"),
                            message: one_line(&err.to_string()),
                        });
                    }
                }
            }
            _ => errors.push(ConfigError::Key {
                path: path.to_path_buf(),
                key: section.clone(),
                message: one_line(&err.to_string()),
            }),
        }
    }
    errors
}

/// `over`'s keys into `base`: tables merge key by key, any other value replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The documented variables override the files (SPEC §2). Returns the names of those
/// that were set; problems are added to `errors`.
fn apply_env(
    config: &mut EngineConfig,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<&'static str> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut applied = Vec::new();
    let mut take = |name: &'static str| {
        let value = get(name);
        if value.is_some() {
            applied.push(name);
        }
        value
    };
    if let Some(v) = take("TWILIO_ACCOUNT_SID") {
        config.twilio.account_sid = Some(v);
    }
    if let Some(v) = take("TWILIO_AUTH_TOKEN") {
        config.twilio.auth_token = Some(Secret::new(v));
    }
    if let Some(v) = take("TWILIO_API_BASE") {
        config.twilio.api_base = v;
    }
    if let Some(v) = take("TWILIO_CONVERSATIONS_API_BASE") {
        config.twilio.conversations_api_base = v;
    }
    if let Some(v) = take("TWILIO_PHONE_NUMBER") {
        config.twilio.phone_number = Some(v);
    }
    if let Some(v) = take("TWILIO_MESSAGING_SERVICE_SID") {
        config.twilio.messaging_service_sid = Some(v);
    }
    // Numbers and identity (Lookup v2, Verify v2).
    if let Some(v) = take("TWILIO_LOOKUP_API_BASE") {
        config.twilio.lookup_api_base = v;
    }
    if let Some(v) = take("TWILIO_VERIFY_API_BASE") {
        config.twilio.verify_api_base = v;
    }
    if let Some(v) = take("TWILIO_VERIFY_SERVICE_SID") {
        config.twilio.verify_service_sid = Some(v);
    }
    if let Some(v) = take("OPENAI_API_KEY") {
        config.openai.api_key = Some(Secret::new(v));
    }
    if let Some(v) = take("OPENAI_BASE_URL") {
        config.openai.base_url = v;
    }
    if let Some(v) = take("PUBLIC_URL") {
        config.server.public_url = v;
    }
    if let Some(v) = take("SWITCHBOARD_ADMIN_TOKEN") {
        config.admin.token = Some(Secret::new(v));
    }
    if let Some(v) = take("SWITCHBOARD_DATA_DIR") {
        config.storage.data_dir = PathBuf::from(v);
    }
    if let Some(v) = take("SWITCHBOARD_BIND") {
        config.server.bind = v;
    }
    if let Some(v) = take("DATABASE_URL") {
        config.storage.database_url = Some(Secret::new(v));
    }
    if let Some(v) = take("REDIS_URL") {
        config.limits.redis_url = Some(Secret::new(v));
    }
    if let Some(v) = take("SWITCHBOARD_REDIS_PREFIX") {
        config.limits.redis_key_prefix = v;
    }
    if let Some(v) = take("SWITCHBOARD_NODE_ID") {
        config.cluster.node_id = v;
    }
    if let Some(v) = take("SWITCHBOARD_THREADS") {
        let threads = v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("'{v}' is not a number of threads (0 = automatic)"));
        match threads.and_then(|n| ServerConfig::check_threads(n).map(|()| n)) {
            Ok(n) => config.server.threads = n,
            Err(message) => errors.push(ConfigError::Env {
                name: "SWITCHBOARD_THREADS",
                message,
            }),
        }
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
        match url::Url::parse(url.expose()) {
            Err(err) => errors.push(ConfigError::Env {
                name,
                message: format!("not a URL ({err})"),
            }),
            Ok(parsed) if !schemes.contains(&parsed.scheme()) => errors.push(ConfigError::Env {
                name,
                message: format!("must start with {}://", schemes.join(":// or ")),
            }),
            Ok(_) => {}
        }
    }
    for (name, url) in [
        ("PUBLIC_URL", &config.server.public_url),
        ("OPENAI_BASE_URL", &config.openai.base_url),
        ("TWILIO_LOOKUP_API_BASE", &config.twilio.lookup_api_base),
        ("TWILIO_VERIFY_API_BASE", &config.twilio.verify_api_base),
    ] {
        match url::Url::parse(url) {
            Err(err) => errors.push(ConfigError::Env {
                name,
                message: format!("'{url}' is not a URL ({err})"),
            }),
            Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
                errors.push(ConfigError::Env {
                    name,
                    message: format!("'{url}' must start with http:// or https://"),
                })
            }
            Ok(_) => {}
        }
    }
    applied
}

/// The effective configuration as `check-config` prints it: where each piece came from,
/// then the settings in force as TOML, secrets redacted, then a summary of the agents.
pub fn describe(settings: &Settings, sources: &Sources) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# switchboard: the configuration in force (secrets redacted)"
    );
    let _ = writeln!(out, "# configuration folder: {}", sources.dir.display());
    let _ = writeln!(
        out,
        "# switchboard.toml: built-in defaults{}",
        match &sources.switchboard {
            Source::File(path) => format!(", overridden by {}", path.display()),
            Source::BuiltIn => String::new(),
        }
    );
    if !sources.env.is_empty() {
        let _ = writeln!(out, "# environment: {}", sources.env.join(", "));
    }
    let _ = writeln!(out, "# agents.toml: {}", sources.agents);
    for (name, source) in &sources.catalog {
        let _ = writeln!(out, "# catalog/{name}: {source}");
    }
    for (name, source) in &sources.prompts {
        let _ = writeln!(out, "# prompts/{name}: {source}");
    }
    out.push('\n');
    match toml::to_string_pretty(&settings.engine) {
        Ok(text) => out.push_str(&text),
        Err(err) => {
            let _ = writeln!(out, "# (the settings could not be shown: {err})");
        }
    }
    let agents = &settings.agents;
    let _ = writeln!(out, "\n# agents (default: {})", agents.default_agent);
    for agent in &agents.agents {
        let _ = writeln!(
            out,
            "#   {}: tools [{}], hands off to [{}]",
            agent.name,
            agent.tools.join(", "),
            agent.handoffs.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "# tools: {}",
        agents
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
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
    fn a_consent_notice_in_a_prompts_file_is_read_and_a_missing_one_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "[voice]\nconsent_notice = \"consent.txt\"\n").expect("write");
        let missing = check(Some(&path), |_| None).expect_err("the file is missing");
        assert!(missing.to_string().contains("consent.txt"), "{missing}");
        std::fs::create_dir(dir.path().join("prompts")).expect("mkdir");
        std::fs::write(
            dir.path().join("prompts/consent.txt"),
            "This call may be recorded.\n",
        )
        .expect("write");
        let (settings, _) = check(Some(&path), |_| None).expect("config loads");
        assert_eq!(
            settings.engine.voice.consent(),
            Some(actors::config::ConsentNotice::Say(
                "This call may be recorded."
            ))
        );
        // An audio file there is played from our URL; a missing one is named.
        std::fs::write(&path, "[voice]\nconsent_notice = \"consent.mp3\"\n").expect("write");
        let missing = check(Some(&path), |_| None).expect_err("the audio is missing");
        assert!(missing.to_string().contains("consent.mp3"), "{missing}");
        std::fs::write(dir.path().join("prompts/consent.mp3"), b"ID3").expect("write");
        let (settings, _) = check(Some(&path), |_| None).expect("config loads");
        assert_eq!(
            settings.engine.voice.consent(),
            Some(actors::config::ConsentNotice::PlayPrompt("consent.mp3"))
        );
        assert!(!actors::config::is_prompt_audio("../consent.wav"));
        assert!(!actors::config::is_prompt_audio(".wav"));
    }

    #[test]
    fn a_menu_key_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "[voice.menu.keys]\n12 = \"agent\"\n").expect("write");
        let err = check(Some(&path), |_| None).expect_err("refused");
        assert!(err.to_string().contains("voice.menu.keys"), "{err}");
    }

    #[test]
    fn a_file_overrides_the_built_in_configuration_key_by_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "[server]\ndrain_secs = 5\n[voice.reconnect]\nmax_ms = 900\n",
        )
        .expect("write");
        let (settings, sources) = check(Some(&path), |_| None).expect("config loads");
        let engine = &settings.engine;
        assert_eq!(engine.server.drain_secs, 5);
        assert_eq!(engine.voice.reconnect.max_ms, 900);
        // The rest is the built-in file's, not merely the structs' defaults.
        assert_eq!(engine.voice.reconnect.base_ms, 200);
        assert!(engine.voice.relay.welcome_greeting.contains("Northwind"));
        assert_eq!(sources.switchboard, Source::File(path));
        assert_eq!(sources.agents, Source::BuiltIn);
        assert!(sources.catalog.iter().all(|(_, s)| *s == Source::BuiltIn));
        assert!(settings.engine.voice.prompts_dir.starts_with(dir.path()));
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "[voice]\nhold_after_ms = \"soon\"\ngreet = 3\n[nope]\nx = 1\n",
        )
        .expect("write");
        std::fs::create_dir_all(dir.path().join("prompts")).expect("dir");
        std::fs::write(dir.path().join("prompts/hold.wav"), b"not audio").expect("write");
        let err = check(Some(&path), |k| {
            (k == "OPENAI_BASE_URL").then(|| "nope".into())
        })
        .expect_err("must fail");
        let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        for expected in [
            "voice.hold_after_ms",
            "voice.greet",
            ": nope:",
            "hold.wav",
            "OPENAI_BASE_URL",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected} missing: {problems:#?}"
            );
        }
        // Start-up reports the configuration's problems the same way (prompts are read later).
        let text = load_with_env(&path, |_| None)
            .expect_err("must fail")
            .to_string();
        assert!(text.starts_with("3 problems"), "{text}");
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
    fn server_threads_defaults_to_automatic_and_absurd_counts_are_refused() {
        let settings = load_with_env(&repo_config(), |_| None).expect("config loads");
        assert_eq!(settings.engine.server.threads, 0);
        assert_eq!(ServerConfig::default().threads, 0);
        assert_eq!(settings.engine.server.threads_or(|| 7), 7);

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "[server]\nthreads = 1\n").expect("write");
        let (settings, _) = check(Some(&path), |_| None).expect("config loads");
        assert_eq!(settings.engine.server.threads, 1);
        assert_eq!(settings.engine.server.threads_or(|| 7), 1);
        // The environment overrides the file.
        let settings = load_with_env(&path, |k| {
            (k == "SWITCHBOARD_THREADS").then(|| " 3 ".to_string())
        })
        .expect("config loads");
        assert_eq!(settings.engine.server.threads, 3);

        // Refused with the file and the key: too many, or not a count at all.
        for value in ["1025", "100000", "-1", "\"two\""] {
            std::fs::write(&path, format!("[server]\nthreads = {value}\n")).expect("write");
            let text = check(Some(&path), |_| None)
                .expect_err("refused")
                .to_string();
            assert!(text.contains("switchboard.toml"), "{value}: {text}");
            assert!(text.contains("server.threads"), "{value}: {text}");
        }
        std::fs::write(&path, "[server]\nthreads = 1024\n").expect("write");
        assert!(check(Some(&path), |_| None).is_ok());
        // And in the environment, with its name.
        for value in ["5000", "many", "-2"] {
            let err = load_with_env(&repo_config(), |k| {
                (k == "SWITCHBOARD_THREADS").then(|| value.to_string())
            })
            .expect_err("refused");
            assert!(err.to_string().contains("SWITCHBOARD_THREADS"), "{err}");
        }
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
