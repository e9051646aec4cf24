//! Reading a SQL script the way psql does: where a statement ends (outside quotes, dollar quotes, comments and
//! parentheses, and outside the `BEGIN ATOMIC … END` body of a SQL function), where a `COPY … FROM stdin` block
//! starts and ends, and the tokens of one statement. [`super::pg_rewrite`] builds on it to change the roles a
//! pg_dump script names while it streams into psql.

/// Where the scanner is between bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Normal,
    /// In `'…'`; `backslash` for `E'…'`, where a backslash escapes the next character.
    Single {
        backslash: bool,
    },
    /// In `"…"`.
    Double,
    /// In a dollar-quoted string opened by this tag (`$$`, `$body$`).
    Dollar(Vec<u8>),
    /// In `/* … */`, this deep.
    Block(u32),
}

/// Finds statement ends in a script fed line by line, keeping what it needs between lines.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    paren: i32,
    begin: i32,
    /// The statement's first words, lower-cased (at most four).
    words: Vec<String>,
    /// Its last two words.
    last: [String; 2],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { state: State::Normal, paren: 0, begin: 0, words: Vec::new(), last: Default::default() }
    }
}

/// True for a byte that can start an unquoted identifier or keyword.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// True for a byte that can continue one.
fn ident_char(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// The end of the run of bytes from `i` that satisfy `f`.
fn run_end(s: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < s.len() && f(s[i]) {
        i += 1;
    }
    i
}

/// The length of a dollar-quote tag at `i` (`$$`, `$tag$`), if one starts there.
fn dollar_tag(s: &[u8], i: usize) -> Option<usize> {
    let body = run_end(s, i + 1, |c| ident_char(c) && c != b'$');
    let starts_ok = body == i + 1 || ident_start(s[i + 1]);
    (starts_ok && s.get(body) == Some(&b'$')).then_some(body + 1 - i)
}

impl Scanner {
    /// Scans `line` from `i`; the index of the `;` that ends the statement, if it ends on this line.
    pub fn scan(&mut self, s: &[u8], mut i: usize) -> Option<usize> {
        while i < s.len() {
            i = match &self.state {
                State::Normal => match self.normal(s, i) {
                    Ok(next) => next,
                    Err(end) => return Some(end),
                },
                State::Single { backslash } => self.single(s, i, *backslash),
                State::Double => self.double(s, i),
                State::Dollar(tag) => match find(s, i, tag) {
                    Some(at) => {
                        let next = at + tag.len();
                        self.state = State::Normal;
                        next
                    }
                    None => s.len(),
                },
                State::Block(depth) => self.block(s, i, *depth),
            };
        }
        None
    }

    /// One token in normal state: the next index, or `Err(i)` at a `;` that ends the statement.
    fn normal(&mut self, s: &[u8], i: usize) -> Result<usize, usize> {
        let c = s[i];
        let next = s.get(i + 1).copied();
        Ok(match c {
            b'-' if next == Some(b'-') => s.len(),
            b'/' if next == Some(b'*') => {
                self.state = State::Block(1);
                i + 2
            }
            b'\'' => {
                self.state = State::Single { backslash: false };
                i + 1
            }
            b'"' => {
                self.state = State::Double;
                i + 1
            }
            b'$' => match dollar_tag(s, i) {
                Some(n) => {
                    self.state = State::Dollar(s[i..i + n].to_vec());
                    i + n
                }
                None => i + 1,
            },
            c if ident_start(c) => {
                let end = run_end(s, i, ident_char);
                if end == i + 1 && (c == b'e' || c == b'E') && s.get(end) == Some(&b'\'') {
                    self.state = State::Single { backslash: true };
                    return Ok(end + 1);
                }
                self.word(&s[i..end]);
                end
            }
            c if c.is_ascii_digit() => run_end(s, i, |c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.'),
            b'(' => {
                self.paren += 1;
                i + 1
            }
            b')' => {
                self.paren -= 1;
                i + 1
            }
            b';' if self.paren <= 0 && self.begin <= 0 => return Err(i),
            _ => i + 1,
        })
    }

    fn single(&mut self, s: &[u8], mut i: usize, backslash: bool) -> usize {
        while i < s.len() {
            match s[i] {
                b'\\' if backslash => i += 2,
                b'\'' if s.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => {
                    self.state = State::Normal;
                    return i + 1;
                }
                _ => i += 1,
            }
        }
        i
    }

    fn double(&mut self, s: &[u8], mut i: usize) -> usize {
        while i < s.len() {
            match s[i] {
                b'"' if s.get(i + 1) == Some(&b'"') => i += 2,
                b'"' => {
                    self.state = State::Normal;
                    return i + 1;
                }
                _ => i += 1,
            }
        }
        i
    }

    fn block(&mut self, s: &[u8], i: usize, depth: u32) -> usize {
        match (s[i], s.get(i + 1)) {
            (b'/', Some(b'*')) => {
                self.state = State::Block(depth + 1);
                i + 2
            }
            (b'*', Some(b'/')) => {
                self.state = if depth <= 1 { State::Normal } else { State::Block(depth - 1) };
                i + 2
            }
            _ => i + 1,
        }
    }

    /// Remembers a word; inside `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, counts `BEGIN`/`CASE` … `END` as psql
    /// does, so the semicolons of a `BEGIN ATOMIC` body do not end the statement.
    fn word(&mut self, w: &[u8]) {
        let w = String::from_utf8_lossy(w).to_ascii_lowercase();
        if self.words.len() < 4 {
            self.words.push(w.clone());
        }
        let first: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let routine = |x: Option<&&str>| matches!(x, Some(&"function") | Some(&"procedure"));
        let in_routine = first.first() == Some(&"create")
            && (routine(first.get(1)) || (first.get(1) == Some(&"or") && routine(first.get(3))));
        if in_routine && self.paren == 0 {
            match w.as_str() {
                "begin" => self.begin += 1,
                "case" if self.begin > 0 => self.begin += 1,
                "end" if self.begin > 0 => self.begin -= 1,
                _ => {}
            }
        }
        self.last = [std::mem::take(&mut self.last[1]), w];
    }

    /// The statement's first words so far, lower-cased.
    pub fn first_words(&self) -> &[String] {
        &self.words
    }

    /// True when the statement that just ended is `COPY … FROM stdin`: data lines follow up to `\.`.
    pub fn ended_copy_from_stdin(&self) -> bool {
        self.words.first().is_some_and(|w| w == "copy") && self.last[0] == "from" && self.last[1] == "stdin"
    }

    /// True between statements' tokens: not inside a string, a quoted name or a comment.
    pub fn is_normal(&self) -> bool {
        self.state == State::Normal
    }

    /// Forgets the statement that ended.
    pub fn reset(&mut self) {
        *self = Scanner::default();
    }
}

/// The index of `tag` in `s` at or after `from`.
fn find(s: &[u8], from: usize, tag: &[u8]) -> Option<usize> {
    s[from..].windows(tag.len()).position(|w| w == tag).map(|p| p + from)
}

/// What a token of a statement is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or unquoted identifier.
    Word,
    /// A `"quoted"` identifier.
    Quoted,
    /// A string literal (`'…'`, `E'…'`) or a dollar-quoted string.
    Str,
    /// Anything else: one punctuation byte, a number, a parameter.
    Other,
}

/// One token of a complete statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tok {
    /// What it is.
    pub kind: Kind,
    /// Its first byte in the statement.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// How deep in parentheses it is.
    pub depth: i32,
}

