//! Reading blobs and trees by id: the catalog says where a blob lies, the repository fetches and verifies it.

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::format::id::Id;
use crate::format::tree::Tree;
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

    /// Gives the catalog back for writing.
    pub fn into_catalog(self) -> &'a mut Catalog {
        self.catalog.into_inner().expect("catalog lock")
    }
}
