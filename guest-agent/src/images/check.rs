//! `skiff system check`: re-reads the whole store and says whether it is what its records
//! claim. Blobs are hashed again; every image's layers must be there, each unpacked tree the
//! one recorded when it was committed; every reference and every container must name an image
//! that exists. After a crash (or a full disk) this is how a user, and the crash tests, know
//! that nothing half-made became visible. Layer trees are compared by their shape
//! (`tree.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::store::{hex_of, ImageRecord, LayerRecord, References, Store};
use super::tree::summarize_tree;

/// What the check found. Problems are sentences a user can act on.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub blobs: u64,
    pub layers: u64,
    pub layer_entries: u64,
    pub images: u64,
    pub references: u64,
    pub containers: u64,
    /// Complete but used by no image (left by an interrupted pull; the next pull reuses them,
    /// `image prune` does not need to).
    pub unreferenced_blobs: u64,
    pub unreferenced_layers: u64,
    /// Layers committed before their tree was summarised: present, but their content unchecked.
    pub unsummarised_layers: u64,
    pub problems: Vec<String>,
}

/// Check the store, and the images the given containers (`(name, image ID)`) use.
///
/// It runs beside pulls and removals without stopping them, so something that changed while
/// it looked could show as a problem once; a problem counts only if a second pass finds it too.
pub fn check(store: &Store, containers: &[(String, String)]) -> Report {
    let first = check_once(store, containers);
    if first.problems.is_empty() {
        return first;
    }
    let mut second = check_once(store, containers);
    second.problems.retain(|p| first.problems.contains(p));
    second
}

fn check_once(store: &Store, containers: &[(String, String)]) -> Report {
    let root = store.dir();
    let mut report = Report::default();

    let blobs = check_blobs(&root.join("blobs/sha256"), &mut report);

    let mut images = BTreeMap::new();
    let mut used_blobs = BTreeSet::new();
    let mut checked_layers = BTreeMap::<String, bool>::new();
    for (name, file) in list(&root.join("records"), &mut report) {
        let record: ImageRecord = match read_json(&file) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                report
                    .problems
                    .push(format!("image record {name}: unreadable: {e:#}"));
                continue;
            }
        };
        let id = record.id.clone();
        if hex_of(&id).ok().map(|h| format!("{h}.json")) != Some(name.clone()) {
            report
                .problems
                .push(format!("image record {name}: it is for image {id}"));
            continue;
        }
        let mut whole = true;
        for (what, digest) in [
            ("config", &record.id),
            ("manifest", &record.manifest_digest),
        ] {
            if what == "manifest" && digest.is_empty() {
                // Built, committed, loaded or imported here: no manifest until pushed.
                continue;
            }
            used_blobs.insert(digest.clone());
            if !blobs.contains(digest) {
                report
                    .problems
                    .push(format!("image {id}: its {what} blob {digest} is missing"));
                whole = false;
            }
        }
        for layer in &record.layers {
            let ok = *checked_layers
                .entry(layer.diff_id.clone())
                .or_insert_with(|| check_layer(store, &layer.diff_id, &mut report));
            if !ok {
                report.problems.push(format!(
                    "image {id}: its layer {} is missing or damaged",
                    layer.diff_id
                ));
                whole = false;
            }
        }
        images.insert(id, whole);
    }
    report.images = images.len() as u64;
    report.unreferenced_blobs = blobs.difference(&used_blobs).count() as u64;

    for (name, _) in list(&root.join("layers"), &mut report) {
        let diff_id = format!("sha256:{name}");
        if !checked_layers.contains_key(&diff_id) {
            report.unreferenced_layers += 1;
        }
    }

    match read_json::<References>(&root.join("references.json")) {
        Ok(refs) => {
            let refs = refs.unwrap_or_default();
            for (reference, id) in refs.tags.iter().chain(&refs.digests) {
                report.references += 1;
                if !images.contains_key(id) {
                    report.problems.push(format!(
                        "reference {reference} points at image {id}, which is not in the store"
                    ));
                }
            }
        }
        Err(e) => report
            .problems
            .push(format!("the references file is unreadable: {e:#}")),
    }

    for (name, image_id) in containers {
        report.containers += 1;
        if !images.contains_key(image_id) {
            report.problems.push(format!(
                "container {name} uses image {image_id}, which is not in the store"
            ));
        }
    }
    report
}

/// Hash every blob again; returns the digests of the whole ones.
fn check_blobs(dir: &Path, report: &mut Report) -> BTreeSet<String> {
    let mut whole = BTreeSet::new();
    for (name, path) in list(dir, report) {
        let digest = format!("sha256:{name}");
        if hex_of(&digest).is_err() {
            report
                .problems
                .push(format!("blob file {name}: not named by a sha256 digest"));
            continue;
        }
        report.blobs += 1;
        match hash_file(&path) {
            Ok(Some(actual)) if actual == digest => {
                whole.insert(digest);
            }
            Ok(Some(_)) => report.problems.push(format!(
                "blob {digest}: its content does not match its digest (damaged)"
            )),
            Ok(None) => report.blobs -= 1,
            Err(e) => report
                .problems
                .push(format!("blob {digest}: unreadable: {e:#}")),
        }
    }
    whole
}

/// One committed layer: its record names it and its tree is the one summarised at commit.
fn check_layer(store: &Store, diff_id: &str, report: &mut Report) -> bool {
    let Ok(home) = store.layer_home(diff_id) else {
        return false;
    };
    let record: LayerRecord = match read_json(&home.join("layer.json")) {
        Ok(Some(r)) => r,
        _ => return false,
    };
    if record.diff_id != diff_id {
        return false;
    }
    report.layers += 1;
    let Some(expected) = record.tree else {
        report.unsummarised_layers += 1;
        return home.join("diff").is_dir();
    };
    match summarize_tree(&home.join("diff")) {
        Ok(actual) => {
            report.layer_entries += actual.entries;
            actual == expected
        }
        Err(_) => false,
    }
}

/// The entries of a store directory, by name; a directory that cannot be listed is a problem.
fn list(dir: &Path, report: &mut Report) -> Vec<(String, PathBuf)> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report
                .problems
                .push(format!("{} cannot be listed: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

/// Parse a JSON file; None when it vanished meanwhile (removed by a concurrent `rmi`).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn hash_file(path: &Path) -> Result<Option<String>> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(format!("sha256:{}", hex::encode(hasher.finalize()))))
}
