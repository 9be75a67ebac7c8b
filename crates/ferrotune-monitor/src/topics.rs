//! Topics by rules: a TOML table of topic -> patterns; a record belongs to
//! every topic one of whose patterns it matches.

use std::path::Path;

use regex::{Regex, RegexBuilder};

use crate::MonitorError;

/// Topic rules read from a TOML file such as
///
/// ```toml
/// ACME = ["$ACME", "Acme Corp", "/acme(co)?/"]
/// banks = ["/\\b(bank|lender)s?\\b/"]
/// ```
///
/// A pattern between slashes is a regular expression; any other is a
/// keyword. Both match case-insensitively anywhere in the text.
#[derive(Debug, Clone)]
pub struct TopicRules {
    rules: Vec<(String, Vec<Regex>)>,
}

impl TopicRules {
    /// Reads and compiles the rules of `path`.
    pub fn load(path: &Path) -> Result<Self, MonitorError> {
        let error = |message: String| MonitorError::Topics { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| error(e.message().to_string()))?;
        let mut rules = Vec::new();
        for (topic, patterns) in table {
            let patterns =
                patterns.as_array().ok_or_else(|| error(format!("topic '{topic}': expected a list of patterns")))?;
            let mut compiled = Vec::new();
            for pattern in patterns {
                let pattern =
                    pattern.as_str().ok_or_else(|| error(format!("topic '{topic}': a pattern is not a string")))?;
                let source = match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                    Some(regex) if !regex.is_empty() => regex.to_string(),
                    _ if pattern.is_empty() => return Err(error(format!("topic '{topic}': an empty pattern"))),
                    _ => regex::escape(pattern),
                };
                let regex = RegexBuilder::new(&source)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| error(format!("topic '{topic}': pattern '{pattern}': {e}")))?;
                compiled.push(regex);
            }
            rules.push((topic, compiled));
        }
        Ok(Self { rules })
    }

    /// The topics `text` belongs to, in the file's (sorted) order.
    pub fn topics_of<'a>(&'a self, text: &str) -> impl Iterator<Item = &'a str> + 'a {
        let text = text.to_string();
        self.rules
            .iter()
            .filter(move |(_, patterns)| patterns.iter().any(|p| p.is_match(&text)))
            .map(|(t, _)| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_regular_expressions() {
        let dir = std::env::temp_dir().join(format!("ferrotune-topics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("topics.toml");
        std::fs::write(&path, "ACME = [\"$ACME\", \"Acme Corp\"]\nbanks = [\"/\\\\b(bank|lender)s?\\\\b/\"]\n")
            .unwrap();
        let rules = TopicRules::load(&path).unwrap();
        let of = |text: &str| rules.topics_of(text).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(of("$acme up 3%"), ["ACME"]);
        assert_eq!(of("ACME CORP and two lenders"), ["ACME", "banks"]);
        assert!(of("a bankrupt firm").is_empty());
        for (text, expected) in [
            ("ACME = \"x\"", "topic 'ACME': expected a list of patterns"),
            ("ACME = [\"/(/\"]", "topic 'ACME': pattern '/(/'"),
            ("ACME = [\"\"]", "topic 'ACME': an empty pattern"),
            ("ACME = [", "topics.toml"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = TopicRules::load(&path).unwrap_err().to_string();
            assert!(e.contains(expected) && e.contains("topics.toml"), "{e}");
        }
        let e = TopicRules::load(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