/// The tokens of one complete statement, comments and white space left out.
pub fn tokens(s: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let (mut i, mut depth) = (0, 0);
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let (kind, end) = match c {
            c if c.is_ascii_whitespace() => (None, i + 1),
            b'-' if next == Some(b'-') => (None, run_end(s, i, |c| c != b'\n')),
            b'/' if next == Some(b'*') => (None, block_end(s, i)),
            b'\'' => (Some(Kind::Str), quoted_end(s, i + 1, b'\'', false)),
            b'"' => (Some(Kind::Quoted), quoted_end(s, i + 1, b'"', false)),
            b'$' => match dollar_tag(s, i) {
                Some(n) => (Some(Kind::Str), find(s, i + n, &s[i..i + n]).map_or(s.len(), |at| at + n)),
                None => (Some(Kind::Other), run_end(s, i + 1, |c| c.is_ascii_digit())),
            },
            b'e' | b'E' if next == Some(b'\'') => (Some(Kind::Str), quoted_end(s, i + 2, b'\'', true)),
            c if ident_start(c) => (Some(Kind::Word), run_end(s, i, ident_char)),
            c if c.is_ascii_digit() => {
                (Some(Kind::Other), run_end(s, i, |c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.'))
            }
            _ => (Some(Kind::Other), i + 1),
        };
        if c == b')' {
            depth -= 1;
        }
        if let Some(kind) = kind {
            out.push(Tok { kind, start: i, end, depth });
        }
        if c == b'(' {
            depth += 1;
        }
        i = end;
    }
    out
}

/// One past the closing quote of a string or quoted name whose content starts at `i`.
fn quoted_end(s: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    while i < s.len() {
        let escaped = (backslash && s[i] == b'\\') || (s[i] == quote && s.get(i + 1) == Some(&quote));
        if escaped {
            i += 2;
        } else if s[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    s.len()
}

/// One past the end of a (nested) block comment starting at `i`.
fn block_end(s: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < s.len() {
        if s[i] == b'/' && s.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if s[i] == b'*' && s.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

impl Tok {
    /// The name or keyword it stands for: a word lower-cased, a quoted name or a plain string unquoted.
    pub fn text(&self, s: &[u8]) -> String {
        let raw = String::from_utf8_lossy(&s[self.start..self.end]);
        match self.kind {
            Kind::Word => raw.to_ascii_lowercase(),
            Kind::Quoted => raw[1..raw.len().saturating_sub(1).max(1)].replace("\"\"", "\""),
            Kind::Str if raw.starts_with('\'') => raw[1..raw.len().saturating_sub(1).max(1)].replace("''", "'"),
            _ => raw.into_owned(),
        }
    }

    /// True for the unquoted keyword `kw` (lower case).
    pub fn is(&self, s: &[u8], kw: &str) -> bool {
        self.kind == Kind::Word && s[self.start..self.end].eq_ignore_ascii_case(kw.as_bytes())
    }

    /// True for a role name: a word or a quoted name.
    pub fn is_name(&self) -> bool {
        matches!(self.kind, Kind::Word | Kind::Quoted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements of a script, split as the scanner splits them.
    fn split(script: &str) -> Vec<String> {
        let mut sc = Scanner::default();
        let (mut out, mut cur) = (Vec::new(), String::new());
        for line in script.split_inclusive('\n') {
            let b = line.as_bytes();
            let mut i = 0;
            while let Some(end) = sc.scan(b, i) {
                cur.push_str(&line[i..=end]);
                out.push(std::mem::take(&mut cur).trim().to_string());
                sc.reset();
                i = end + 1;
            }
            cur.push_str(&line[i..]);
        }
        out
    }

    #[test]
    fn statements_end_only_outside_quotes_comments_and_bodies() {
        let script = "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  ALTER TABLE x OWNER TO y; -- ;\n  RETURN 1;\nEND $$;\n\
            SELECT 'a;b''c', E'x\\';y', \"we;ird\", $q$ ; $q$ /* ; /* nested ; */ ; */;\n\
            CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a; SELECT CASE WHEN a > 0 THEN 1 END; END;\n\
            SELECT $1, a$b FROM t;";
        let parts = split(script);
        assert_eq!(parts.len(), 4, "{parts:#?}");
        assert!(parts[0].ends_with("END $$;"));
        assert!(parts[1].starts_with("SELECT 'a;b''c'") && parts[1].ends_with("*/;"));
        assert!(parts[2].starts_with("CREATE FUNCTION g") && parts[2].ends_with("END;"));
        assert_eq!(parts[3], "SELECT $1, a$b FROM t;");
    }

    #[test]
    fn copy_from_stdin_is_recognised() {
        let mut sc = Scanner::default();
        let line = b"COPY app.users (id, email) FROM stdin;\n";
        let end = sc.scan(line, 0).unwrap();
        assert_eq!(line[end], b';');
        assert!(sc.ended_copy_from_stdin());
        let mut sc = Scanner::default();
        sc.scan(b"SELECT 'COPY x FROM stdin';\n", 0).unwrap();
        assert!(!sc.ended_copy_from_stdin());
    }

    #[test]
    fn tokens_of_a_statement() {
        let s = b"GRANT SELECT(\"a b\") ON TABLE public.\"T\" TO \"we\"\"ird\", app /* x */ WITH GRANT OPTION;";
        let t = tokens(s);
        let texts: Vec<String> = t.iter().map(|t| t.text(s)).collect();
        assert_eq!(
            texts,
            [
                "grant", "select", "(", "a b", ")", "on", "table", "public", ".", "T", "to", "we\"ird", ",", "app",
                "with", "grant", "option", ";"
            ]
        );
        assert_eq!(t[3].depth, 1);
        assert_eq!(t[5].depth, 0);
        assert_eq!(t[11].kind, Kind::Quoted);
        let s = b"SET SESSION AUTHORIZATION 'o''k';";
        assert_eq!(tokens(s)[3].text(s), "o'k");
    }
}
