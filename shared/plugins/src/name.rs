use std::fmt;

/// A plugin's name within its tenant: 1-64 characters of `a-z 0-9 _ -`,
/// starting with a letter or digit, so it is safe in URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginName(String);

impl PluginName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "plugin name {s:?} must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert!(PluginName::parse("f-to-c_2").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "a b", &"x".repeat(65)] {
            assert!(PluginName::parse(bad).is_err(), "{bad}");
        }
    }
}
