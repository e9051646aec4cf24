//! Changing the roles a plain pg_dump script names, while it streams into psql: a [`Write`] adapter between the
//! dump and psql's standard input, so nothing is staged on disk.
//!
//! pg_dump writes every role reference in a few statement forms, each on its own: `ALTER … OWNER TO r`,
//! `GRANT … ON … TO r` / `REVOKE … ON … FROM r`, `ALTER DEFAULT PRIVILEGES FOR ROLE r … TO r2`,
//! `SET SESSION AUTHORIZATION r` (grants made by another grantor), `CREATE POLICY … TO r` and `CREATE USER
//! MAPPING FOR r`. The script is split into statements the way psql splits it ([`super::pg_script`]); statements
//! that cannot name a role pass through untouched as they stream, `COPY` data lines included, and only the
//! candidates are read token by token. The same rules serve `--owner ROLE` (every owner becomes ROLE),
//! `--no-owner` (every owner becomes the connecting user, and `OWNER TO` is left out as pg_restore --no-owner
//! does), roles missing on the target (their privileges are skipped and counted), a bootstrap superuser named
//! differently on the target, and extensions created as their recorded owner (pg_dump does not say who owns an
//! extension; it is whoever runs `CREATE EXTENSION`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use super::pg_script::{Scanner, Tok, tokens};
use super::pg_sql::ident;

/// How roles are mapped on the way in.
#[derive(Clone, Debug, Default)]
pub struct RoleRules {
    /// `--owner ROLE` / `--no-owner`: every owner becomes this role.
    pub owner: Option<String>,
    /// The role psql connects as.
    pub current_user: String,
    /// Roles that exist on the target once the ones to create are created.
    pub existing: HashSet<String>,
    /// Roles that own something in the source database (more are added as the script names them).
    pub owners: HashSet<String>,
    /// Roles that are called differently on the target (the bootstrap superuser): old name → new.
    pub renamed: HashMap<String, String>,
    /// Extensions to create as another role than the connecting one: extension → role.
    pub extension_owners: HashMap<String, String>,
}

impl RoleRules {
    /// True when the rules change nothing, for a script whose roles all exist (`referenced`).
    pub fn is_identity(&self, referenced: &[String]) -> bool {
        self.owner.is_none()
            && self.renamed.is_empty()
            && self.extension_owners.is_empty()
            && referenced.iter().all(|r| self.existing.contains(r))
    }
}

/// What the rewriting did, for the restore's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Statements left out because they name a role the target does not have: role → how many.
    pub skipped: BTreeMap<String, u64>,
    /// `OWNER TO` statements changed or left out.
    pub owners_changed: u64,
    /// Extensions created as another role.
    pub extensions_as_owner: Vec<String>,
    /// Row-security policies left out (`name ON table`): they named only roles the target lacks.
    pub policies_dropped: Vec<String>,
}

/// What to do with one statement.
enum Action {
    Keep,
    Drop,
    /// Replace these byte ranges (in order, not overlapping) of the statement.
    Edit(Vec<(usize, usize, String)>),
    /// Put this before and after it.
    Wrap(String, String),
}

/// The adapter: writes the rewritten script to `out`.
pub struct Rewriter<W: Write> {
    out: W,
    rules: RoleRules,
    scanner: Scanner,
    /// The current line (outside COPY data).
    line: Vec<u8>,
    /// The current statement, while it may still need rewriting.
    stmt: Vec<u8>,
    /// The current statement is not a candidate: its bytes go straight out.
    passing: bool,
    /// Inside COPY data, where in a line.
    copy: Option<CopyLine>,
    /// A `SET SESSION AUTHORIZATION` was left out, so is its `RESET`.
    dropped_session: bool,
    report: RewriteReport,
}

const END_OF_COPY: &[u8] = b"\\.\n";

/// Where in a COPY data line the rewriter is.
enum CopyLine {
    /// At its start: the bytes seen so far, while they may still be the `\.` line that ends the data.
    Start(Vec<u8>),
    /// Past its start.
    Middle,
}

