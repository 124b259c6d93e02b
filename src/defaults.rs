//! The default configuration, built into the binary: `config/switchboard.toml`,
//! `config/agents.toml`, the demo catalog and the prompts, as they are in the repository
//! the binary was built from. So an installed `switchboard` runs from any directory; files
//! in the configuration folder override these piece by piece (see [`crate::config`]), and
//! `switchboard init` writes them out for editing.

use std::path::{Path, PathBuf};

use actors::audio::prompts::Prompt;
use actors::audio::AudioError;
use actors::domain::catalog::{Catalog, CatalogError};

/// `config/switchboard.toml`: every setting with its default, commented.
pub const SWITCHBOARD_TOML: &str = include_str!("../config/switchboard.toml");
/// `config/agents.toml`: the demo store's agents and tools.
pub const AGENTS_TOML: &str = include_str!("../config/agents.toml");

/// `config/catalog/*.json`, by file name.
pub const CATALOG: [(&str, &str); 5] = [
    ("orders.json", include_str!("../config/catalog/orders.json")),
    (
        "products.json",
        include_str!("../config/catalog/products.json"),
    ),
    ("hours.json", include_str!("../config/catalog/hours.json")),
    ("faq.json", include_str!("../config/catalog/faq.json")),
    ("slots.json", include_str!("../config/catalog/slots.json")),
];

/// `config/prompts/*`, by file name: what a caller hears, and what the load generator's
/// callers say (`caller.wav`).
pub const PROMPTS: [(&str, &[u8]); 6] = [
    (
        "greeting.wav",
        include_bytes!("../config/prompts/greeting.wav"),
    ),
    ("hold.wav", include_bytes!("../config/prompts/hold.wav")),
    (
        "fallback.wav",
        include_bytes!("../config/prompts/fallback.wav"),
    ),
    (
        "goodbye.wav",
        include_bytes!("../config/prompts/goodbye.wav"),
    ),
    ("caller.wav", include_bytes!("../config/prompts/caller.wav")),
    ("README.md", include_bytes!("../config/prompts/README.md")),
];

/// Where a piece of the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into the binary.
    BuiltIn,
    /// This file overrides the built-in one.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `path` when that file exists, else the built-in piece.
pub fn source_of(path: &Path) -> Source {
    if path.is_file() {
        Source::File(path.to_path_buf())
    } else {
        Source::BuiltIn
    }
}

fn built_in_prompt(name: &str) -> Option<&'static [u8]> {
    PROMPTS
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, bytes)| *bytes)
}

/// The built-in prompt `name`, decoded.
pub fn built_in(name: &str) -> Result<Prompt, AudioError> {
    let path = Path::new("built-in prompts").join(name);
    match built_in_prompt(name) {
        Some(bytes) => Prompt::from_bytes(bytes, &path),
        None => Prompt::load(&path),
    }
}

/// The prompt `name` (`hold.wav`, …): `dir/name` when that file exists, else the built-in
/// one. Errors name the file (or `built-in prompts/name`).
pub fn prompt(dir: &Path, name: &str) -> Result<Prompt, AudioError> {
    let path = dir.join(name);
    match source_of(&path) {
        Source::File(path) => Prompt::load(&path),
        Source::BuiltIn if built_in_prompt(name).is_some() => built_in(name),
        // No such built-in prompt: the error names the missing file.
        Source::BuiltIn => Prompt::load(&path),
    }
}

/// The demo catalog: each of its files from `dir` when it exists there, else built in.
/// Every problem is reported (the list is never empty).
pub fn catalog(dir: &Path) -> Result<Catalog, Vec<CatalogError>> {
    Catalog::from_files(|name| {
        let path = dir.join(name);
        match source_of(&path) {
            Source::File(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
                    path: path.clone(),
                    source,
                })?;
                Ok((path, text))
            }
            Source::BuiltIn => {
                let text = CATALOG
                    .iter()
                    .find(|(file, _)| *file == name)
                    .map(|(_, text)| *text)
                    .unwrap_or_default();
                Ok((Path::new("built-in catalog").join(name), text.to_owned()))
            }
        }
    })
}

/// What `switchboard init` wrote, or would have overwritten.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "not overwriting existing files (pass --force to replace them): {}",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists(Vec<PathBuf>),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every built-in file, by its path inside the configuration folder.
pub fn files() -> Vec<(PathBuf, &'static [u8])> {
    let mut files = vec![
        (
            PathBuf::from("switchboard.toml"),
            SWITCHBOARD_TOML.as_bytes(),
        ),
        (PathBuf::from("agents.toml"), AGENTS_TOML.as_bytes()),
    ];
    files.extend(
        CATALOG
            .iter()
            .map(|(name, text)| (Path::new("catalog").join(name), text.as_bytes())),
    );
    files.extend(
        PROMPTS
            .iter()
            .map(|(name, bytes)| (Path::new("prompts").join(name), *bytes)),
    );
    files
}

/// `switchboard init DIR`: writes the built-in configuration into `dir` for editing. Files
/// that exist are left alone — and nothing is written — unless `force`.
pub fn init(dir: &Path, force: bool) -> Result<Written, InitError> {
    let files = files();
    if !force {
        let existing: Vec<PathBuf> = files
            .iter()
            .map(|(path, _)| dir.join(path))
            .filter(|path| path.exists())
            .collect();
        if !existing.is_empty() {
            return Err(InitError::Exists(existing));
        }
    }
    let mut written = Written::default();
    for (relative, bytes) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| InitError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, bytes).map_err(|source| InitError::Write {
            path: path.clone(),
            source,
        })?;
        written.files.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_piece_loads() {
        let nowhere = Path::new("/nonexistent-switchboard-config");
        assert!(catalog(nowhere).is_ok());
        for (name, _) in PROMPTS.iter().filter(|(n, _)| n.ends_with(".wav")) {
            let prompt = prompt(nowhere, name).expect("built-in prompt decodes");
            assert!(prompt.duration_ms() > 500, "{name}");
        }
    }

    #[test]
    fn init_refuses_to_overwrite_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = init(dir.path(), false).expect("first init");
        assert_eq!(written.files.len(), files().len());
        std::fs::write(dir.path().join("agents.toml"), "# mine").expect("edit");
        std::fs::remove_file(dir.path().join("catalog/faq.json")).expect("remove");
        let err = init(dir.path(), false).expect_err("refused");
        assert!(err.to_string().contains("agents.toml"), "{err}");
        assert!(!dir.path().join("catalog/faq.json").exists());
        init(dir.path(), true).expect("forced");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("agents.toml")).expect("read"),
            AGENTS_TOML
        );
    }
}
