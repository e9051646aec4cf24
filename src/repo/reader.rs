//! Reading blobs and trees by id: the catalog says where a blob lies, the repository fetches and verifies it.

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::{ContentList, Node, Tree};
use crate::repo::Repository;
use crate::repo::catalog::{BlobLocation, Catalog};

/// Reads blobs of one repository; usable from many threads.
pub struct BlobReader<'a> {
    /// The repository the blobs are read from.
    pub repo: &'a Repository,
    catalog: Mutex<&'a mut Catalog>,
}

impl<'a> BlobReader<'a> {
    /// A reader of `repo` that finds blobs through `catalog`, which it holds until [`BlobReader::into_catalog`].
    pub fn new(repo: &'a Repository, catalog: &'a mut Catalog) -> Self {
        BlobReader { repo, catalog: Mutex::new(catalog) }
    }

    /// Where a blob is stored; an error naming the blob if no index knows it.
    pub fn locate(&self, id: &Id) -> Result<BlobLocation> {
        self.catalog
            .lock()
            .expect("catalog lock")
            .locate(id)?
            .ok_or_else(|| Error::corrupt(format!("blob {id}"), "not in any index (lost data; run `gumvault check`)"))
    }

    /// Fetches, decrypts and verifies a blob.
    pub fn read(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.repo.read_blob(&loc.pack, loc.offset, &loc.info)
    }

    /// Loads a tree.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let plain = self.read(id)?;
        self.repo.parse_tree(id, &plain)
    }

    /// Loads a content list: the ids it holds, as many as its node says.
    pub fn load_list(&self, list: &ContentList) -> Result<Vec<Id>> {
        let plain = self.read(&list.id).map_err(|e| match e {
            Error::Corrupt { object, source } => {
                Error::Corrupt { object: format!("{object}, a content list of the file"), source }
            }
            other => other,
        })?;
        self.repo.parse_list(list, &plain)
    }

    /// A file's content blob ids, in order, reading one content list at a time.
    pub fn content<'r>(&'r self, node: &'r Node) -> ContentIds<'r, 'a> {
        ContentIds {
            reader: self,
            inline: node.content.iter(),
            lists: node.content_lists.iter(),
            current: Vec::new().into_iter(),
            failed: false,
        }
    }

    /// Whether `has` holds every blob a file's node names: its content lists and every id in them. A damaged list
    /// counts as a missing blob; a list that cannot be read for another reason (a region down) is an error.
    pub fn has_all_content(&self, node: &Node, mut has: impl FnMut(&Id) -> Result<bool>) -> Result<bool> {
        for list in &node.content_lists {
            if !has(&list.id)? {
                return Ok(false);
            }
        }
        for id in self.content(node) {
            match id {
                Ok(id) if has(&id)? => {}
                Ok(_) | Err(Error::Corrupt { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Gives the catalog back for writing.
    pub fn into_catalog(self) -> &'a mut Catalog {
        self.catalog.into_inner().expect("catalog lock")
    }
}

/// A file's content blob ids, one content list in memory at a time. After an error (a list that cannot be read)
/// it ends.
pub struct ContentIds<'r, 'a> {
    reader: &'r BlobReader<'a>,
    inline: std::slice::Iter<'r, Id>,
    lists: std::slice::Iter<'r, ContentList>,
    current: std::vec::IntoIter<Id>,
    failed: bool,
}

impl Iterator for ContentIds<'_, '_> {
    type Item = Result<Id>;

    fn next(&mut self) -> Option<Result<Id>> {
        if let Some(id) = self.inline.next() {
            return Some(Ok(*id));
        }
        loop {
            if let Some(id) = self.current.next() {
                return Some(Ok(id));
            }
            if self.failed {
                return None;
            }
            match self.reader.load_list(self.lists.next()?) {
                Ok(ids) => self.current = ids.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