impl<W: Write> Rewriter<W> {
    /// A rewriter writing to `out` by `rules`.
    pub fn new(out: W, rules: RoleRules) -> Self {
        Rewriter {
            out,
            rules,
            scanner: Scanner::default(),
            line: Vec::new(),
            stmt: Vec::new(),
            passing: false,
            copy: None,
            dropped_session: false,
            report: RewriteReport::default(),
        }
    }

    /// Writes what is left (a last line without a newline) and returns the output and what was done.
    pub fn finish(mut self) -> std::io::Result<(W, RewriteReport)> {
        if let Some(CopyLine::Start(head)) = self.copy.take() {
            self.out.write_all(&head)?;
        }
        let line = std::mem::take(&mut self.line);
        self.process_line(&line)?;
        self.out.write_all(&std::mem::take(&mut self.stmt))?;
        self.out.flush()?;
        Ok((self.out, self.report))
    }

    /// Processes one line (with its newline, except at the end of the script).
    fn process_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut i = 0;
        while i < line.len() {
            if self.stmt.is_empty() && !self.passing && self.scanner.is_normal() {
                let start = line[i..].iter().position(|c| !c.is_ascii_whitespace()).map_or(line.len(), |p| p + i);
                let rest = &line[start..];
                let whole_line = rest.starts_with(b"--") || rest.starts_with(b"\\") || rest.is_empty();
                let upto = if whole_line { line.len() } else { start };
                self.out.write_all(&line[i..upto])?;
                i = upto;
                if whole_line {
                    return Ok(());
                }
            }
            match self.scanner.scan(line, i) {
                Some(end) => {
                    self.take(&line[i..=end])?;
                    let copy = self.scanner.ended_copy_from_stdin();
                    self.end_statement()?;
                    i = end + 1;
                    if copy {
                        self.out.write_all(&line[i..])?;
                        self.copy = Some(CopyLine::Start(Vec::new()));
                        return Ok(());
                    }
                }
                None => {
                    self.take(&line[i..])?;
                    self.decide()?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Adds bytes of the current statement: kept while it may need rewriting, else written.
    fn take(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.passing {
            return self.out.write_all(bytes);
        }
        self.stmt.extend_from_slice(bytes);
        Ok(())
    }

    /// Once the first words say a statement cannot name a role, it streams through.
    fn decide(&mut self) -> std::io::Result<()> {
        if self.passing {
            return Ok(());
        }
        let words = self.scanner.first_words();
        let candidate = match words.first().map(String::as_str) {
            None => return Ok(()),
            Some("alter" | "grant" | "revoke" | "set" | "reset") => true,
            Some("create") => match words.get(1).map(String::as_str) {
                None => return Ok(()),
                Some(w) => matches!(w, "extension" | "policy" | "user"),
            },
            Some(_) => false,
        };
        if !candidate {
            self.passing = true;
            self.out.write_all(&std::mem::take(&mut self.stmt))?;
        }
        Ok(())
    }

    fn end_statement(&mut self) -> std::io::Result<()> {
        self.scanner.reset();
        if std::mem::take(&mut self.passing) {
            return Ok(());
        }
        let stmt = std::mem::take(&mut self.stmt);
        match self.action(&stmt) {
            Action::Keep => self.out.write_all(&stmt),
            Action::Drop => Ok(()),
            Action::Edit(edits) => {
                let mut at = 0;
                for (start, end, text) in edits {
                    self.out.write_all(&stmt[at..start])?;
                    self.out.write_all(text.as_bytes())?;
                    at = end;
                }
                self.out.write_all(&stmt[at..])
            }
            Action::Wrap(before, after) => {
                self.out.write_all(before.as_bytes())?;
                self.out.write_all(&stmt)?;
                self.out.write_all(after.as_bytes())
            }
        }
    }

    /// Bytes of COPY data: passed through, watching each line's start for `\.`. Returns what is left after it.
    fn copy_data<'b>(&mut self, buf: &'b [u8]) -> std::io::Result<&'b [u8]> {
        match self.copy.take().expect("in COPY data") {
            CopyLine::Middle => self.copy_rest_of_line(buf),
            CopyLine::Start(mut head) => {
                let mut i = 0;
                while i < buf.len() && head.len() < END_OF_COPY.len() {
                    head.push(buf[i]);
                    i += 1;
                    if !END_OF_COPY.starts_with(&head) {
                        break;
                    }
                }
                if head == END_OF_COPY {
                    self.out.write_all(END_OF_COPY)?;
                } else if END_OF_COPY.starts_with(&head) {
                    self.copy = Some(CopyLine::Start(head));
                } else {
                    self.out.write_all(&head)?;
                    let ended = head.last() == Some(&b'\n');
                    self.copy = Some(if ended { CopyLine::Start(Vec::new()) } else { CopyLine::Middle });
                }
                Ok(&buf[i..])
            }
        }
    }

    /// Inside a COPY data line: up to and including its newline.
    fn copy_rest_of_line<'b>(&mut self, buf: &'b [u8]) -> std::io::Result<&'b [u8]> {
        match buf.iter().position(|&c| c == b'\n') {
            Some(n) => {
                self.out.write_all(&buf[..=n])?;
                self.copy = Some(CopyLine::Start(Vec::new()));
                Ok(&buf[n + 1..])
            }
            None => {
                self.out.write_all(buf)?;
                self.copy = Some(CopyLine::Middle);
                Ok(&[])
            }
        }
    }
}

