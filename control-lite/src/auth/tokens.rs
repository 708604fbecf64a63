//! The static token file (`--token-auth-file`), as upstream's: one CSV line
//! per token, `token,user,uid,"group1,group2"` (the groups column optional).

use std::collections::HashMap;

use super::user::UserInfo;

/// A malformed token file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("read {path}: {message}")]
    Read { path: String, message: String },
}

/// Tokens and the users they stand for.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    users: HashMap<String, UserInfo>,
}

impl TokenTable {
    /// Parses a token file's text.
    pub fn parse(text: &str) -> Result<TokenTable, Error> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i.saturating_add(1);
            let err = |message: &str| Error::Line { line: line_no, message: message.to_string() };
            if line.trim().is_empty() {
                continue;
            }
            let fields = split_csv(line).ok_or_else(|| err("unbalanced quotes"))?;
            if fields.len() < 3 {
                return Err(err("want at least 3 columns: token,user,uid"));
            }
            let (token, name, uid) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
            if token.is_empty() || name.is_empty() {
                return Err(err("empty token or user"));
            }
            let groups = fields
                .get(3)
                .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            let user = UserInfo { name: name.to_string(), uid: uid.to_string(), groups };
            users.insert(token.to_string(), user);
        }
        Ok(TokenTable { users })
    }

    /// Reads and parses the token file at `path`.
    pub fn load(path: &std::path::Path) -> Result<TokenTable, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Read { path: path.display().to_string(), message: e.to_string() })?;
        TokenTable::parse(&text)
    }

    /// The user `token` stands for.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// One CSV record: comma-separated fields, a field in double quotes may hold
/// commas and `""` for a quote. `None` for an unterminated quote.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    (!quoted).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_users_with_groups() {
        let table =
            TokenTable::parse("abc123,alice,1001,\"dev,ops\"\n\n  \ndef456,bob,1002\nghi,carol,,\"a \"\"q\"\" g\"\n")
                .expect("parses");
        assert_eq!(table.len(), 3);
        let alice = table.user("abc123").expect("alice");
        assert_eq!((alice.name.as_str(), alice.uid.as_str()), ("alice", "1001"));
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert!(table.user("def456").expect("bob").groups.is_empty());
        assert_eq!(table.user("ghi").expect("carol").groups, ["a \"q\" g"]);
        assert_eq!(table.user("nope"), None);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let short = TokenTable::parse("ok,user,1\nshort,user\n").expect_err("refused");
        assert!(matches!(short, Error::Line { line: 2, .. }), "{short}");
        assert!(TokenTable::parse("t,u,1,\"open").is_err(), "unbalanced quote");
        assert!(TokenTable::parse(",u,1").is_err(), "empty token");
        assert!(TokenTable::parse("t,,1").is_err(), "empty user");
    }
}
