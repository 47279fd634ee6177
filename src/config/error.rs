//! Configuration errors as an operator reads them: `file:line:col: path: message` plus a `help:` line.
//!
//! Owns: the error types, config paths (`tenant[contoso].source[audit].container`), turning byte
//! offsets into line and column, and "did you mean" suggestions. Must not: decide what is an error
//! (that is `load` for syntax and types, `validate` for meaning).

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file, located and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as the operator named it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (it cannot be read, say).
    pub line: usize,
    /// 1-based column in characters; 0 when `line` is 0.
    pub col: usize,
    /// Where in the config: `tenant[contoso].source[audit].container`; empty for the whole file.
    pub path: String,
    /// What is wrong, lowercase, naming the bad input.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", help.replace('\n', "\n        "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_all(.errors))]
pub struct ConfigErrors {
    /// The problems, in file order.
    pub errors: Vec<ConfigError>,
}

fn display_all(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    lines.join("\n")
}

impl ConfigErrors {
    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.errors.len()
    }
    /// True when there are none (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// One step of a config path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    /// A key in a table.
    Key(String),
    /// An element of an array; shown by its `name` when it has one, else by index.
    Item {
        /// Position in the array (what locating it in the file uses).
        index: usize,
        /// The element's `name` key, when it has one.
        name: Option<String>,
    },
}

/// A location inside the config tree, e.g. `tenant[contoso].source[audit].container`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConfigPath(pub Vec<PathSeg>);

impl ConfigPath {
    /// The root of the document.
    pub fn root() -> Self {
        ConfigPath(Vec::new())
    }
    /// This path followed by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(key.to_string()));
        p
    }
    /// This path followed by an array element.
    pub fn item(&self, index: usize, name: Option<&str>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Item {
            index,
            name: name.map(str::to_string),
        });
        p
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => f.write_str(k)?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Item {
                    name: Some(name), ..
                } => write!(f, "[{name}]")?,
                PathSeg::Item { index, name: None } => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A semantic problem found by `validate`, before it is located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where in the config.
    pub path: ConfigPath,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: Option<String>,
}

/// 1-based (line, column in characters) of a byte offset; offsets past the end clamp to the end.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// The closest candidate to `input`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(&'a str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&input.to_lowercase(), &c.to_lowercase());
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_like_the_operator_writes_them() {
        let p = ConfigPath::root()
            .key("tenant")
            .item(0, Some("contoso"))
            .key("source")
            .item(1, None)
            .key("container");
        assert_eq!(p.to_string(), "tenant[contoso].source[1].container");
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 12), (2, 6));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["name", "account_url", "container", "prefix"];
        assert_eq!(did_you_mean("contianer", &keys), Some("container"));
        assert_eq!(did_you_mean("acount_url", &keys), Some("account_url"));
        assert_eq!(did_you_mean("zzzz", &keys), None);
    }

    #[test]
    fn errors_display_with_location_path_and_help() {
        let e = ConfigError {
            file: "config/local.toml".into(),
            line: 14,
            col: 13,
            path: "tenant[contoso].source[audit].container".into(),
            message: "container names must be 3-63 lowercase letters, digits or hyphens".into(),
            help: Some("rename it".into()),
        };
        assert_eq!(
            e.to_string(),
            "config/local.toml:14:13: tenant[contoso].source[audit].container: container names must be 3-63 lowercase letters, digits or hyphens\n  help: rename it"
        );
    }
}
