//! One rule for every include and exclude pattern (backup `--exclude`, restore `--include`, the S3 source's
//! `include`/`exclude`): a pattern without `/` matches a name at any depth; a pattern with `/` matches the whole
//! path from the root (`srv/app` and `/srv/app` mean the same), and `*` does not cross a `/` in it. A trailing
//! `/` is ignored; blank patterns are ignored.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// A compiled set of patterns.
#[derive(Clone, Debug, Default)]
pub struct PathGlobs {
    by_name: GlobSet,
    by_path: GlobSet,
    count: usize,
}

impl PathGlobs {
    /// Compiles `patterns`; a bad one is an error naming it (`what` says which option it came from, e.g.
    /// `exclude`).
    pub fn new(patterns: &[impl AsRef<str>], what: &str) -> Result<PathGlobs> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        let mut count = 0;
        for raw in patterns.iter().map(|p| p.as_ref()) {
            let p = raw.trim().trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            let anchored = p.contains('/');
            let pattern = if anchored && !p.starts_with('/') { format!("/{p}") } else { p.to_string() };
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(anchored)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidInput(format!("invalid {what} pattern {raw:?}: {e}")))?;
            if anchored {
                by_path.add(glob)
            } else {
                by_name.add(glob)
            };
            count += 1;
        }
        let build =
            |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidInput(format!("invalid {what} patterns: {e}")));
        Ok(PathGlobs { by_name: build(by_name)?, by_path: build(by_path)?, count })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when `path` (absolute) matches some pattern.
    pub fn matches(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.by_name.is_match(Path::new(n))) || self.by_path.is_match(path)
    }

    /// True when a relative key such as `avatars/42.png` matches, as if it were the path `/avatars/42.png`.
    pub fn matches_key(&self, key: &str) -> bool {
        let path = format!("/{}", key.trim_start_matches('/'));
        self.matches(Path::new(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_anywhere_and_paths_from_the_root() {
        let ex = PathGlobs::new(&["*.tmp", "node_modules", "/srv/app/cache", "", "etc/*.conf/"], "exclude").unwrap();
        assert!(ex.matches(Path::new("/a/b/x.tmp")));
        assert!(ex.matches(Path::new("/a/node_modules")));
        assert!(ex.matches(Path::new("/srv/app/cache")));
        assert!(!ex.matches(Path::new("/srv/app/cache2")));
        assert!(!ex.matches(Path::new("/a/b/x.txt")));
        assert!(ex.matches(Path::new("/etc/a.conf")));
        assert!(!ex.matches(Path::new("/etc/sub/a.conf")), "* does not cross a / in a path pattern");
        assert!(PathGlobs::new(&["a["], "exclude").unwrap_err().to_string().contains("invalid exclude pattern"));
        assert!(PathGlobs::new(&[" "], "include").unwrap().is_empty());
    }

    #[test]
    fn keys_match_like_paths() {
        let g = PathGlobs::new(&["*.jpg", "docs/**/*.pdf", "/private/*"], "include").unwrap();
        assert!(g.matches_key("avatars/42.jpg"));
        assert!(g.matches_key("docs/a/b/x.pdf"));
        assert!(g.matches_key("docs/x.pdf"));
        assert!(g.matches_key("private/key"));
        assert!(!g.matches_key("private/deeper/key"));
        assert!(!g.matches_key("other/x.pdf"));
    }
}
