//! Name rules both planes must apply identically: the apiserver validates
//! `env[].name` with them, the agent skips `envFrom` keys that fail them.

/// An environment variable name: not empty, not starting with a digit, only
/// ASCII letters, digits, `_`, `-` and `.`, and not `.` or starting with
/// `..` (upstream's classic rule; since 1.30 it also allows any printable
/// ASCII except `=`, which we do not yet).
pub fn is_env_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(c))
        && s != "."
        && !s.starts_with("..")
}

#[cfg(test)]
mod tests {
    use super::is_env_var_name;

    #[test]
    fn env_var_names() {
        for good in ["A", "MY_VAR.x", "a-b", "_x", ".a"] {
            assert!(is_env_var_name(good), "{good}");
        }
        for bad in ["", "1X", "A=B", ".", "..", "..x", "a b", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