impl<W: Write> Write for Rewriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.copy.is_some() {
                rest = self.copy_data(rest)?;
                continue;
            }
            match rest.iter().position(|&c| c == b'\n') {
                Some(n) => {
                    self.line.extend_from_slice(&rest[..=n]);
                    rest = &rest[n + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line)?;
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Rewriter<W> {
    /// The role `role` is on the target: an owner under `--owner`, renamed, or itself if it exists there.
    fn resolve(&self, role: &str) -> Option<String> {
        if let Some(owner) = &self.rules.owner
            && self.rules.owners.contains(role)
        {
            return Some(owner.clone());
        }
        if let Some(r) = self.rules.renamed.get(role) {
            return Some(r.clone());
        }
        (self.rules.existing.contains(role) || role.starts_with("pg_")).then(|| role.to_string())
    }

    fn skipped(&mut self, role: &str) {
        *self.report.skipped.entry(role.to_string()).or_default() += 1;
    }

    /// What to do with a complete candidate statement.
    fn action(&mut self, s: &[u8]) -> Action {
        let t = tokens(s);
        let word = |i: usize, kw: &str| t.get(i).is_some_and(|x| x.is(s, kw));
        if word(0, "alter") && word(1, "default") && word(2, "privileges") {
            return self.default_privileges(s, &t);
        }
        if word(0, "alter") {
            return self.owner_to(s, &t);
        }
        if word(0, "grant") || word(0, "revoke") {
            return self.grant(s, &t, 0);
        }
        if word(0, "set") && word(1, "session") && word(2, "authorization") {
            return self.session_authorization(s, &t);
        }
        if word(0, "reset") && word(1, "session") && word(2, "authorization") {
            return if std::mem::take(&mut self.dropped_session) { Action::Drop } else { Action::Keep };
        }
        if word(0, "create") && word(1, "policy") {
            return self.policy(s, &t);
        }
        if word(0, "create") && word(1, "user") && word(2, "mapping") {
            return self.user_mapping(s, &t);
        }
        if word(0, "create") && word(1, "extension") {
            return self.extension(s, &t);
        }
        Action::Keep
    }

    /// `ALTER … OWNER TO role;`
    fn owner_to(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let n = t.len();
        let shaped = n >= 6
            && t[n - 1].end - t[n - 1].start == 1
            && s[t[n - 1].start] == b';'
            && t[n - 2].is_name()
            && t[n - 3].is(s, "to")
            && t[n - 4].is(s, "owner")
            && !t[n - 5].is(s, "rename")
            && !t[n - 5].is(s, "column");
        if !shaped {
            return Action::Keep;
        }
        let role_tok = t[n - 2];
        let role = role_tok.text(s);
        self.rules.owners.insert(role.clone());
        let target = match &self.rules.owner {
            Some(o) if *o == self.rules.current_user => {
                self.report.owners_changed += 1;
                return Action::Drop;
            }
            Some(o) => o.clone(),
            None => match self.resolve(&role) {
                Some(r) => r,
                None => return Action::Keep,
            },
        };
        if target == role {
            return Action::Keep;
        }
        self.report.owners_changed += 1;
        Action::Edit(vec![(role_tok.start, role_tok.end, ident(&target))])
    }

    /// A list of role names from token `i` (`a, "b", PUBLIC`), up to the first token that is not part of it:
    /// the edit that maps it, whether any role is left, and the index after the list.
    fn role_list(&mut self, s: &[u8], t: &[Tok], mut i: usize) -> (Option<(usize, usize, String)>, bool, usize) {
        let keywords = ["public", "current_user", "session_user", "current_role", "group"];
        let (start, mut end) = (t.get(i).map_or(s.len(), |x| x.start), None);
        let mut kept: Vec<String> = Vec::new();
        let mut changed = false;
        while let Some(tok) = t.get(i).filter(|x| x.is_name() && x.depth == 0) {
            let name = tok.text(s);
            if tok.kind == super::pg_script::Kind::Word && keywords.contains(&name.as_str()) {
                kept.push(String::from_utf8_lossy(&s[tok.start..tok.end]).into_owned());
            } else {
                match self.resolve(&name) {
                    Some(r) if r == name => kept.push(ident(&r)),
                    Some(r) => {
                        changed = true;
                        if !kept.contains(&ident(&r)) {
                            kept.push(ident(&r));
                        }
                    }
                    None => {
                        changed = true;
                        self.skipped(&name);
                    }
                }
            }
            end = Some(tok.end);
            i += 1;
            if !t.get(i).is_some_and(|x| x.kind == super::pg_script::Kind::Other && s[x.start] == b',') {
                break;
            }
            i += 1;
        }
        let any = !kept.is_empty();
        let edit = match end {
            Some(end) if changed && any => Some((start, end, kept.join(", "))),
            _ => None,
        };
        (edit, any || end.is_none(), i)
    }

    /// `GRANT … ON … TO roles` / `REVOKE … ON … FROM roles`, from token `from`.
    fn grant(&mut self, s: &[u8], t: &[Tok], from: usize) -> Action {
        let revoke = t[from].is(s, "revoke");
        let Some(on) = (from..t.len()).find(|&i| t[i].depth == 0 && t[i].is(s, "on")) else {
            return Action::Keep;
        };
        let to = if revoke { "from" } else { "to" };
        let Some(list) = (on..t.len()).find(|&i| t[i].depth == 0 && t[i].is(s, to)) else { return Action::Keep };
        let (edit, any, _) = self.role_list(s, t, list + 1);
        match (any, edit) {
            (false, _) => Action::Drop,
            (true, Some(e)) => Action::Edit(vec![e]),
            (true, None) => Action::Keep,
        }
    }

    /// `ALTER DEFAULT PRIVILEGES [FOR ROLE r] [IN SCHEMA s] GRANT|REVOKE …`.
    fn default_privileges(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let Some(inner) = (3..t.len()).find(|&i| t[i].depth == 0 && (t[i].is(s, "grant") || t[i].is(s, "revoke")))
        else {
            return Action::Keep;
        };
        let mut edits = Vec::new();
        if t.get(3).is_some_and(|x| x.is(s, "for")) && t.get(5).is_some_and(|x| x.is_name()) {
            let role = t[5].text(s);
            self.rules.owners.insert(role.clone());
            match self.resolve(&role) {
                None => {
                    self.skipped(&role);
                    return Action::Drop;
                }
                Some(r) if self.rules.owner.is_some() && r == self.rules.current_user => {
                    edits.push((t[3].start, t.get(6).map_or(t[5].end, |x| x.start), String::new()))
                }
                Some(r) if r != role => edits.push((t[5].start, t[5].end, ident(&r))),
                Some(_) => {}
            }
        }
        match self.grant(s, t, inner) {
            Action::Drop => Action::Drop,
            Action::Edit(e) => {
                edits.extend(e);
                Action::Edit(edits)
            }
            _ if edits.is_empty() => Action::Keep,
            _ => Action::Edit(edits),
        }
    }

    /// `SET SESSION AUTHORIZATION r` (pg_dump's way to make a grant as its grantor). Under `--owner` and
    /// `--no-owner` the grant is made by the connecting user instead, as when the grantor is missing.
    fn session_authorization(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let Some(tok) = t.get(3).filter(|x| !x.is(s, "default")) else { return Action::Keep };
        let role = tok.text(s);
        if self.rules.owner.is_none() {
            match self.resolve(&role) {
                Some(r) if r == role => return Action::Keep,
                Some(r) => return Action::Edit(vec![(tok.start, tok.end, ident(&r))]),
                None => self.skipped(&role),
            }
        }
        self.dropped_session = true;
        Action::Drop
    }

    /// `CREATE POLICY … TO roles …`: roles the target lacks are left out (a policy applies only to the roles it
    /// names, so without them it means the same for every role that exists); with none left, it is left out.
    fn policy(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let Some(list) = (2..t.len()).find(|&i| t[i].depth == 0 && t[i].is(s, "to")) else { return Action::Keep };
        match self.role_list(s, t, list + 1) {
            (_, false, _) => {
                let on = t.iter().position(|x| x.depth == 0 && x.is(s, "on")).unwrap_or(list);
                let end = t.get(on + 1).map_or(s.len(), |x| x.start);
                let table = (on + 1..list).find(|&i| t[i].is(s, "for") || t[i].is(s, "as")).map_or(list, |i| i);
                let name = String::from_utf8_lossy(&s[t[2].start..t[2].end]);
                let table = String::from_utf8_lossy(&s[end..t[table].start]);
                self.report.policies_dropped.push(format!("{name} on {}", table.trim()));
                Action::Drop
            }
            (Some(e), true, _) => Action::Edit(vec![e]),
            (None, true, _) => Action::Keep,
        }
    }

    /// `CREATE USER MAPPING [IF NOT EXISTS] FOR role SERVER …`.
    fn user_mapping(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let Some(for_at) = (3..t.len()).find(|&i| t[i].is(s, "for")) else { return Action::Keep };
        let Some(tok) = t.get(for_at + 1).filter(|x| x.is_name()) else { return Action::Keep };
        let name = tok.text(s);
        if tok.kind == super::pg_script::Kind::Word && ["public", "current_user", "user"].contains(&name.as_str()) {
            return Action::Keep;
        }
        match self.resolve(&name) {
            None => {
                self.skipped(&name);
                Action::Drop
            }
            Some(r) if r != name => Action::Edit(vec![(tok.start, tok.end, ident(&r))]),
            Some(_) => Action::Keep,
        }
    }

    /// `CREATE EXTENSION [IF NOT EXISTS] name …`: run as the role that is to own it.
    fn extension(&mut self, s: &[u8], t: &[Tok]) -> Action {
        let at = if t.get(2).is_some_and(|x| x.is(s, "if")) { 5 } else { 2 };
        let Some(name) = t.get(at).filter(|x| x.is_name()).map(|x| x.text(s)) else { return Action::Keep };
        let Some(role) = self.rules.extension_owners.get(&name).cloned() else { return Action::Keep };
        self.report.extensions_as_owner.push(name);
        Action::Wrap(format!("SET ROLE {};\n", ident(&role)), "\nRESET ROLE;".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = include_str!("testdata/pg_dump_sample.sql");

    fn rules(owner: Option<&str>, existing: &[&str]) -> RoleRules {
        RoleRules {
            owner: owner.map(str::to_string),
            current_user: "postgres".into(),
            existing: existing.iter().map(|s| s.to_string()).collect(),
            owners: ["app".to_string()].into(),
            ..Default::default()
        }
    }

    /// Feeds `input` in pieces of `step` bytes.
    fn run(input: &str, rules: RoleRules, step: usize) -> (String, RewriteReport) {
        let mut w = Rewriter::new(Vec::new(), rules);
        for piece in input.as_bytes().chunks(step.max(1)) {
            w.write_all(piece).unwrap();
        }
        let (out, report) = w.finish().unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    #[test]
    fn with_every_role_present_the_script_is_unchanged_however_it_is_cut() {
        let all = ["app", "readonly", "postgres"];
        for step in [1, 2, 3, 7, 64, 4096, 1 << 20] {
            let (out, report) = run(SCRIPT, rules(None, &all), step);
            assert!(out == SCRIPT, "changed when fed {step} bytes at a time");
            assert_eq!(report, RewriteReport::default());
        }
    }

    #[test]
    fn owner_gives_everything_to_one_role_and_skips_grants_to_missing_ones() {
        for step in [1, 5, 1 << 20] {
            let (out, report) = run(SCRIPT, rules(Some("solo"), &["solo", "postgres"]), step);
            assert_eq!(out.matches("OWNER TO app;").count(), 2, "only the body and the data keep theirs: {out}");
            assert!(out.contains("ALTER TABLE app.users OWNER TO \"solo\";"), "{out}");
            // Default privileges for a grantee that is missing go with it.
            assert!(!out.contains("ALTER DEFAULT PRIVILEGES"), "{out}");
            assert!(out.contains("CREATE POLICY p ON app.users FOR SELECT TO \"solo\" USING ((id > 0));"), "{out}");
            assert!(!out.contains("\nGRANT USAGE") && !out.contains("TO readonly WITH GRANT OPTION"), "{out}");
            assert!(out.contains("GRANT ALL ON TABLE app.users TO \"solo\";"), "{out}");
            // Lines inside a function body and inside COPY data are data, not statements.
            assert!(out.contains("  ALTER TABLE x OWNER TO app; -- in a body\n"));
            assert!(out.contains("7\tGRANT SELECT ON t TO readonly;\n"));
            assert!(out.contains("\\.\n"));
            assert_eq!(report.skipped.get("readonly"), Some(&5));
            assert!(!out.contains("SET SESSION AUTHORIZATION") && !out.contains("RESET SESSION"), "{out}");
        }
    }

    #[test]
    fn no_owner_leaves_ownership_to_the_connecting_user() {
        let mut r = rules(Some("postgres"), &["postgres", "readonly"]);
        r.extension_owners.insert("citext".into(), "ext_owner".into());
        let (out, report) = run(SCRIPT, r, 1 << 20);
        assert_eq!(out.matches("OWNER TO").count(), 2, "only the body and the data keep theirs: {out}");
        assert!(out.contains("ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES  TO readonly;"), "{out}");
        assert!(out.contains(
            "SET ROLE \"ext_owner\";\nCREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;\nRESET ROLE;"
        ));
        assert_eq!(report.extensions_as_owner, ["citext"]);
        assert!(report.owners_changed >= 3);
    }

    #[test]
    fn a_renamed_role_is_renamed_everywhere() {
        let mut r = rules(None, &["app", "readonly", "admin"]);
        r.renamed.insert("postgres".into(), "admin".into());
        let (out, _) = run(SCRIPT, r, 1 << 20);
        assert!(out.contains("ALTER FUNCTION public.f() OWNER TO \"admin\";"), "{out}");
        assert!(out.contains("SET SESSION AUTHORIZATION \"admin\";\n"), "{out}");
        assert!(out.contains("RESET SESSION AUTHORIZATION;\n"), "{out}");
    }
}
